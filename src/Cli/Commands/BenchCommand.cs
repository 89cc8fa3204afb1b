using System.CommandLine;
using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.Json;
using BitNet.Inference.Bench;
using BitNet.Inference.Generation;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Inference.Threading;
using Spectre.Console;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet bench -m MODEL -p 128 -n 64 -t T -r 5 [--json] [--lm-head q8] [--parallel 1,2,4,8]`: prefill and decode
/// tokens/s (median, min, max over repetitions), time to first token, peak RSS, bytes per decoded
/// token and the achieved GB/s next to a streaming-read probe of this machine's memory bandwidth.
/// </summary>
internal static class BenchCommand
{
    public static Command Create() => Create(Console.Out, Console.Error, interactive: !Console.IsOutputRedirected && !Console.IsErrorRedirected);

    internal static Command Create(TextWriter stdout, TextWriter stderr, bool interactive)
    {
        var model = ModelCommandOptions.ModelOption();
        var prompt = NumberOption.Create("--prompt-tokens", $"Prompt length evaluated as one batch (prefill; batches of {ModelLoadOptions.MaxBatchSize} beyond that)", 128, "-p");
        var generate = NumberOption.Create("--gen-tokens", "Tokens generated one at a time (decode)", 64, "-n");
        var threads = ModelCommandOptions.ThreadsOption();
        var repetitions = NumberOption.Create("--repetitions", "Repetitions; medians are reported", 5, "-r");
        var json = new Option<bool>("--json") { Description = "Print one JSON object instead of a table" };
        var lmHead = new Option<string>("--lm-head") { Description = "LM head: f16 (exact, default), q8 (int8 rows, half the bytes) or screened (int8 bounds, then exact F16 logits for the rows that can win: f16's tokens at about q8's cost)", DefaultValueFactory = _ => "f16" };
        lmHead.OneOf([.. LmHeadModes.Names]);
        var kernel = new Option<string?>("--kernel") { Description = "Force a kernel set: avx512vnni, avx512gfni, avx512, avx2, dotprod, neon, scalar (default: best supported)" };
        var noProbe = new Option<bool>("--no-probe") { Description = "Skip the memory-bandwidth probe" };
        var parallel = new Option<string?>("--parallel", "-np")
        {
            Description = "Also decode N sequences together (one forward pass per step for all of them), e.g. 4 or 1,2,4,8: aggregate tok/s and per-stream inter-token latency p50/p99, next to 1 stream",
        };
        var weights = ModelCommandOptions.WeightsOption();

        var command = new Command("bench", "Measure prefill and decode speed, time to first token, peak memory and achieved memory bandwidth");
        foreach (Option o in new Option[] { model, prompt, generate, threads, repetitions, json, lmHead, weights, kernel, noProbe, parallel })
            command.Options.Add(o);

        command.SetAction((parseResult, cancellationToken) =>
        {
            int p = parseResult.GetValue(prompt), n = parseResult.GetValue(generate), r = parseResult.GetValue(repetitions);
            int t = parseResult.GetValue(threads);
            if (p < 1 || n < 0 || r < 1)
            {
                stderr.WriteLine("error: -p and -r must be at least 1, -n at least 0");
                return Task.FromResult(2);
            }
            string path;
            try
            {
                ModelCommandOptions.CheckThreads(t);
                path = ModelCommandOptions.ResolveModelPath(parseResult.GetValue(model));
            }
            catch (Exception e) when (e is ArgumentException or IOException)
            {
                stderr.WriteLine(ModelCommandOptions.ErrorLine(e));
                return Task.FromResult(e is ArgumentException ? 2 : 1);
            }
            int[] streams = [];
            if (parseResult.GetValue(parallel) is { } list)
            {
                try
                {
                    streams = ParseStreams(list, "--parallel");
                }
                catch (ArgumentException e)
                {
                    stderr.WriteLine($"{ModelCommandOptions.ErrorLine(e)} (e.g. 4 or 1,2,4,8)");
                    return Task.FromResult(2);
                }
                if (p < 2 || n < 1)
                {
                    stderr.WriteLine("error: --parallel needs -p at least 2 and -n at least 1");
                    return Task.FromResult(2);
                }
                if (!streams.Contains(1)) streams = [1, .. streams];   // the single-stream figure of the same run
            }
            var options = new ModelLoadOptions
            {
                Threads = t > 0 ? t : CpuBudget.DefaultThreads(),
                LmHead = LmHeadModes.Parse(parseResult.GetValue(lmHead)!),
                Storage = WeightStorages.Parse(parseResult.GetValue(weights)!),
                Kernel = parseResult.GetValue(kernel),
                BatchSize = Math.Min(p, ModelLoadOptions.MaxBatchSize),
            };
            bool asJson = parseResult.GetValue(json);
            try
            {
                long start = Stopwatch.GetTimestamp();
                using BitNetModel? loaded = LoadWithin(path, options, p, n, streams, out string? problem);
                if (loaded is null)
                {
                    stderr.WriteLine($"error: {problem}");
                    return Task.FromResult(2);
                }
                double loadSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                BenchmarkReport report = interactive && !asJson
                    ? RunWithProgress(loaded, path, loadSeconds, p, n, r, !parseResult.GetValue(noProbe), cancellationToken)
                    : InferenceBenchmark.Run(loaded, Path.GetFileName(path), loadSeconds, p, n, r, !parseResult.GetValue(noProbe),
                        asJson ? null : new Progress<BenchmarkProgress>(), cancellationToken);
                if (streams.Length > 0)
                {
                    if (!asJson) stderr.WriteLine($"decoding {string.Join(", ", streams)} streams together, repetitions interleaved…");
                    report = report with { Parallel = ParallelDecodeBenchmark.Run(loaded, streams, p, n, r, cancellationToken) };
                }
                stdout.Write(asJson ? ToJson(report) + Environment.NewLine : ToTable(report));
                return Task.FromResult(0);
            }
            catch (Exception e) when (e is IOException or InvalidDataException or ArgumentException or NotSupportedException or ModelFormatException)
            {
                stderr.WriteLine(ModelCommandOptions.ErrorLine(e));
                return Task.FromResult(1);
            }
        });
        return command;
    }

    /// <summary>The longest sequence a bench runs, as serve's largest --ctx-size.</summary>
    private const long MaxPositions = 1 << 20;

    /// <summary>The model, once its file shows that the bench's KV caches fit; else null and why (before the weights load, which takes seconds).</summary>
    private static BitNetModel? LoadWithin(string path, ModelLoadOptions options, int p, int n, int[] streams, out string? problem)
    {
        var file = GgufFile.Open(path);
        try
        {
            problem = KvCacheProblem(file, options, p, n, streams);
            if (problem is null)
                return BitNetModel.Load(file, options);   // which owns the file from here
        }
        catch
        {
            file.Dispose();
            throw;
        }
        file.Dispose();
        return null;
    }

    /// <summary>
    /// Why the KV caches of the bench cannot be held, or null: a sequence of <paramref name="p"/> + <paramref name="n"/>
    /// + 1 positions, and with --parallel one pool per stream count, all allocated together, each of whole blocks
    /// per stream. They must fit this model's arrays and, beside the weights, the memory the process may use: the
    /// engine's load check (<see cref="KvBudget"/>), so an impossible bench is one line, not an OutOfMemoryException.
    /// </summary>
    internal static string? KvCacheProblem(GgufFile file, ModelLoadOptions options, int p, int n, int[] streams, long? memoryLimitBytes = null)
    {
        var config = ModelConfig.FromGguf(file);
        long positions = (long)p + n + 1, most = Math.Min(KvCachePool.MaxTokens(config), MaxPositions);
        long blocks = (positions + KvCachePool.DefaultBlockTokens - 1) / KvCachePool.DefaultBlockTokens;
        long pooled = streams.Length == 0 ? 0 : streams.Max() * blocks * KvCachePool.DefaultBlockTokens;
        string with = streams.Length == 0 ? "" : $" with --parallel {string.Join(',', streams)}";
        if (positions > most)
            return $"-p {p} and -n {n} need {positions} positions of KV cache; at most {most} fit this model";
        if (pooled > KvCachePool.MaxTokens(config))
            return $"-p {p} and -n {n}{with} need {pooled} positions of KV cache in one pool; at most {KvCachePool.MaxTokens(config)} fit this model";

        if ((memoryLimitBytes ?? KvBudget.MemoryLimitBytes()) is not long limit)
            return null;
        // The single sequence's cache is garbage by the time the pools are made: the larger of the two is held.
        long tokens = Math.Max(blocks, streams.Sum(s => s * blocks)) * KvCachePool.DefaultBlockTokens;
        long weights = KvBudget.WeightBytes(file, config, options.Storage, options.LmHead);
        return KvBudget.Shortfall(tokens * KvCachePool.BytesPerToken(config), weights, limit) is { } shortfall
            ? $"-p {p} and -n {n}{with} need {tokens} positions of KV cache, {shortfall}; at most {KvBudget.FittingTokens(config, weights, limit)} positions fit"
            : null;
    }

    private static BenchmarkReport RunWithProgress(BitNetModel model, string path, double loadSeconds, int p, int n, int r, bool probe, CancellationToken ct)
    {
        BenchmarkReport? report = null;
        AnsiConsole.Progress().AutoClear(true).Start(ctx =>
        {
            ProgressTask task = ctx.AddTask("benchmark", maxValue: 1.0);
            var progress = new SynchronousProgress(update =>
            {
                task.Description = update.Phase;
                task.Value = update.Fraction;
            });
            report = InferenceBenchmark.Run(model, Path.GetFileName(path), loadSeconds, p, n, r, probe, progress, ct);
            task.Value = 1.0;
        });
        return report!;
    }

    /// <summary>Stream counts (bench --parallel) or concurrency levels (bench-cost --sweep): 1 to 256, each once, in order.</summary>
    internal static int[] ParseStreams(string text, string flag) =>
        [.. NumberList.Parse(text, flag, flag == "--sweep" ? "concurrency level" : "stream count", 1, 256).Distinct().Order()];

    /// <summary>Progress&lt;T&gt; posts to the thread pool; the display must update in order, on this thread.</summary>
    private sealed class SynchronousProgress(Action<BenchmarkProgress> handler) : IProgress<BenchmarkProgress>
    {
        public void Report(BenchmarkProgress value) => handler(value);
    }

    internal static string ToTable(BenchmarkReport report)
    {
        var inv = CultureInfo.InvariantCulture;
        var sb = new StringBuilder();
        sb.AppendLine(inv, $"model {report.Model}  kernel {report.Kernel}  threads {report.Threads}  lm-head {report.LmHead}  weights {report.Weights}  load {report.LoadSeconds:F2} s");
        sb.AppendLine(inv, $"{"test",-10} {"tok/s (median)",15} {"min",9} {"max",9}");
        sb.AppendLine(inv, $"{"pp" + report.PromptTokens,-10} {report.Prefill.Median,15:F2} {report.Prefill.Min,9:F2} {report.Prefill.Max,9:F2}");
        sb.AppendLine(inv, $"{"tg" + report.GeneratedTokens,-10} {report.Decode.Median,15:F2} {report.Decode.Min,9:F2} {report.Decode.Max,9:F2}");
        if (report.Weights == "move")
            sb.AppendLine(inv, $"weights moved into memory {(report.WeightsMovedSeconds is double moved ? $"{moved:F2} s after loading" : "only in part by the end")}");
        sb.AppendLine(inv, $"time to first token {report.TimeToFirstTokenSeconds * 1000:F1} ms (pp{report.PromptTokens})");
        string probe = report.ProbeBytesPerSecond > 0
            ? string.Create(inv, $" of {report.ProbeBytesPerSecond / 1e9:F2} GB/s measured ({100 * report.DecodeBytesPerSecond / report.ProbeBytesPerSecond:F0}%)")
            : "";
        sb.AppendLine(inv, $"bytes per decoded token {report.BytesPerDecodedToken / 1e6:F1} MB → {report.DecodeBytesPerSecond / 1e9:F2} GB/s achieved{probe}");
        if (report.LmHead == "screened")
            sb.AppendLine(inv, $"screened head: {report.ExactRowsPerToken:F1} rows per token computed exactly in F16 (the tokens are the f16 head's)");
        sb.AppendLine(inv, $"peak RSS {(report.PeakResidentBytes is long rss ? $"{rss / 1048576.0:F0} MiB" : "unknown")}");
        if (report.Parallel is { Count: > 0 } parallel)
        {
            ParallelDecodeReport single = parallel.FirstOrDefault(x => x.Streams == 1) ?? parallel[0];
            sb.AppendLine(inv, $"{"streams",-8} {"aggregate tok/s",16} {"min",9} {"max",9} {"× 1 stream",11} {"ITL p50 ms",11} {"p99 ms",9} {"p99 × 1",8} {"KV held/needed",15} {"layers ms",10} {"head ms",8}");
            foreach (ParallelDecodeReport x in parallel)
                sb.AppendLine(inv, $"{x.Streams,-8} {x.Aggregate.Median,16:F2} {x.Aggregate.Min,9:F2} {x.Aggregate.Max,9:F2} {x.Aggregate.Median / single.Aggregate.Median,11:F2} {x.LatencyP50Seconds * 1000,11:F1} {x.LatencyP99Seconds * 1000,9:F1} {x.LatencyP99Seconds / single.LatencyP99Seconds,8:F2} {(double)x.KvBytesHeld / x.KvBytesNeeded,15:F3} {x.LayersP50Seconds * 1000,10:F1} {x.HeadP50Seconds * 1000,8:F1}");
        }
        return sb.ToString();
    }

    /// <summary>JSON through Utf8JsonWriter: no reflection, so it works unchanged under Native AOT.</summary>
    internal static string ToJson(BenchmarkReport report)
    {
        using var buffer = new MemoryStream();
        using (var w = new Utf8JsonWriter(buffer))
        {
            w.WriteStartObject();
            w.WriteString("model", report.Model);
            w.WriteString("kernel", report.Kernel);
            w.WriteNumber("threads", report.Threads);
            w.WriteString("lm_head", report.LmHead);
            w.WriteString("weights", report.Weights);
            if (report.WeightsMovedSeconds is double moved) w.WriteNumber("weights_moved_s", moved);
            w.WriteNumber("prompt_tokens", report.PromptTokens);
            w.WriteNumber("generated_tokens", report.GeneratedTokens);
            w.WriteNumber("repetitions", report.Repetitions);
            WriteStats(w, "prefill_tok_s", report.Prefill);
            WriteStats(w, "decode_tok_s", report.Decode);
            w.WriteNumber("ttft_s", report.TimeToFirstTokenSeconds);
            w.WriteNumber("load_s", report.LoadSeconds);
            w.WriteNumber("bytes_per_decoded_token", report.BytesPerDecodedToken);
            if (report.LmHead == "screened") w.WriteNumber("exact_rows_per_token", report.ExactRowsPerToken);
            w.WriteNumber("decode_gb_s", report.DecodeBytesPerSecond / 1e9);
            w.WriteNumber("probe_gb_s", report.ProbeBytesPerSecond / 1e9);
            if (report.PeakResidentBytes is long rss) w.WriteNumber("peak_rss_bytes", rss);
            else w.WriteNull("peak_rss_bytes");
            if (report.Parallel is { Count: > 0 } parallel)
            {
                w.WriteStartArray("parallel");
                foreach (ParallelDecodeReport x in parallel)
                {
                    w.WriteStartObject();
                    w.WriteNumber("streams", x.Streams);
                    WriteStats(w, "aggregate_tok_s", x.Aggregate);
                    w.WriteNumber("itl_p50_s", x.LatencyP50Seconds);
                    w.WriteNumber("itl_p99_s", x.LatencyP99Seconds);
                    w.WriteNumber("kv_bytes_held", x.KvBytesHeld);
                    w.WriteNumber("kv_bytes_needed", x.KvBytesNeeded);
                    w.WriteNumber("layers_p50_s", x.LayersP50Seconds);
                    w.WriteNumber("head_p50_s", x.HeadP50Seconds);
                    w.WriteEndObject();
                }
                w.WriteEndArray();
            }
            w.WriteEndObject();
        }
        return Encoding.UTF8.GetString(buffer.ToArray());
    }

    private static void WriteStats(Utf8JsonWriter w, string name, BenchmarkReport.Stats stats)
    {
        w.WriteStartObject(name);
        w.WriteNumber("median", stats.Median);
        w.WriteNumber("min", stats.Min);
        w.WriteNumber("max", stats.Max);
        w.WriteEndObject();
    }
}
