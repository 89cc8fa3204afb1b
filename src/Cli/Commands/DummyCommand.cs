using System.CommandLine;
using System.Diagnostics;
using BitNet.Inference.Model;

using BitNet.Inference.Dummy;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet dummy -o FILE --shape 2b4t|small|tiny [--seed N] [--vocab-from GGUF]`: write a random ternary
/// BitNet b1.58 model in the exact 2B4T GGUF layout (streamed, bounded memory), for benchmarks and tests.
/// </summary>
internal static class DummyCommand
{
    public static Command Create() => Create(Console.Out, Console.Error);

    internal static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var output = new Option<string>("--output", "-o") { Description = "File to write", Required = true };
        var shape = new Option<string>("--shape") { Description = "2b4t (the published model's sizes, 1.19 GB), small (the oracle's sizes) or tiny", DefaultValueFactory = _ => "small" };
        shape.AcceptOnlyFromAmong("2b4t", "small", "tiny");
        var seed = NumberOption.Create<ulong>("--seed", "Random seed (same seed, same file)", 1, "-s");
        var vocabFrom = new Option<string?>("--vocab-from") { Description = "Copy the tokenizer.* keys (vocabulary, merges, special ids, chat template) from this GGUF" };
        var command = new Command("dummy", "Write a random ternary model in the 2B4T GGUF layout") { output, shape, seed, vocabFrom };

        command.SetAction(async (parse, _) =>
        {
            try
            {
                var watch = Stopwatch.StartNew();
                string path = parse.GetValue(output)!;
                string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
                if (Directory.Exists(path))
                    throw new ArgumentException($"cannot write '{path}': it is a directory; give a file name such as {Path.Combine(path, "dummy.gguf")}");
                if (folder is not null && !Directory.Exists(folder))
                    throw new ArgumentException($"cannot write '{path}': the folder '{folder}' does not exist");
                DummyModel.Write(path, DummyShape.Parse(parse.GetValue(shape)!), parse.GetValue(seed), parse.GetValue(vocabFrom));
                await stdout.WriteLineAsync($"wrote {path}: {new FileInfo(path).Length:N0} bytes in {watch.Elapsed.TotalSeconds:F1} s");
                return 0;
            }
            catch (Exception e) when (ModelCommandOptions.IsUserError(e))
            {
                await stderr.WriteLineAsync($"error: {e.Message}");
                return 1;
            }
        });
        return command;
    }
}
