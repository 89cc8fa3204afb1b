using System.Runtime.Intrinsics;

namespace BitNet.Inference.Model;

/// <summary>How a model rotates its query and key heads: ggml's rope with the file's settings.</summary>
/// <param name="Style">NEOX (i with i + n_rot/2) or adjacent pairs (2i with 2i + 1).</param>
/// <param name="HeadDim">Width of one head.</param>
/// <param name="Dimensions">n_rot: the first this many elements of each head rotate; the rest pass through.</param>
/// <param name="FreqBase">θ base.</param>
/// <param name="FreqScale">Multiplies every angle (linear RoPE scaling), 1 when unscaled.</param>
/// <param name="Factors">rope_freqs: pair i's angle is divided by Factors[i]; null for none.</param>
public sealed record RopeSettings(RopeStyle Style, int HeadDim, int Dimensions, float FreqBase, float FreqScale = 1f, float[]? Factors = null)
{
    public static RopeSettings For(ModelConfig config, float[]? factors) =>
        new(config.Graph.Rope, config.HeadDim, config.RopeDimensionCount, config.RopeFreqBase, config.RopeFrequencyScale, factors);
}

/// <summary>
/// Rotary position embedding as ggml computes it (spec §5.3): θ_0 = pos, θ_{i+1} = θ_i · powf(base, −2/n_rot)
/// (an iterated float product); pair i turns by freq_scale · θ_i / factor_i. NEOX style rotates element
/// i of a head with element i + n_rot/2, the normal style elements 2i and 2i + 1.
/// </summary>
public static class Rope
{
    public static void ApplyNeox(Span<float> heads, int headCount, int headDim, int position, float freqBase) =>
        ApplyNeox(heads, headCount, [], 0, headDim, position, freqBase);

    /// <summary>Rotate the query heads and the key heads of one token (one angle table for both), NEOX style over the whole head.</summary>
    public static void ApplyNeox(Span<float> q, int qHeads, Span<float> k, int kHeads, int headDim, int position, float freqBase) =>
        Apply(new RopeSettings(RopeStyle.Neox, headDim, headDim, freqBase), q, qHeads, k, kHeads, position);

    /// <summary>Rotate the query heads and the key heads of one token at <paramref name="position"/>.</summary>
    public static void Apply(RopeSettings rope, Span<float> q, int qHeads, Span<float> k, int kHeads, int position)
    {
        int pairs = rope.Dimensions / 2, headDim = rope.HeadDim;
        float thetaScale = MathF.Pow(rope.FreqBase, -2.0f / rope.Dimensions);
        Span<float> cos = stackalloc float[pairs];
        Span<float> sin = stackalloc float[pairs];
        float theta = position;
        float[]? factors = rope.Factors;
        for (int i = 0; i < pairs; i++)
        {
            float angle = factors is null && rope.FreqScale == 1f ? theta : rope.FreqScale * (theta / (factors?[i] ?? 1f));
            cos[i] = MathF.Cos(angle);
            sin[i] = MathF.Sin(angle);
            theta *= thetaScale;
        }
        if (rope.Style == RopeStyle.Neox)
        {
            for (int h = 0; h < qHeads; h++) RotateHalves(q.Slice(h * headDim, rope.Dimensions), cos, sin);
            for (int h = 0; h < kHeads; h++) RotateHalves(k.Slice(h * headDim, rope.Dimensions), cos, sin);
        }
        else
        {
            for (int h = 0; h < qHeads; h++) RotatePairs(q.Slice(h * headDim, rope.Dimensions), cos, sin);
            for (int h = 0; h < kHeads; h++) RotatePairs(k.Slice(h * headDim, rope.Dimensions), cos, sin);
        }
    }

    /// <summary>x_i, x_{i+half} ← (x_i·cos − x_{i+half}·sin, x_i·sin + x_{i+half}·cos), each product rounded (no FMA).</summary>
    private static void RotateHalves(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        int half = cos.Length, i = 0;
        Span<float> x0 = x[..half], x1 = x.Slice(half, half);
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= half; i += 8)
            {
                Vector256<float> a = Vector256.Create(x0.Slice(i, 8)), b = Vector256.Create(x1.Slice(i, 8));
                Vector256<float> c = Vector256.Create(cos.Slice(i, 8)), s = Vector256.Create(sin.Slice(i, 8));
                (a * c - b * s).CopyTo(x0.Slice(i, 8));
                (a * s + b * c).CopyTo(x1.Slice(i, 8));
            }
        for (; i < half; i++)
        {
            float a = x0[i], b = x1[i];
            x0[i] = a * cos[i] - b * sin[i];
            x1[i] = a * sin[i] + b * cos[i];
        }
    }

    /// <summary>x_{2i}, x_{2i+1} ← (x_{2i}·cos − x_{2i+1}·sin, x_{2i}·sin + x_{2i+1}·cos), each product rounded (no FMA).</summary>
    private static void RotatePairs(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
    {
        for (int i = 0; i < cos.Length; i++)
        {
            float a = x[2 * i], b = x[2 * i + 1];
            x[2 * i] = a * cos[i] - b * sin[i];
            x[2 * i + 1] = a * sin[i] + b * cos[i];
        }
    }
}
