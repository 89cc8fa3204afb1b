using System.Diagnostics;
using BitNet.Inference.Generation;
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
    /// <summary>Median time of a step's two parts: the transformer layers of all N rows, and the LM head
    /// (final norm included) of all N rows, in seconds.</summary>
    public required double LayersP50Seconds { get; init; }
    public required double HeadP50Seconds { get; init; }
}

/// <summary>
/// Decode with N sequences together, as the engine's scheduler runs them: each sequence evaluates its own
/// prompt (pseudo-random tokens) in prompt chunks, then every step evaluates one token of every sequence
/// in one forward pass over a shared paged KV cache (<see cref="BitNetModel.EvaluateRows"/>) and chooses
/// each sequence's next token greedily from its own logits row (with the screened head, from the exact
/// logits of the rows its bounds leave, every sequence's bounds from one pass over the int8 head). Several
/// stream counts run interleaved, one repetition of each in turn, so that a shared machine's changing load
/// falls on all of them alike.
/// </summary>
public static class ParallelDecodeBenchmark
{
    public static ParallelDecodeReport Run(BitNetModel model, int streams, int promptTokens, int generatedTokens, int repetitions,
        CancellationToken cancellationToken = default) =>
        Run(model, [streams], promptTokens, generatedTokens, repetitions, cancellationToken)[0];

    /// <summary>One report per entry of <paramref name="streamCounts"/>, their repetitions interleaved.</summary>
    public static IReadOnlyList<ParallelDecodeReport> Run(BitNetModel model, IReadOnlyList<int> streamCounts, int promptTokens, int generatedTokens,
        int repetitions, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(model);
        ArgumentNullException.ThrowIfNull(streamCounts);
        foreach (int streams in streamCounts) ArgumentOutOfRangeException.ThrowIfLessThan(streams, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(promptTokens, 2);
        ArgumentOutOfRangeException.ThrowIfLessThan(generatedTokens, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(repetitions, 1);

        var runs = new StreamRun[streamCounts.Count];
        for (int i = 0; i < runs.Length; i++)
        {
            runs[i] = new StreamRun(model, streamCounts[i], promptTokens, generatedTokens);
            runs[i].WarmUp();
        }
        for (int rep = 0; rep < repetitions; rep++)
            foreach (StreamRun run in runs)
            {
                cancellationToken.ThrowIfCancellationRequested();
                run.Repeat();
            }
        var reports = new ParallelDecodeReport[runs.Length];
        for (int i = 0; i < runs.Length; i++) reports[i] = runs[i].Report();
        return reports;
    }

    /// <summary>The state of N streams decoding together, and what their repetitions measured.</summary>
    private sealed class StreamRun
    {
        private const int PromptChunk = 64;
        private readonly BitNetModel _model;
        private readonly int _streams, _promptTokens, _generatedTokens, _vocab;
        private readonly KvCachePool _pool;
        private readonly InferenceState _state;
        private readonly KvSequence[] _sequences;
        private readonly int[][] _prompts;
        private readonly int[] _next, _headRows;
        private readonly float[] _logits;
        private readonly bool _roundSingle;
        private readonly GreedyStream[] _screened;
        private readonly ScreenedCandidates _candidates;
        private readonly List<double> _aggregate = [], _steps = [], _layers = [], _head = [];
        private long _held;

        public StreamRun(BitNetModel model, int streams, int promptTokens, int generatedTokens)
        {
            _model = model;
            _streams = streams;
            _promptTokens = promptTokens;
            _generatedTokens = generatedTokens;
            ModelConfig c = model.Config;
            _vocab = c.VocabSize;
            int length = promptTokens + generatedTokens + 1;
            _pool = new KvCachePool(c, streams * ((length + KvCachePool.DefaultBlockTokens - 1) / KvCachePool.DefaultBlockTokens));
            _state = model.CreateBatchState(_pool, length, Math.Max(streams, PromptChunk));
            _sequences = new KvSequence[streams];
            for (int i = 0; i < streams; i++) _sequences[i] = new KvSequence(_pool, length);
            var rng = new Random(1234);
            _prompts = new int[streams][];
            for (int i = 0; i < streams; i++)
            {
                _prompts[i] = new int[promptTokens];
                for (int j = 0; j < promptTokens; j++) _prompts[i][j] = rng.Next(0, Math.Min(_vocab, 128000));
            }
            _next = new int[streams];
            _headRows = new int[streams];
            for (int i = 0; i < streams; i++) _headRows[i] = i;
            _logits = new float[(long)streams * _vocab];
            _roundSingle = model.RoundsAttentionProbabilities(1);
            // One sampler per stream: selecting candidates uses the sampler's scratch, and streams run side by side.
            _screened = new GreedyStream[streams];
            for (int i = 0; i < streams; i++) _screened[i] = new GreedyStream(new Sampling.Sampler(SamplingOptions.Greedy, _vocab));
            _candidates = new ScreenedCandidates(model);
        }

        /// <summary>JIT tiers and page-in, on a short run.</summary>
        public void WarmUp()
        {
            for (int s = 0; s < _streams; s++) Prefill(s);
            for (int i = 0; i < Math.Min(4, _generatedTokens); i++) Step(out _, out _);
        }

        public void Repeat()
        {
            foreach (KvSequence sequence in _sequences) sequence.Clear();
            for (int s = 0; s < _streams; s++) Prefill(s);
            long total = 0;
            for (int i = 0; i < _generatedTokens; i++)
            {
                long ticks = Step(out long layers, out long head);
                total += ticks;
                _steps.Add((double)ticks / Stopwatch.Frequency);
                _layers.Add((double)layers / Stopwatch.Frequency);
                _head.Add((double)head / Stopwatch.Frequency);
            }
            _aggregate.Add(_streams * _generatedTokens / ((double)total / Stopwatch.Frequency));
            _held = Math.Max(_held, _pool.UsedBlocks * _pool.BlockBytes);
            foreach (KvSequence sequence in _sequences) sequence.Clear();
        }

        /// <summary>The next tokens of streams [first, first + count) from head inputs 0 … count − 1, greedily.</summary>
        private void ChooseNext(int first, int count)
        {
            if (!_model.IsScreened)
            {
                _model.HeadLogits(_state, 0, count, _logits);
                for (int i = 0; i < count; i++) _next[first + i] = Sampling.Sampler.ArgMax(_logits.AsSpan(i * _vocab, _vocab));
                return;
            }
            _model.HeadBounds(_state, 0, count);
            for (int i = 0; i < count; i++) _screened[i].HeadInput = i;
            _candidates.Choose(_state, _screened, count, 0);
            for (int i = 0; i < count; i++)
            {
                int candidates = _screened[i].CandidateCount;
                if (candidates < 0)
                {
                    _model.HeadLogits(_state, i, 1, _logits);
                    _next[first + i] = Sampling.Sampler.ArgMax(_logits.AsSpan(0, _vocab));
                    continue;
                }
                _next[first + i] = _screened[i].Sampler!.Sample(_state.CandidateIdsOf(i)[..candidates], _state.CandidateLogitsOf(i)[..candidates], default);
            }
        }

        /// <summary>A stream as the screened head's candidate step sees it: greedy, no penalties, so no history.</summary>
        private sealed class GreedyStream(Sampling.Sampler sampler) : IScreenedSequence
        {
            public int HeadInput { get; set; }
            public Sampling.Sampler? Sampler => sampler;
            public ReadOnlySpan<int> TokenHistory => default;
            public int CandidateCount { get; set; }
        }

        public ParallelDecodeReport Report()
        {
            double[] sorted = [.. _steps.Order()];
            double[] rates = [.. _aggregate.Order()];
            return new ParallelDecodeReport
            {
                Streams = _streams,
                Aggregate = new BenchmarkReport.Stats(Percentile(rates, 0.5), rates[0], rates[^1]),
                LatencyP50Seconds = Percentile(sorted, 0.5),
                LatencyP99Seconds = Percentile(sorted, 0.99),
                KvBytesHeld = _held,
                KvBytesNeeded = (long)_streams * (_promptTokens + _generatedTokens) * KvCachePool.BytesPerToken(_model.Config),
                LayersP50Seconds = Percentile([.. _layers.Order()], 0.5),
                HeadP50Seconds = Percentile([.. _head.Order()], 0.5),
            };
        }

        private void Prefill(int s)
        {
            KvSequence sequence = _sequences[s];
            for (int at = 0, count; at < _promptTokens; at += count)
            {
                count = InferenceState.PromptChunkLength(_promptTokens - at, PromptChunk);
                if (!sequence.TryReserve(at + count)) throw new InvalidOperationException("the benchmark's KV pool is too small");
                bool round = _model.RoundsAttentionProbabilities(count);
                for (int t = 0; t < count; t++)
                    _state.SetRow(t, _prompts[s][at + t], sequence, at + t, round);
                _model.EvaluateRows(_state, count);
                sequence.Advance(count);
                if (at + count == _promptTokens)
                {
                    _model.PrepareHeadInputs(_state, [count - 1]);
                    ChooseNext(s, 1);
                }
            }
        }

        private long Step(out long layers, out long head)
        {
            long start = Stopwatch.GetTimestamp();
            for (int s = 0; s < _streams; s++)
            {
                KvSequence sequence = _sequences[s];
                if (!sequence.TryReserve(sequence.Length + 1)) throw new InvalidOperationException("the benchmark's KV pool is too small");
                _state.SetRow(s, _next[s], sequence, sequence.Length, _roundSingle);
            }
            _model.EvaluateRows(_state, _streams);
            long layersEnd = Stopwatch.GetTimestamp();
            for (int s = 0; s < _streams; s++) _sequences[s].Advance(1);
            _model.PrepareHeadInputs(_state, _headRows);
            ChooseNext(0, _streams);
            long headEnd = Stopwatch.GetTimestamp();
            layers = layersEnd - start;
            head = headEnd - layersEnd;
            return Stopwatch.GetTimestamp() - start;
        }
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
