using System.CommandLine;
using System.Runtime.InteropServices;
using BitNet.Inference.Model;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet logits -m MODEL --tokens 128000,791,… -o FILE [--prompt-length N]`: evaluate token ids and write
/// the logits as raw little-endian float32, one row of n_vocab per input position, no header — the layout
/// of shared/oracle/*.logits.f32. The first N tokens (default: all) are evaluated as one batch, the rest one
/// at a time like generation, so `--prompt-length` reproduces an oracle run exactly.
/// </summary>
internal static class LogitsCommand
{
    public static Command Create() => Create(Console.Error);

    internal static Command Create(TextWriter stderr)
    {
        var model = ModelCommandOptions.ModelOption();
        var tokens = new Option<string>("--tokens") { Description = "Comma-separated token ids, e.g. 128000,791,6864", Required = true };
        var output = new Option<string>("--output", "-o") { Description = "Output file (float32 little-endian, tokens × n_vocab)", Required = true };
        var promptLength = NumberOption.Create("--prompt-length", "Tokens evaluated as one batch; the rest go one at a time (default or 0: all)", 0)
            .Must(n => n >= 0, "0 (all of them) or more");
        var threads = ModelCommandOptions.ThreadsOption();
        var kernel = new Option<string?>("--kernel") { Description = "Kernel family (scalar forces the reference kernel)" };
        var command = new Command("logits", "Write the logits of a token sequence in the oracle's float32 layout")
            { model, tokens, output, promptLength, threads, kernel };

        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                int[] ids = ParseTokens(parse.GetValue(tokens)!);
                string path = ModelCommandOptions.OutputFile(parse.GetValue(output)!, "logits.f32");
                using var m = BitNetModel.Load(ModelCommandOptions.ResolveModelPath(parse.GetValue(model)), new ModelLoadOptions
                {
                    Threads = ModelCommandOptions.CheckThreads(parse.GetValue(threads)),
                    Kernel = parse.GetValue(kernel),
                });
                if (ids.Where(id => id < 0 || id >= m.Config.VocabSize).Cast<int?>().FirstOrDefault() is int outside)
                    throw new ArgumentException($"--tokens: token id {outside} is outside the vocabulary (0 to {m.Config.VocabSize - 1})");
                int batch = parse.GetValue(promptLength) is > 0 and var p ? Math.Min(p, ids.Length) : ids.Length;
                var state = m.CreateState(ids.Length); // a KV cache just large enough
                await using var file = new FileStream(path, FileMode.Create, FileAccess.Write, FileShare.None, 1 << 20);
                Write(m, state, ids, batch, file, cancellationToken);
                await file.FlushAsync(cancellationToken);   // a full disk fails here, before "wrote" is printed
                await stderr.WriteLineAsync($"wrote {ids.Length} rows × {m.Config.VocabSize} logits to {file.Name}");
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

    /// <summary>The batch part in chunks of the state's batch size (bounded memory), then one token at a time.</summary>
    internal static void Write(BitNetModel model, InferenceState state, int[] ids, int batch, Stream output, CancellationToken cancellationToken)
    {
        int vocab = model.Config.VocabSize;
        var rows = new float[state.BatchCapacity * vocab];
        for (int start = 0; start < batch; start += state.BatchCapacity)
        {
            cancellationToken.ThrowIfCancellationRequested();
            int n = Math.Min(state.BatchCapacity, batch - start);
            model.ForwardAll(state, ids.AsSpan(start, n), rows.AsSpan(0, n * vocab));
            output.Write(MemoryMarshal.AsBytes(rows.AsSpan(0, n * vocab)));
        }
        for (int i = batch; i < ids.Length; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            output.Write(MemoryMarshal.AsBytes(model.Forward(state, [ids[i]])));
        }
    }

    internal static int[] ParseTokens(string text) => NumberList.Parse(text, "--tokens", "token id", 0, int.MaxValue);
}
