namespace BitNet.Inference.Model;

/// <summary>
/// Causal grouped-query attention over the F16 KV cache for one token (spec §5.4), the one function
/// the forward pass calls for it. Follows bitnet.cpp's precision: Q rounded to F16, QKᵀ accumulated in
/// F32, softmax in F32 with the exponential sum in double, then probabilities · F16 values in F32 —
/// with the probabilities rounded to F16 first only when bitnet.cpp does so (see <see cref="Precision"/>).
/// </summary>
public static class Attention
{
    /// <param name="q">The token's query, HeadCount × HeadDim, after RoPE.</param>
    /// <param name="keyCache">This layer's K cache, [position][KvDim] as F16, holding positions 0..position.</param>
    /// <param name="valueCache">This layer's V cache, same layout.</param>
    /// <param name="position">The token's position: it sees cache positions 0..position (causal mask).</param>
    /// <param name="scratch">At least position + 1 floats.</param>
    /// <param name="output">HeadCount × HeadDim: the heads' outputs, concatenated.</param>
    /// <param name="roundProbabilitiesToF16">Round the softmax output to F16 before ·V (bitnet.cpp does for single-token batches).</param>
    public static void Compute(ModelConfig config, ReadOnlySpan<float> q, ReadOnlySpan<Half> keyCache, ReadOnlySpan<Half> valueCache,
        int position, Span<float> scratch, Span<float> output, bool roundProbabilitiesToF16)
    {
        int headDim = config.HeadDim, kvDim = config.KvDim, positions = position + 1;
        float scale = 1.0f / MathF.Sqrt(headDim); // kq_scale = 1/sqrtf(n_embd_head)
        Span<float> scores = scratch[..positions];
        Span<float> q16 = stackalloc float[headDim];

        for (int h = 0; h < config.HeadCount; h++)
        {
            int kvOffset = h / config.GroupSize * headDim; // head h reads KV head h / group
            // ggml converts Q to F16 before the dot with the F16 cache.
            for (int i = 0; i < headDim; i++)
                q16[i] = (float)(Half)q[h * headDim + i];

            // scores_j = (q · k_j) · scale, F32 accumulation; the causal mask excludes j > position.
            float max = float.NegativeInfinity;
            for (int j = 0; j < positions; j++)
            {
                ReadOnlySpan<Half> k = keyCache.Slice(j * kvDim + kvOffset, headDim);
                float dot = 0;
                for (int i = 0; i < headDim; i++)
                    dot += q16[i] * HalfTable.ToFloat(k[i]);
                scores[j] = dot * scale;
                max = Math.Max(max, scores[j]);
            }

            // softmax: exp(w − max), sum in double, multiply by (float)(1/sum)
            double sum = 0;
            for (int j = 0; j < positions; j++)
            {
                scores[j] = MathF.Exp(scores[j] - max);
                sum += scores[j];
            }
            float inverse = (float)(1.0 / sum);
            for (int j = 0; j < positions; j++)
                scores[j] = roundProbabilitiesToF16 ? (float)(Half)(scores[j] * inverse) : scores[j] * inverse;

            // out = Σ_j p_j · v_j, F32 accumulation over positions for each dimension.
            Span<float> head = output.Slice(h * headDim, headDim);
            head.Clear();
            for (int j = 0; j < positions; j++)
            {
                ReadOnlySpan<Half> v = valueCache.Slice(j * kvDim + kvOffset, headDim);
                float p = scores[j];
                for (int i = 0; i < headDim; i++)
                    head[i] += p * HalfTable.ToFloat(v[i]);
            }
        }
    }
}

/// <summary>
/// Where bitnet.cpp rounds an F32 operand to F16 before multiplying it with F16 data. Measured against
/// the oracle (exact to 3e-6 only with this rule): ggml's F16 × F32 products go through llamafile's sgemm,
/// which keeps the F32 operand, when the operand has several rows (a multi-token batch), and through
/// ggml's F16 vec-dot, which rounds the operand to F16, when it has one row (single-token decode, or only
/// the last token's logits requested). This affects the attention probabilities (·V) and the LM head input;
/// Q is rounded to F16 in both cases (its permuted layout always goes through the F16 conversion).
/// </summary>
public static class Precision
{
    /// <summary>True when an F32 operand of <paramref name="rows"/> rows is rounded to F16 before an F16 product.</summary>
    public static bool RoundsOperandToF16(int rows) => rows == 1;
}
