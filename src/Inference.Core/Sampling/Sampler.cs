using BitNet.Inference.Generation;

namespace BitNet.Inference.Sampling;

/// <summary>
/// bitnet.cpp's sampler chain (spec §7.2), for one generation:
/// logit bias → penalties over the last RepeatLastN tokens → top_k → top_p (on the un-tempered softmax) →
/// min_p → temperature → softmax → draw. Temperature ≤ 0 is greedy argmax (ties to the lowest id)
/// after the penalties. The random draw ("coin", uniform in [0, 1)) comes in from outside, so
/// <see cref="Sample(ReadOnlySpan{float}, ReadOnlySpan{int}, double)"/> is a pure function of its
/// inputs; <see cref="Sample(ReadOnlySpan{float}, ReadOnlySpan{int})"/> takes the coin from
/// <see cref="Random"/>. Buffers are allocated once; sampling a token allocates nothing.
/// Not thread-safe: one sampler per generation.
/// </summary>
public sealed class Sampler
{
    private readonly float[] _logits;          // penalized copy of the input logits
    private readonly Candidate[] _candidates;  // kept tokens, best first
    private readonly int[] _counts;            // occurrences in the penalty window (zero between calls)
    private KeyValuePair<int, float>[] _bias = []; // logit_bias as an array, so that applying it allocates nothing

    public Sampler(SamplingOptions options, int vocabSize)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentOutOfRangeException.ThrowIfLessThan(vocabSize, 1);
        VocabSize = vocabSize;
        Reset(options);
        _logits = new float[vocabSize];
        _candidates = new Candidate[vocabSize];
        _counts = new int[vocabSize];
    }

    public SamplingOptions Options { get; private set; } = null!;
    public int VocabSize { get; }
    public SamplerRandom Random { get; private set; } = null!;

    /// <summary>Start a new generation with other settings, keeping the buffers (the RNG restarts from the seed).</summary>
    public void Reset(SamplingOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        Options = options;
        Random = options.Seed is ulong seed ? new SamplerRandom(seed) : SamplerRandom.FromEntropy();
        _bias = options.LogitBias is { Count: > 0 } given ? [.. given] : [];
    }

    public bool IsGreedy => Options.Temperature <= 0f;

    /// <summary>Choose the next token; the coin is drawn from <see cref="Random"/> (not at all when greedy).</summary>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> history) =>
        Sample(logits, history, IsGreedy ? 0.0 : Random.NextDouble());

    /// <summary>
    /// Choose the next token from <paramref name="logits"/> (one per vocabulary entry).
    /// <paramref name="history"/> is every token so far (prompt and generated); the penalties look
    /// at its last RepeatLastN. <paramref name="coin"/> is uniform in [0, 1).
    /// </summary>
    public int Sample(ReadOnlySpan<float> logits, ReadOnlySpan<int> history, double coin)
    {
        if (logits.Length != VocabSize)
            throw new ArgumentException($"expected {VocabSize} logits, got {logits.Length}", nameof(logits));
        return Choose(logits, ids: default, history, coin);
    }

    /// <summary>
    /// Whether <see cref="SelectCandidates"/> and <see cref="Sample(ReadOnlySpan{int}, ReadOnlySpan{float}, ReadOnlySpan{int}, double)"/>
    /// can stand in for sampling over every logit: the chain must keep a bounded number of tokens
    /// (greedy, or 0 &lt; top_k &lt; vocabulary) and its penalties must be monotone (repeat penalty &gt; 0).
    /// </summary>
    public bool CanSampleFromCandidates =>
        (IsGreedy || Options.TopK > 0 && Options.TopK < VocabSize)
        && (Options.RepeatPenalty > 0f || !PenaltiesApply);

    private bool PenaltiesApply =>
        Options.RepeatLastN != 0 && (Options.RepeatPenalty != 1f || Options.FrequencyPenalty != 0f || Options.PresencePenalty != 0f);

    /// <summary>
    /// Screened sampling, step 1. Given lower[v] ≤ logit_v ≤ upper[v] for every token (modified in
    /// place: the penalties are applied to both), write to <paramref name="ids"/>, ascending, every
    /// token that could be among the k best after the penalties (k = 1 when greedy, else top_k), and
    /// return how many. Why nothing is missed: let L be the k-th largest penalized lower bound. At least
    /// k tokens have a penalized logit ≥ L, so a token whose penalized upper bound is below L is beaten
    /// by k others and cannot be kept by top_k (nor win the argmax). Every kept token has upper ≥ L.
    /// The penalties are monotone in the logit, so they map bounds to bounds.
    /// </summary>
    public int SelectCandidates(Span<float> lower, Span<float> upper, ReadOnlySpan<int> history, Span<int> ids)
    {
        if (!CanSampleFromCandidates) throw new InvalidOperationException("this sampling chain needs every logit");
        if (lower.Length != VocabSize || upper.Length != VocabSize || ids.Length < VocabSize)
            throw new ArgumentException($"bounds and ids must cover the {VocabSize}-token vocabulary");
        // A bias shifts a token's logit, and with it both of its bounds.
        ApplyBias(lower, ids: default);
        ApplyBias(upper, ids: default);
        ApplyPenalties(lower, ids: default, history);
        ApplyPenalties(upper, ids: default, history);
        int k = IsGreedy ? 1 : Options.TopK;

        // The k-th largest lower bound: a min-heap of the k largest, in the (now free) logits buffer.
        Span<float> heap = _logits.AsSpan(0, k);
        lower[..k].CopyTo(heap);
        for (int i = k / 2 - 1; i >= 0; i--) SiftDownMin(heap, i);
        for (int i = k; i < lower.Length; i++)
        {
            if (lower[i] > heap[0])
            {
                heap[0] = lower[i];
                SiftDownMin(heap, 0);
            }
        }
        float threshold = heap[0];

        int count = 0;
        for (int v = 0; v < upper.Length; v++)
            if (upper[v] >= threshold) ids[count++] = v;
        return count;
    }

    /// <summary>
    /// Screened sampling, step 2: choose the next token from the exact logits of the tokens
    /// <see cref="SelectCandidates"/> returned (<paramref name="ids"/> ascending). Returns what
    /// <see cref="Sample(ReadOnlySpan{float}, ReadOnlySpan{int}, double)"/> returns for the full logits.
    /// </summary>
    public int Sample(ReadOnlySpan<int> ids, ReadOnlySpan<float> logits, ReadOnlySpan<int> history, double coin)
    {
        if (ids.IsEmpty || logits.Length != ids.Length || ids.Length > VocabSize)
            throw new ArgumentException($"{ids.Length} ids and {logits.Length} logits: one logit per candidate needed");
        if (!CanSampleFromCandidates) throw new InvalidOperationException("this sampling chain needs every logit");
        return Choose(logits, ids, history, coin);
    }

    /// <summary>Like the other candidate overload; the coin is drawn from <see cref="Random"/> (not at all when greedy).</summary>
    public int Sample(ReadOnlySpan<int> ids, ReadOnlySpan<float> logits, ReadOnlySpan<int> history) =>
        Sample(ids, logits, history, IsGreedy ? 0.0 : Random.NextDouble());

    // The chain over n tokens: all of the vocabulary (ids empty: position = id) or the candidates ids.
    private int Choose(ReadOnlySpan<float> logits, ReadOnlySpan<int> ids, ReadOnlySpan<int> history, double coin)
    {
        int n = logits.Length;
        logits.CopyTo(_logits);
        ApplyBias(_logits.AsSpan(0, n), ids);
        ApplyPenalties(_logits.AsSpan(0, n), ids, history);

        if (IsGreedy)
        {
            int best = ArgMax(_logits.AsSpan(0, n));
            return ids.IsEmpty ? best : ids[best];
        }

        n = TopK(n, ids);
        n = TopP(n);
        n = MinP(n);
        return Draw(n, coin);
    }

    /// <summary>Index of the largest value; the lowest index wins a tie.</summary>
    public static int ArgMax(ReadOnlySpan<float> values)
    {
        int best = 0;
        float bestValue = values[0];
        for (int i = 1; i < values.Length; i++)
        {
            if (values[i] > bestValue) { bestValue = values[i]; best = i; }
        }
        return best;
    }

    // Adds each biased token's bias to its logit: values[i] is token i's logit, or token ids[i]'s when
    // ids is given (ascending; tokens not among them are skipped), as in ApplyPenalties.
    private void ApplyBias(Span<float> values, ReadOnlySpan<int> ids)
    {
        foreach ((int token, float bias) in _bias)
        {
            if ((uint)token >= (uint)VocabSize) continue;
            int at = ids.IsEmpty ? token : ids.BinarySearch(token);
            if (at >= 0) values[at] += bias;
        }
    }

    // Repeat penalty divides a positive logit (multiplies a negative one) once per distinct token
    // in the window; then frequency and presence penalties subtract count·f + (count > 0)·p.
    // values[i] is token i's logit, or token ids[i]'s when ids is given (ascending); tokens not among
    // the ids are skipped.
    private void ApplyPenalties(Span<float> values, ReadOnlySpan<int> ids, ReadOnlySpan<int> history)
    {
        if (!PenaltiesApply) return;
        float repeat = Options.RepeatPenalty, frequency = Options.FrequencyPenalty, presence = Options.PresencePenalty;
        int lastN = Options.RepeatLastN;
        ReadOnlySpan<int> window = lastN < 0 || lastN >= history.Length ? history : history[^lastN..];

        foreach (int token in window)
            if ((uint)token < (uint)VocabSize) _counts[token]++;
        foreach (int token in window)
        {
            if ((uint)token >= (uint)VocabSize) continue;
            int count = _counts[token];
            if (count == 0) continue;               // already applied for an earlier occurrence
            _counts[token] = 0;
            int at = ids.IsEmpty ? token : ids.BinarySearch(token);
            if (at < 0) continue;
            ref float logit = ref values[at];
            logit = logit <= 0f ? logit * repeat : logit / repeat;
            logit -= count * frequency + presence;
        }
    }

    // Keep the k best of the n tokens in _logits (logit descending, lower id first on ties), sorted.
    // k ≤ 0 keeps everything. Position i is token i, or token ids[i] when ids is given (ascending).
    private int TopK(int n, ReadOnlySpan<int> ids)
    {
        int k = Options.TopK;
        if (k <= 0 || k >= n)
        {
            for (int i = 0; i < n; i++) _candidates[i] = new Candidate(ids.IsEmpty ? i : ids[i], _logits[i]);
            HeapSortBestFirst(_candidates.AsSpan(0, n));
            return n;
        }

        // A min-heap of the k best seen so far; its root is the worst of them.
        Span<Candidate> heap = _candidates.AsSpan(0, k);
        for (int i = 0; i < k; i++) heap[i] = new Candidate(ids.IsEmpty ? i : ids[i], _logits[i]);
        for (int i = k / 2 - 1; i >= 0; i--) SiftDown(heap, i);
        for (int i = k; i < n; i++)
        {
            // Ids arrive in increasing order, so an equal logit never displaces an earlier id.
            if (_logits[i] > heap[0].Logit)
            {
                heap[0] = new Candidate(ids.IsEmpty ? i : ids[i], _logits[i]);
                SiftDown(heap, 0);
            }
        }
        HeapSortBestFirst(heap);
        return k;
    }

    // Heap sort (Span.Sort with a comparer allocates): build a heap with the worst at the root,
    // then move the root to the end repeatedly, so the best ends up first.
    private static void HeapSortBestFirst(Span<Candidate> items)
    {
        for (int i = items.Length / 2 - 1; i >= 0; i--) SiftDown(items, i);
        for (int end = items.Length - 1; end > 0; end--)
        {
            (items[0], items[end]) = (items[end], items[0]);
            SiftDown(items[..end], 0);
        }
    }

    private static void SiftDown(Span<Candidate> heap, int i)
    {
        var comparer = default(BestFirst);
        while (true)
        {
            int left = 2 * i + 1, right = left + 1, worst = i;
            // "Worse" = sorts later in best-first order.
            if (left < heap.Length && comparer.Compare(heap[left], heap[worst]) > 0) worst = left;
            if (right < heap.Length && comparer.Compare(heap[right], heap[worst]) > 0) worst = right;
            if (worst == i) return;
            (heap[i], heap[worst]) = (heap[worst], heap[i]);
            i = worst;
        }
    }

    private static void SiftDownMin(Span<float> heap, int i)
    {
        while (true)
        {
            int left = 2 * i + 1, right = left + 1, least = i;
            if (left < heap.Length && heap[left] < heap[least]) least = left;
            if (right < heap.Length && heap[right] < heap[least]) least = right;
            if (least == i) return;
            (heap[i], heap[least]) = (heap[least], heap[i]);
            i = least;
        }
    }

    // Smallest prefix whose un-tempered probability mass reaches p.
    private int TopP(int n)
    {
        float p = Options.TopP;
        if (p >= 1f || n <= 1) return n;
        float max = _candidates[0].Logit;
        double sum = 0;
        for (int i = 0; i < n; i++) sum += Math.Exp(_candidates[i].Logit - max);
        double cumulative = 0;
        for (int i = 0; i < n; i++)
        {
            cumulative += Math.Exp(_candidates[i].Logit - max) / sum;
            if (cumulative >= p) return i + 1;
        }
        return n;
    }

    // Keep logits ≥ max + ln(min_p).
    private int MinP(int n)
    {
        float p = Options.MinP;
        if (p <= 0f || n <= 1) return n;
        float threshold = _candidates[0].Logit + MathF.Log(p);
        int kept = 1;
        while (kept < n && _candidates[kept].Logit >= threshold) kept++;
        return kept;
    }

    // Temperature, softmax, then the first candidate whose cumulative probability exceeds the coin.
    private int Draw(int n, double coin)
    {
        double temperature = Options.Temperature;
        double max = _candidates[0].Logit / temperature;
        double sum = 0;
        for (int i = 0; i < n; i++) sum += Math.Exp(_candidates[i].Logit / temperature - max);
        double target = coin * sum, cumulative = 0;
        for (int i = 0; i < n; i++)
        {
            cumulative += Math.Exp(_candidates[i].Logit / temperature - max);
            if (target < cumulative) return _candidates[i].Id;
        }
        return _candidates[n - 1].Id;
    }

    private readonly record struct Candidate(int Id, float Logit);

    /// <summary>Higher logit first; the lower id first on a tie.</summary>
    private readonly struct BestFirst : IComparer<Candidate>
    {
        public int Compare(Candidate a, Candidate b) =>
            a.Logit != b.Logit ? b.Logit.CompareTo(a.Logit) : a.Id.CompareTo(b.Id);
    }
}
