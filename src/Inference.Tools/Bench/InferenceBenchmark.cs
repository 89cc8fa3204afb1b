using System.Diagnostics;
using BitNet.Inference.Memory;
using BitNet.Inference.Model;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Bench;

/// <summary>What one `bitnet bench` run measured. Rates are tokens per second.</summary>
public sealed record BenchmarkReport
{
    public required string Model { get; init; }
    public required string Kernel { get; init; }
    public required int Threads { get; init; }
    public required string LmHead { get; init; }
    /// <summary>Where the streamed weights lived: "memory", "mapped" or "move" (<see cref="WeightStorage"/>).</summary>
    public required string Weights { get; init; }
    /// <summary>"move": seconds from the start of the runs (just after loading) until the weights were in private memory (the warm-up waits for it); null if the move failed, or another storage.</summary>
    public double? WeightsMovedSeconds { get; init; }
    public required int PromptTokens { get; init; }
    public required int GeneratedTokens { get; init; }
    public required int Repetitions { get; init; }
    public required Stats Prefill { get; init; }
    public required Stats Decode { get; init; }
    /// <summary>Time to first token: the prompt's forward pass until the first generated token's logits, in seconds (median).</summary>
    public required double TimeToFirstTokenSeconds { get; init; }
    public required double LoadSeconds { get; init; }
    /// <summary>Weight bytes one decode step streams from memory: every ternary matrix plus the LM head.</summary>
    public required long BytesPerDecodedToken { get; init; }
    /// <summary>Screened head: F16 rows computed exactly per decoded token (mean; their bytes are in BytesPerDecodedToken). 0 otherwise.</summary>
    public double ExactRowsPerToken { get; init; }
    /// <summary>BytesPerDecodedToken × median decode rate.</summary>
    public required double DecodeBytesPerSecond { get; init; }
    /// <summary>The built-in streaming-read probe with the same thread count (0 when skipped).</summary>
    public required double ProbeBytesPerSecond { get; init; }
    /// <summary>VmHWM after the measured runs, before the bandwidth probe (null off Linux).</summary>
    public required long? PeakResidentBytes { get; init; }
    /// <summary>`--parallel`: decode with several streams together (<see cref="ParallelDecodeBenchmark"/>), one report per stream count.</summary>
    public IReadOnlyList<ParallelDecodeReport>? Parallel { get; init; }

    public sealed record Stats(double Median, double Min, double Max);
}

/// <summary>Progress reported while the benchmark runs: a phase name and how far it is (0..1).</summary>
public readonly record struct BenchmarkProgress(string Phase, double Fraction);

/// <summary>
/// llama-bench-style measurement on a loaded model: per repetition, a fresh sequence evaluates a
/// prompt of <c>promptTokens</c> as one batch (prefill), then generates <c>generatedTokens</c>
/// one at a time (decode, greedy). Token ids are fixed pseudo-random values, so runs are repeatable
/// and need no tokenizer.
/// </summary>
public static class InferenceBenchmark
{
    public static BenchmarkReport Run(
        BitNetModel model, string modelName, double loadSeconds, int promptTokens, int generatedTokens, int repetitions,
        bool probeBandwidth, IProgress<BenchmarkProgress>? progress = null, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        if (promptTokens < 1) throw new ArgumentOutOfRangeException(nameof(promptTokens), "the prompt needs at least one token");
        ArgumentOutOfRangeException.ThrowIfNegative(generatedTokens);
        ArgumentOutOfRangeException.ThrowIfLessThan(repetitions, 1);

        int vocab = model.Config.VocabSize;
        var clock = Stopwatch.StartNew();
        double movedAt = double.NaN;
        if (model.Storage == WeightStorage.Move)
            model.WeightMove.ContinueWith(_ => Volatile.Write(ref movedAt, clock.Elapsed.TotalSeconds), TaskContinuationOptions.ExecuteSynchronously);
        var rng = new Random(1234);
        int[] prompt = new int[promptTokens];
        for (int i = 0; i < prompt.Length; i++) prompt[i] = rng.Next(0, Math.Min(vocab, 128000));
        InferenceState state = model.CreateState(promptTokens + generatedTokens + 1);
        int[] next = new int[1];
        // Greedy, as llama-bench. A screened head chooses each token through the sampler's candidate path
        // (exact F16 logits for the rows that could win); the other heads compute every logit.
        Sampling.Sampler? sampler = model.IsScreened ? new(Generation.SamplingOptions.Greedy, vocab) : null;
        int Step(ReadOnlySpan<int> tokens) => sampler is null
            ? Sampling.Sampler.ArgMax(model.Forward(state, tokens))
            : Generation.NextToken.Evaluate(model, state, sampler, tokens, tokens, allowScreening: true, out _);

        // Warm-up: JIT tiers, page-in of the mapped weights, worker threads; with WeightStorage.Move, the
        // weights' move into private memory, which the first pass starts. The repetitions then measure the
        // steady state a server runs in after its first request, not a background copy competing for the
        // memory bus (on a 1-thread run it takes the other core too); when the move ended is reported.
        progress?.Report(new BenchmarkProgress("warm-up", 0));
        state.Reset();
        Step(prompt.AsSpan(0, Math.Min(promptTokens, 8)));
        next[0] = prompt[0];
        Step(next);
        if (model.Storage == WeightStorage.Move)
        {
            progress?.Report(new BenchmarkProgress("moving the weights into memory", 0));
            model.StartWeightMove();
            try { model.WeightMove.Wait(cancellationToken); }
            catch (AggregateException) { }   // a failed move leaves the rest mapped (logged by the model); measure that
        }

        var prefill = new double[repetitions];
        var decode = new double[repetitions];
        var ttft = new double[repetitions];
        long exactRows = 0;
        for (int rep = 0; rep < repetitions; rep++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            state.Reset();
            long start = Stopwatch.GetTimestamp();
            next[0] = Step(prompt);
            double prefillSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            prefill[rep] = promptTokens / prefillSeconds;
            ttft[rep] = prefillSeconds;
            progress?.Report(new BenchmarkProgress($"repetition {rep + 1}/{repetitions}: prefill", (rep + 0.5) / repetitions));

            start = Stopwatch.GetTimestamp();
            long rowsBefore = state.ExactRowsComputed;
            for (int i = 0; i < generatedTokens; i++)
                next[0] = Step(next);
            exactRows += state.ExactRowsComputed - rowsBefore;
            double decodeSeconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
            decode[rep] = generatedTokens == 0 ? 0 : generatedTokens / decodeSeconds;
            progress?.Report(new BenchmarkProgress($"repetition {rep + 1}/{repetitions}: decode", (rep + 1.0) / repetitions));
        }

        // Read the peak before the probe: its buffer is not the model's memory.
        long? peakResident = ProcessMemory.PeakResidentBytes();
        double probe = 0;
        if (probeBandwidth)
        {
            progress?.Report(new BenchmarkProgress("memory bandwidth probe", 1));
            using var pool = new WorkerPool(model.Threads);
            probe = MemoryBandwidthProbe.Measure(pool);
        }

        double exactRowsPerToken = generatedTokens == 0 ? 0 : exactRows / ((double)generatedTokens * repetitions);
        long bytesPerToken = BytesPerDecodedToken(model, exactRowsPerToken);
        BenchmarkReport.Stats decodeStats = Summarize(decode);
        return new BenchmarkReport
        {
            Model = modelName,
            Kernel = model.KernelName,
            Threads = model.Threads,
            LmHead = LmHeadModes.Name(model.LmHeadMode),
            Weights = WeightStorages.Name(model.Storage),
            WeightsMovedSeconds = model.Storage == WeightStorage.Move && model.MovedWeightBytes > 0 && model.WeightMove.IsCompleted && !double.IsNaN(Volatile.Read(ref movedAt)) ? movedAt : null,
            PromptTokens = promptTokens,
            GeneratedTokens = generatedTokens,
            Repetitions = repetitions,
            Prefill = Summarize(prefill),
            Decode = decodeStats,
            TimeToFirstTokenSeconds = Summarize(ttft).Median,
            LoadSeconds = loadSeconds,
            BytesPerDecodedToken = bytesPerToken,
            ExactRowsPerToken = exactRowsPerToken,
            DecodeBytesPerSecond = bytesPerToken * decodeStats.Median,
            ProbeBytesPerSecond = probe,
            PeakResidentBytes = peakResident,
        };
    }

    /// <summary>
    /// Ternary codes of every layer plus the LM head in its active format: F16; int8 with a scale per
    /// row; or screened: int8, the bound's three per-row numbers, and <paramref name="exactRowsPerToken"/> F16 rows.
    /// </summary>
    public static unsafe long BytesPerDecodedToken(BitNetModel model, double exactRowsPerToken = 0)
    {
        long bytes = 0;
        foreach (LayerWeights layer in model.Weights.Layers)
            foreach (TernaryMatrix m in layer.TernaryMatrices)
                bytes += (long)m.Rows * m.RowBytes;
        long head = (long)model.Config.VocabSize * model.Config.EmbeddingLength;
        int vocab = model.Config.VocabSize;
        bytes += model.LmHeadMode switch
        {
            LmHeadMode.Q8 => head + 4L * vocab,
            LmHeadMode.Screened => head + 12L * vocab + (long)Math.Round(exactRowsPerToken * 2 * model.Config.EmbeddingLength),
            _ => 2 * head,
        };
        return bytes;
    }

    private static BenchmarkReport.Stats Summarize(double[] values)
    {
        double[] sorted = values.Order().ToArray();
        double median = sorted.Length % 2 == 1 ? sorted[sorted.Length / 2] : (sorted[sorted.Length / 2 - 1] + sorted[sorted.Length / 2]) / 2;
        return new BenchmarkReport.Stats(median, sorted[0], sorted[^1]);
    }
}
