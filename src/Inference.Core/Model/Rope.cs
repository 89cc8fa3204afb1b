using System.Runtime.Intrinsics;

namespace BitNet.Inference.Model;

/// <summary>
/// Rotary position embedding, NEOX style over the full head (spec §5.3), as ggml computes it:
/// θ_0 = pos, θ_{i+1} = θ_i · powf(base, −2/head_dim) (an iterated float product), and element i
/// of each head is rotated with element i + head_dim/2.
/// </summary>
public static class Rope
{
    public static void ApplyNeox(Span<float> heads, int headCount, int headDim, int position, float freqBase) =>
        ApplyNeox(heads, headCount, [], 0, headDim, position, freqBase);

    /// <summary>Rotate the query heads and the key heads of one token (one angle table for both).</summary>
    public static void ApplyNeox(Span<float> q, int qHeads, Span<float> k, int kHeads, int headDim, int position, float freqBase)
    {
        int half = headDim / 2;
        float thetaScale = MathF.Pow(freqBase, -2.0f / headDim);
        Span<float> cos = stackalloc float[half];
        Span<float> sin = stackalloc float[half];
        float theta = position;
        for (int i = 0; i < half; i++)
        {
            cos[i] = MathF.Cos(theta);
            sin[i] = MathF.Sin(theta);
            theta *= thetaScale;
        }
        for (int h = 0; h < qHeads; h++) Rotate(q.Slice(h * headDim, headDim), cos, sin);
        for (int h = 0; h < kHeads; h++) Rotate(k.Slice(h * headDim, headDim), cos, sin);
    }

    /// <summary>x_i, x_{i+half} ← (x_i·cos − x_{i+half}·sin, x_i·sin + x_{i+half}·cos), each product rounded (no FMA).</summary>
    private static void Rotate(Span<float> x, ReadOnlySpan<float> cos, ReadOnlySpan<float> sin)
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
}
