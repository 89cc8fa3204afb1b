namespace BitNet.Inference.Model;

/// <summary>
/// Everything one sequence needs while it runs: the F16 KV cache and every activation buffer, all
/// allocated once here so the forward pass never allocates. Create with
/// <see cref="BitNetModel.CreateState"/>. Not thread-safe: one sequence, one caller at a time.
/// Buffers hold up to <see cref="BatchCapacity"/> tokens; longer inputs are processed in chunks.
/// </summary>
public sealed class InferenceState
{
    internal InferenceState(ModelConfig config, int contextLength, int batchCapacity, bool screenedHead = false)
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
            ScreenInput = new short[embd];
            ScreenLower = new float[config.VocabSize];
            ScreenUpper = new float[config.VocabSize];
            CandidateIds = new int[config.VocabSize];
            CandidateLogits = new float[config.VocabSize];
            StagedHeadRows = new Half[HeadRows.StagedRows * embd];
        }
        Steps = new TokenSteps(this);
        KeyCache = new Half[config.LayerCount][];
        ValueCache = new Half[config.LayerCount][];
        for (int l = 0; l < config.LayerCount; l++)
        {
            KeyCache[l] = new Half[(long)contextLength * kv];
            ValueCache[l] = new Half[(long)contextLength * kv];
        }
    }

    internal ModelConfig Config { get; }
    /// <summary>Tokens already in the KV cache; the next token is evaluated at this position.</summary>
    public int Position { get; internal set; }
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

    /// <summary>Forget the sequence (the cache is overwritten as new tokens arrive).</summary>
    public void Reset() => Position = 0;

    /// <summary>Keep only the first <paramref name="position"/> tokens (e.g. to reuse a shared prompt prefix).</summary>
    public void Rewind(int position)
    {
        if (position < 0 || position > Position)
            throw new ArgumentOutOfRangeException(nameof(position), position, $"must be between 0 and the current position {Position}");
        Position = position;
    }

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

    // The screened head's buffers (null unless the model's head is screened).
    /// <summary>The head input rounded to int16 [embd].</summary>
    internal short[]? ScreenInput { get; }
    /// <summary>Bounds of every row's F16 logit [vocab]; the sampler may apply its penalties to them in place.</summary>
    public float[]? ScreenLower { get; }
    public float[]? ScreenUpper { get; }
    /// <summary>Whether the last ForwardScreened produced bounds (else Logits holds the full logits).</summary>
    internal bool ScreenIsValid { get; set; }
    /// <summary>Scratch for the sampler's candidate rows and their exact logits [vocab].</summary>
    public int[]? CandidateIds { get; }
    /// <summary>Rows whose exact logits were computed by ExactLogits since the state was created (the bench reports it).</summary>
    public long ExactRowsComputed { get; internal set; }
    public float[]? CandidateLogits { get; }
    /// <summary>F16 head rows read for the exact logits [StagedRows × embd].</summary>
    internal Half[]? StagedHeadRows { get; }
    /// <summary>Per layer, F16 keys (after RoPE) and values, head-major: [kv head][position][head_dim], so one
    /// KV head's rows are contiguous and attention streams them instead of striding across all heads.</summary>
    internal Half[][] KeyCache { get; }
    internal Half[][] ValueCache { get; }
}
