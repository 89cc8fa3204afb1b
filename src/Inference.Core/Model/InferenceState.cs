namespace BitNet.Inference.Model;

/// <summary>
/// Everything a forward pass needs: every activation buffer, allocated once here so the forward pass
/// never allocates, and the rows of the batch being evaluated (which sequence and position each belongs
/// to). Created with <see cref="BitNetModel.CreateState"/>, it also holds one sequence of its own (<see
/// cref="Sequence"/>, in a private KV pool sized for the context) that the single-sequence calls extend;
/// the engine's scheduler uses one state as the workspace of steps over many sequences of a shared pool.
/// Not thread-safe: one caller at a time. Buffers hold up to <see cref="BatchCapacity"/> rows; longer
/// inputs are processed in chunks.
/// </summary>
public sealed class InferenceState
{
    internal InferenceState(ModelConfig config, int contextLength, int batchCapacity, bool screenedHead = false, KvCachePool? pool = null)
    {
        Config = config;
        ContextLength = contextLength;
        BatchCapacity = batchCapacity;
        int embd = config.EmbeddingLength, kv = config.KvDim, ffn = config.FeedForwardLength, n = batchCapacity;

        Residual = new float[n * embd];
        Normed = new float[n * embd];
        Query = new float[n * embd];
        Key = new float[n * kv];
        Value = new float[n * kv];
        AttentionOut = new float[n * embd];
        Projected = new float[n * embd];
        Gate = new float[n * ffn];
        Up = new float[n * ffn];
        Quantized = new QuantizedActivations(n, Math.Max(embd, ffn));
        Logits = new float[config.VocabSize];
        if (screenedHead)
        {
            EnsureScreenInputs(1);
        }
        Steps = new TokenSteps(this);
        RowTokens = new int[n];
        RowPositions = new int[n];
        RowSequences = new KvSequence[n];
        RowRoundsProbabilities = new bool[n];
        // The private pool's memory is committed only as positions are written.
        pool ??= new KvCachePool(config, (contextLength + KvCachePool.DefaultBlockTokens - 1) / KvCachePool.DefaultBlockTokens);
        Sequence = new KvSequence(pool, contextLength);
    }

    internal ModelConfig Config { get; }
    /// <summary>Tokens of <see cref="Sequence"/> already in the KV cache; the next token is evaluated at this position.</summary>
    public int Position => Sequence.Length;
    /// <summary>The state's own sequence, extended by <see cref="BitNetModel.Forward"/> and the other single-sequence calls.</summary>
    public KvSequence Sequence { get; }
    /// <summary>Positions the KV cache holds.</summary>
    public int ContextLength { get; }
    /// <summary>Tokens evaluated together in one pass of the layers.</summary>
    public int BatchCapacity { get; }

    /// <summary>
    /// How many of <paramref name="remaining"/> tokens to evaluate next: up to BatchCapacity, but never
    /// leaving a lone last token for a batch of its own. bitnet.cpp evaluates a one-token batch with
    /// F16-rounded operands and a multi-token batch without (see Precision), so a lone tail would make
    /// the logits depend on where the input was cut.
    /// </summary>
    public int NextChunkLength(int remaining)
    {
        int count = Math.Min(BatchCapacity, remaining);
        return remaining - count == 1 && count > 2 ? count - 1 : count;
    }

    /// <summary>
    /// How many of a prompt's <paramref name="remaining"/> tokens a step with room for
    /// <paramref name="budget"/> rows evaluates: <see cref="NextChunkLength"/> within the budget, and 0
    /// rather than a lone token (one prompt token alone would be computed as decode, see Precision), unless
    /// the whole prompt is that one token.
    /// </summary>
    public static int PromptChunkLength(int remaining, int budget)
    {
        if (remaining <= 0 || budget <= 0) return 0;
        int count = Math.Min(budget, remaining);
        if (remaining - count == 1) count--;        // never leave a lone last token
        if (count == 1 && remaining > 1) return 0;  // nor take a lone one from a longer prompt
        return count;
    }

    /// <summary>Forget the sequence (its blocks go back to the pool).</summary>
    public void Reset() => Sequence.Clear();

    /// <summary>Keep only the first <paramref name="position"/> tokens (e.g. to reuse a shared prompt prefix).</summary>
    public void Rewind(int position)
    {
        if (position < 0 || position > Position)
            throw new ArgumentOutOfRangeException(nameof(position), position, $"must be between 0 and the current position {Position}");
        Sequence.Truncate(position);
    }

    /// <summary>
    /// Describe row <paramref name="row"/> of the next <see cref="BitNetModel.EvaluateRows"/>: the token at
    /// <paramref name="position"/> of <paramref name="sequence"/>, its attention probabilities rounded to F16
    /// or not (<see cref="BitNetModel.RoundsAttentionProbabilities"/> of the sequence's row count in the step).
    /// </summary>
    public void SetRow(int row, int token, KvSequence sequence, int position, bool roundsProbabilities)
    {
        ArgumentNullException.ThrowIfNull(sequence);
        if ((uint)row >= (uint)BatchCapacity) throw new ArgumentOutOfRangeException(nameof(row), row, $"must be 0 … {BatchCapacity - 1}");
        RowTokens[row] = token;
        RowSequences[row] = sequence;
        RowPositions[row] = position;
        RowRoundsProbabilities[row] = roundsProbabilities;
    }

    // The rows of the batch being evaluated.
    /// <summary>Token id of each row.</summary>
    internal int[] RowTokens { get; }
    /// <summary>Position of each row in its sequence.</summary>
    internal int[] RowPositions { get; }
    /// <summary>The sequence each row extends (its K and V go there; its attention reads there).</summary>
    internal KvSequence[] RowSequences { get; }
    /// <summary>Whether a row's attention probabilities are rounded to F16 (its sequence has one row in the batch: see Precision).</summary>
    internal bool[] RowRoundsProbabilities { get; }

    // Activation buffers, row-major [token, width] for up to BatchCapacity tokens.
    /// <summary>x: the residual stream [batch, embd].</summary>
    internal float[] Residual { get; }
    /// <summary>RMSNorm output feeding a matmul [batch, embd].</summary>
    internal float[] Normed { get; }
    internal float[] Query { get; }          // [batch, embd]
    internal float[] Key { get; }            // [batch, kv_dim]
    internal float[] Value { get; }          // [batch, kv_dim]
    internal float[] AttentionOut { get; }   // [batch, embd], heads concatenated
    /// <summary>Output of Wo and of Wdown [batch, embd], added to the residual.</summary>
    internal float[] Projected { get; }
    internal float[] Gate { get; }           // [batch, ffn]; becomes f = relu(gate)²·up
    internal float[] Up { get; }             // [batch, ffn]
    internal QuantizedActivations Quantized { get; }
    /// <summary>Attention over (token, KV group) pairs on the model's worker pool; reused every layer.</summary>
    internal Attention.BatchJob AttentionJob { get; } = new();
    /// <summary>The per-token steps between the matmuls, on the model's worker pool; reused every layer.</summary>
    internal TokenSteps Steps { get; }
    internal float[] Logits { get; }         // [vocab] last token's logits (Forward)

    // The screened head's buffers (null unless the model's head is screened), for each of the head inputs of a
    // step: one for Forward, up to one per sequence for a batched step (grown by EnsureScreenInputs, then reused).
    /// <summary>The head inputs rounded to int16 [inputs × embd], from a 64-byte boundary (a 512-bit load across two
    /// cache lines costs two).</summary>
    internal Span<short> ScreenInput => _screenInput.AsSpan(_screenInputAt, ScreenInputs * Config.EmbeddingLength);
    private short[]? _screenInput;
    private int _screenInputAt;
    private float[]? _screenLower, _screenUpper;
    /// <summary>Per head input, whether it had bounds (a finite input) [inputs].</summary>
    internal bool[]? ScreenUsable { get; private set; }
    /// <summary>Bounds of every row's F16 logit for the first (or only) head input [vocab]; the sampler may apply its penalties to them in place.</summary>
    public Span<float> ScreenLower => ScreenLowerOf(0);
    public Span<float> ScreenUpper => ScreenUpperOf(0);
    public Span<float> ScreenLowerOf(int input) => _screenLower.AsSpan(input * Config.VocabSize, Config.VocabSize);
    public Span<float> ScreenUpperOf(int input) => _screenUpper.AsSpan(input * Config.VocabSize, Config.VocabSize);
    /// <summary>Whether the screened head's last batched pass (BitNetModel.HeadBounds) gave input <paramref name="input"/> bounds.</summary>
    public bool HasBounds(int input) => ScreenUsable![input];
    /// <summary>Head inputs the screened buffers hold.</summary>
    internal int ScreenInputs => ScreenUsable?.Length ?? 0;
    /// <summary>The bounds of every head input, inputs × vocab, input after input.</summary>
    internal Span<float> AllScreenLower => _screenLower;
    internal Span<float> AllScreenUpper => _screenUpper;

    /// <summary>Grows the screened head's buffers to <paramref name="inputs"/> head inputs (16 bytes per vocabulary row each:
    /// the bounds, the candidate ids and their logits).</summary>
    internal void EnsureScreenInputs(int inputs)
    {
        if (ScreenInputs >= inputs) return;
        _screenInput = GC.AllocateArray<short>(inputs * Config.EmbeddingLength + 32, pinned: true);
        unsafe
        {
            fixed (short* start = _screenInput) _screenInputAt = (int)((64 - (nint)start % 64) % 64 / sizeof(short));
        }
        _screenLower = new float[(long)inputs * Config.VocabSize];
        _screenUpper = new float[(long)inputs * Config.VocabSize];
        ScreenUsable = new bool[inputs];
        _candidateIds = new int[(long)inputs * Config.VocabSize];
        _candidateLogits = new float[(long)inputs * Config.VocabSize];
    }

    /// <summary>Whether the last ForwardScreened produced bounds (else Logits holds the full logits).</summary>
    internal bool ScreenIsValid => HasBounds(0);
    private int[]? _candidateIds;
    private float[]? _candidateLogits;
    /// <summary>Scratch for the sampler's candidate rows and their exact logits [vocab], per screened head input.</summary>
    public Span<int> CandidateIdsOf(int input) => _candidateIds.AsSpan(input * Config.VocabSize, Config.VocabSize);
    public Span<float> CandidateLogitsOf(int input) => _candidateLogits.AsSpan(input * Config.VocabSize, Config.VocabSize);
    /// <summary>The first (or only) head input's <see cref="CandidateIdsOf"/> and <see cref="CandidateLogitsOf"/>.</summary>
    public Span<int> CandidateIds => CandidateIdsOf(0);
    public Span<float> CandidateLogits => CandidateLogitsOf(0);
    /// <summary>Rows whose exact logits were computed by ExactLogits since the state was created (the bench reports it).</summary>
    public long ExactRowsComputed => Interlocked.Read(ref _exactRowsComputed);
    private long _exactRowsComputed;
    internal void CountExactRows(int rows) => Interlocked.Add(ref _exactRowsComputed, rows);
}
