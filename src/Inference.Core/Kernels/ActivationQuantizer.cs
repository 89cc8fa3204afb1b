using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace BitNet.Inference.Kernels;

/// <summary>
/// Per-token int8 quantization of activations before an I2_S matmul, exactly as bitnet.cpp's
/// quantize_row_i8_s does it (spec §4.1):
///   amax = max(1e-5, max|x|) accumulated in double; s = (float)(127 / amax);
///   q = clamp(round_half_even(x·s), −128, 127); sum = Σ q.
/// The matmul then computes y = ((float)D − (float)sum) / s · weightScale (spec §4.3).
/// </summary>
internal static class ActivationQuantizer
{
    /// <summary>
    /// Quantize one token's activations; returns the scale s and the sum of the int8 values.
    /// Vectorised where the runtime accelerates 256- or 128-bit vectors: the same float product x·s,
    /// the same round-half-to-even and clamp per element, so the int8 values and their sum are
    /// identical to <see cref="QuantizeScalar"/> (tested). Non-finite inputs are out of contract.
    /// </summary>
    public static (float Scale, int Sum) Quantize(ReadOnlySpan<float> x, Span<sbyte> q)
    {
        if (q.Length < x.Length)
            throw new ArgumentException("destination is shorter than the input", nameof(q));
        if (!Vector256.IsHardwareAccelerated && !Vector128.IsHardwareAccelerated)
            return QuantizeScalar(x, q);

        // max|x| of floats is itself a float, so taking it in float and widening once equals
        // bitnet.cpp's running max in double.
        float maxAbs = MaxAbs(x);
        double amax = Math.Max(1e-5, (double)maxAbs);
        float scale = (float)(127.0 / amax);

        ref float px = ref MemoryMarshal.GetReference(x);
        ref sbyte pq = ref MemoryMarshal.GetReference(q);
        int n = x.Length, i = 0, sum;
        if (Vector256.IsHardwareAccelerated)
        {
            var vs = Vector256.Create(scale);
            var lo = Vector256.Create(-128f);
            var hi = Vector256.Create(127f);
            Vector256<int> acc = default;
            // 32 at a time: narrowing whole 256-bit vectors (int → short → sbyte, exact after the clamp)
            // avoids Vector64, which x86 does not accelerate.
            for (; i + 32 <= n; i += 32)
            {
                Vector256<int> a = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round(Vector256.LoadUnsafe(ref px, (nuint)i) * vs), lo), hi));
                Vector256<int> b = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round(Vector256.LoadUnsafe(ref px, (nuint)i + 8) * vs), lo), hi));
                Vector256<int> c = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round(Vector256.LoadUnsafe(ref px, (nuint)i + 16) * vs), lo), hi));
                Vector256<int> d = Vector256.ConvertToInt32(Vector256.Min(Vector256.Max(Vector256.Round(Vector256.LoadUnsafe(ref px, (nuint)i + 24) * vs), lo), hi));
                acc += (a + b) + (c + d);
                Vector256.Narrow(Vector256.Narrow(a, b), Vector256.Narrow(c, d)).StoreUnsafe(ref pq, (nuint)i);
            }
            for (; i + 8 <= n; i += 8)
            {
                // Round is to nearest, ties to even, like MathF.Round; clamping in float is exact here.
                Vector256<float> r = Vector256.Min(Vector256.Max(Vector256.Round(Vector256.LoadUnsafe(ref px, (nuint)i) * vs), lo), hi);
                Vector256<int> v = Vector256.ConvertToInt32(r);
                acc += v;
                Vector128<short> narrow16 = Vector128.Narrow(v.GetLower(), v.GetUpper());
                Vector64<sbyte> narrow8 = Vector64.Narrow(narrow16.GetLower(), narrow16.GetUpper());
                narrow8.StoreUnsafe(ref pq, (nuint)i);
            }
            sum = Vector256.Sum(acc);
        }
        else
        {
            var vs = Vector128.Create(scale);
            var lo = Vector128.Create(-128f);
            var hi = Vector128.Create(127f);
            Vector128<int> acc = default;
            for (; i + 8 <= n; i += 8)
            {
                Vector128<int> a = Vector128.ConvertToInt32(Vector128.Min(Vector128.Max(Vector128.Round(Vector128.LoadUnsafe(ref px, (nuint)i) * vs), lo), hi));
                Vector128<int> b = Vector128.ConvertToInt32(Vector128.Min(Vector128.Max(Vector128.Round(Vector128.LoadUnsafe(ref px, (nuint)i + 4) * vs), lo), hi));
                acc += a + b;
                Vector128<short> narrow16 = Vector128.Narrow(a, b);
                Vector64<sbyte> narrow8 = Vector64.Narrow(narrow16.GetLower(), narrow16.GetUpper());
                narrow8.StoreUnsafe(ref pq, (nuint)i);
            }
            sum = Vector128.Sum(acc);
        }
        for (; i < n; i++)
        {
            int v = Math.Clamp((int)MathF.Round(x[i] * scale), -128, 127);
            q[i] = (sbyte)v;
            sum += v;
        }
        return (scale, sum);
    }

    private static float MaxAbs(ReadOnlySpan<float> x)
    {
        ref float px = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        float max = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> m = default;
            for (; i + 8 <= n; i += 8) m = Vector256.Max(m, Vector256.Abs(Vector256.LoadUnsafe(ref px, (nuint)i)));
            for (int k = 0; k < 8; k++) max = Math.Max(max, m[k]);
        }
        else if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            Vector128<float> m = default;
            for (; i + 4 <= n; i += 4) m = Vector128.Max(m, Vector128.Abs(Vector128.LoadUnsafe(ref px, (nuint)i)));
            for (int k = 0; k < 4; k++) max = Math.Max(max, m[k]);
        }
        for (; i < n; i++) max = Math.Max(max, Math.Abs(x[i]));
        return max;
    }

    /// <summary>The reference: bitnet.cpp's loop, element by element.</summary>
    public static (float Scale, int Sum) QuantizeScalar(ReadOnlySpan<float> x, Span<sbyte> q)
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
