using System.CommandLine;
using System.Diagnostics;
using BitNet.Inference.Conversion;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet convert --naive IN OUT [--estimate-only] [--vocab-from GGUF]`: full-precision BitNet
/// checkpoint (GGUF or safetensors + config.json) → I2_S GGUF with absmean ternarization.
/// </summary>
internal static class ConvertCommand
{
    public static Command Create() => Create(Console.Out, Console.Error);

    internal static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var input = new Argument<string>("input") { Description = "F32/F16/BF16 GGUF, a .safetensors file, or a folder of them (with config.json)" };
        var output = new Argument<string?>("output") { Description = "The I2_S GGUF to write", Arity = ArgumentArity.ZeroOrOne };
        var naive = new Option<bool>("--naive") { Description = "Per-tensor absmean ternarization without calibration (the only method; required so the choice is explicit)" };
        var estimateOnly = new Option<bool>("--estimate-only") { Description = "Print output size and peak memory, write nothing" };
        var vocabFrom = new Option<string?>("--vocab-from") { Description = "Copy the tokenizer.* metadata from this GGUF (safetensors inputs carry none)" };
        var command = new Command("convert", "Convert a full-precision BitNet b1.58 checkpoint to an I2_S GGUF (streamed tensor by tensor)")
        {
            input, output, naive, estimateOnly, vocabFrom,
        };
        command.SetAction(parse =>
        {
            if (!parse.GetValue(naive))
            {
                stderr.WriteLine("error: pass --naive: per-tensor absmean ternarization is the only conversion implemented");
                return 2;
            }
            string source = parse.GetValue(input)!;
            string? target = parse.GetValue(output);
            try
            {
                if (parse.GetValue(estimateOnly))
                {
                    var estimate = NaiveTernaryConverter.Estimate(source, parse.GetValue(vocabFrom));
                    stdout.WriteLine($"tensors:       {estimate.TensorCount} ({estimate.TernaryTensorCount} to I2_S)");
                    stdout.WriteLine($"input size:    {Mb(estimate.InputBytes)}");
                    stdout.WriteLine($"output size:   {Mb(estimate.OutputBytes)} ({estimate.OutputBytes:N0} bytes)");
                    stdout.WriteLine($"peak memory:   {Mb(estimate.PeakMemoryBytes)} (buffers {Mb(estimate.WorkingBufferBytes)} + largest input tensor {Mb(estimate.LargestInputTensorBytes)}, memory-mapped)");
                    foreach (string warning in estimate.Warnings)
                        stderr.WriteLine($"warning: {warning}");
                    return 0;
                }
                if (target is null)
                {
                    stderr.WriteLine("error: give the output path (or --estimate-only)");
                    return 2;
                }
                ModelCommandOptions.OutputFile(target, "model-i2_s.gguf", source, parse.GetValue(vocabFrom));
                var clock = Stopwatch.StartNew();
                var result = NaiveTernaryConverter.Convert(source, target, parse.GetValue(vocabFrom), new SynchronousProgress(stderr), runnable: true);
                foreach (string warning in result.Warnings)
                    stderr.WriteLine($"warning: {warning}");
                stdout.WriteLine($"wrote {target}: {Mb(new FileInfo(target).Length)}, {result.TernaryTensorCount} of {result.TensorCount} tensors ternary, {clock.Elapsed.TotalSeconds:0.0} s");
                return 0;
            }
            catch (Exception e) when (e is ConversionException or BitNet.Inference.Gguf.GgufFormatException or IOException or UnauthorizedAccessException
                or ArgumentException)
            {
                stderr.WriteLine(ModelCommandOptions.ErrorLine(e));
                return 1;
            }
        });
        return command;
    }

    private static string Mb(long bytes) => $"{bytes / 1048576.0:0.0} MiB";

    private sealed class SynchronousProgress(TextWriter writer) : IProgress<string>
    {
        public void Report(string value) => writer.WriteLine(value);
    }
}
