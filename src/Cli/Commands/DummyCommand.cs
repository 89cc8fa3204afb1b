using System.CommandLine;
using System.Diagnostics;
using BitNet.Inference.Dummy;
using BitNet.Inference.Model;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet dummy -o FILE --shape NAME [--seed N] [--vocab-from GGUF]`: write a random ternary model in the
/// exact GGUF layout of a published one (2B4T; Llama3-8B-1.58 and Falcon3 1.58-bit as llama-architecture
/// files with their untied F16 head), streamed in bounded memory, for benchmarks and tests.
/// </summary>
internal static class DummyCommand
{
    public static Command Create() => Create(Console.Out, Console.Error);

    internal static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var output = new Option<string>("--output", "-o") { Description = "File to write", Required = true };
        var shape = new Option<string>("--shape")
        {
            Description = "2b4t (the published model's sizes, 1.19 GB), small (the oracle's sizes), tiny, or a llama-architecture model's: " +
                "llama3-8b (Llama3-8B-1.58, 3.9 GB), falcon3-1b, falcon3-3b, falcon3-7b, falcon3-10b (Falcon3 1.58-bit)",
            DefaultValueFactory = _ => "small",
        };
        shape.OneOf([.. DummyShape.All.Select(s => s.Name)]);
        var seed = NumberOption.Create<ulong>("--seed", "Random seed (same seed, same file)", 1, "-s");
        var vocabFrom = new Option<string?>("--vocab-from") { Description = "Copy the tokenizer.* keys (vocabulary, merges, special ids, chat template) from this GGUF" };
        var command = new Command("dummy", "Write a random ternary model in a published model's GGUF layout") { output, shape, seed, vocabFrom };

        command.SetAction(async (parse, _) =>
        {
            try
            {
                var watch = Stopwatch.StartNew();
                string path = ModelCommandOptions.OutputFile(parse.GetValue(output)!, "dummy.gguf");
                DummyModel.Write(path, DummyShape.Parse(parse.GetValue(shape)!), parse.GetValue(seed), parse.GetValue(vocabFrom));
                await stdout.WriteLineAsync($"wrote {path}: {new FileInfo(path).Length:N0} bytes in {watch.Elapsed.TotalSeconds:F1} s");
                return 0;
            }
            catch (Exception e) when (ModelCommandOptions.IsUserError(e))
            {
                await stderr.WriteLineAsync(ModelCommandOptions.ErrorLine(e));
                return 1;
            }
        });
        return command;
    }
}
