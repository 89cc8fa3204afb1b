namespace BitNet.Inference.Model;

/// <summary>
/// Rotary position embedding, NEOX style over the full head (spec §5.3), as ggml computes it:
/// θ_0 = pos, θ_{i+1} = θ_i · powf(base, −2/head_dim) (an iterated float product), and element i
/// of each head is rotated with element i + head_dim/2.
/// </summary>
public static class Rope
{
    public static void ApplyNeox(Span<float> heads, int headCount, int headDim, int position, float freqBase)
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
        for (int h = 0; h < headCount; h++)
        {
            Span<float> x = heads.Slice(h * headDim, headDim);
            for (int i = 0; i < half; i++)
            {
                float x0 = x[i], x1 = x[i + half];
                x[i] = x0 * cos[i] - x1 * sin[i];
                x[i + half] = x0 * sin[i] + x1 * cos[i];
            }
        }
    }
}
