using System.Diagnostics;
using BitNet.Inference.Model;

namespace BitNet.Inference.Bench;

/// <summary>What one parallel-decode measurement found: N streams decoding together, one step per token of each.</summary>
public sealed record ParallelDecodeReport
{
    public required int Streams { get; init; }
    /// <summary>Tokens per second over all streams (median, min, max over repetitions).</summary>
    public required BenchmarkReport.Stats Aggregate { get; init; }
    /// <summary>Per-stream inter-token latency: every stream gets one token per step, so it is the step's duration (over every step of every repetition), in seconds.</summary>
    public required double LatencyP50Seconds { get; init; }
    public required double LatencyP99Seconds { get; init; }
    /// <summary>KV cache bytes the streams held at their longest, and the bytes their positions need.</summary>
    public required long KvBytesHeld { get; init; }
    public required long KvBytesNeeded { get; init; }
}

/// <summary>
/// Decode with N sequences together, as the engine's scheduler runs them: each sequence evaluates its own
/// prompt (pseudo-random tokens) in prompt chunks, then every step evaluates one token of every sequence
/// in one forward pass over a shared paged KV cache (<see cref="BitNetModel.EvaluateRows"/>) and chooses
/// each sequence's next token greedily from its own logits row. F16 and int8 heads (the screened head's
/// per-row path is not batched).
/// </summary>
public static class ParallelDecodeBenchmark
{
    public static ParallelDecodeReport Run(BitNetModel model, int streams, int promptTokens, int generatedTokens, int repetitions,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentOutOfRangeException.ThrowIfLessThan(streams, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(promptTokens, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(generatedTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(repetitions, 1);
        if (model.IsScreened) throw new NotSupportedException("the parallel decode benchmark runs the f16 and q8 heads (not screened)");

        ModelConfig c = model.Config;
        int vocab = c.VocabSize, length = promptTokens + generatedTokens + 1;
        var pool = new KvCachePool(c, streams * ((length + KvCachePool.DefaultBlockTokens - 1) / KvCachePool.DefaultBlockTokens));
        const int promptChunk = 64;
        InferenceState w = model.CreateBatchState(pool, length, Math.Max(streams, promptChunk));
        var sequences = new KvSequence[streams];
        for (int i = 0; i < streams; i++) sequences[i] = new KvSequence(pool, length);
        var rng = new Random(1234);
        var prompts = new int[streams][];
        for (int i = 0; i < streams; i++)
        {
            prompts[i] = new int[promptTokens];
            for (int j = 0; j < promptTokens; j++) prompts[i][j] = rng.Next(0, Math.Min(vocab, 128000));
        }
        var next = new int[streams];
        var headRows = new int[streams];
        for (int i = 0; i < streams; i++) headRows[i] = i;
        var logits = new float[(long)streams * vocab];
        bool roundSingle = model.RoundsAttentionProbabilities(1);

        void Prefill(int s)
        {
            KvSequence sequence = sequences[s];
            for (int at = 0, count; at < promptTokens; at += count)
            {
                count = InferenceState.PromptChunkLength(promptTokens - at, promptChunk);
                if (!sequence.TryReserve(at + count)) throw new InvalidOperationException("the benchmark's KV pool is too small");
                bool round = model.RoundsAttentionProbabilities(count);
                for (int t = 0; t < count; t++)
                    w.SetRow(t, prompts[s][at + t], sequence, at + t, round);
                model.EvaluateRows(w, count);
                sequence.Advance(count);
                if (at + count == promptTokens)
                {
                    model.PrepareHeadInputs(w, [count - 1]);
                    model.HeadLogits(w, 0, 1, logits);
                    next[s] = Sampling.Sampler.ArgMax(logits.AsSpan(0, vocab));
                }
            }
        }

        long Step()
        {
            long start = Stopwatch.GetTimestamp();
            for (int s = 0; s < streams; s++)
            {
                KvSequence sequence = sequences[s];
                if (!sequence.TryReserve(sequence.Length + 1)) throw new InvalidOperationException("the benchmark's KV pool is too small");
                w.SetRow(s, next[s], sequence, sequence.Length, roundSingle);
            }
            model.EvaluateRows(w, streams);
            for (int s = 0; s < streams; s++) sequences[s].Advance(1);
            model.PrepareHeadInputs(w, headRows);
            model.HeadLogits(w, 0, streams, logits);
            for (int s = 0; s < streams; s++) next[s] = Sampling.Sampler.ArgMax(logits.AsSpan(s * vocab, vocab));
            return Stopwatch.GetTimestamp() - start;
        }

        // Warm-up: JIT tiers and page-in, on a short run.
        for (int s = 0; s < streams; s++) Prefill(s);
        for (int i = 0; i < Math.Min(4, generatedTokens); i++) Step();

        var aggregate = new double[repetitions];
        var steps = new List<double>(repetitions * generatedTokens);
        long held = 0;
        for (int rep = 0; rep < repetitions; rep++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            foreach (KvSequence sequence in sequences) sequence.Clear();
            for (int s = 0; s < streams; s++) Prefill(s);
            long total = 0;
            for (int i = 0; i < generatedTokens; i++)
            {
                long ticks = Step();
                total += ticks;
                steps.Add((double)ticks / Stopwatch.Frequency);
            }
            aggregate[rep] = streams * generatedTokens / ((double)total / Stopwatch.Frequency);
            held = Math.Max(held, pool.UsedBlocks * pool.BlockBytes);
        }
        foreach (KvSequence sequence in sequences) sequence.Clear();

        double[] sorted = [.. steps.Order()];
        double[] rates = [.. aggregate.Order()];
        return new ParallelDecodeReport
        {
            Streams = streams,
            Aggregate = new BenchmarkReport.Stats(Percentile(rates, 0.5), rates[0], rates[^1]),
            LatencyP50Seconds = Percentile(sorted, 0.5),
            LatencyP99Seconds = Percentile(sorted, 0.99),
            KvBytesHeld = held,
            KvBytesNeeded = (long)streams * (promptTokens + generatedTokens) * KvCachePool.BytesPerToken(c),
        };
    }

    /// <summary>Linear interpolation between the closest ranks of an ascending array.</summary>
    public static double Percentile(double[] sorted, double q)
    {
        if (sorted.Length == 0) return 0;
        double rank = q * (sorted.Length - 1);
        int low = (int)Math.Floor(rank), high = (int)Math.Ceiling(rank);
        return sorted[low] + (sorted[high] - sorted[low]) * (rank - low);
    }
}
