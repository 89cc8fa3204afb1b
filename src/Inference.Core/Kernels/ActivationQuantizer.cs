namespace BitNet.Inference.Kernels;

/// <summary>
/// Per-token int8 quantization of activations before an I2_S matmul, exactly as bitnet.cpp's
/// quantize_row_i8_s does it (spec §4.1):
///   amax = max(1e-5, max|x|) accumulated in double; s = (float)(127 / amax);
///   q = clamp(round_half_even(x·s), −128, 127); sum = Σ q.
/// The matmul then computes y = ((float)D − (float)sum) / s · weightScale (spec §4.3).
/// </summary>
public static class ActivationQuantizer
{
    /// <summary>Quantize one token's activations; returns the scale s and the sum of the int8 values.</summary>
    public static (float Scale, int Sum) Quantize(ReadOnlySpan<float> x, Span<sbyte> q)
    {
        if (q.Length < x.Length)
            throw new ArgumentException("destination is shorter than the input", nameof(q));

        // bitnet.cpp starts the running max at 1e-5 (in double), so an all-zero row gets a finite scale.
        double amax = 1e-5;
        foreach (float v in x)
            amax = Math.Max(amax, Math.Abs((double)v));
        float scale = (float)(127.0 / amax);

        int sum = 0;
        for (int i = 0; i < x.Length; i++)
        {
            // x·s is a float product; MathF.Round rounds half to even like ggml's nearest_int.
            int v = (int)MathF.Round(x[i] * scale);
            v = Math.Clamp(v, -128, 127);
            q[i] = (sbyte)v;
            sum += v;
        }
        return (scale, sum);
    }
}
