using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace BitNet.Inference.Kernels;

/// <summary>
/// Small F32 vector primitives for the attention and norm code: the widest vector the runtime
/// accelerates, then a scalar tail. Sums are accumulated in several lanes, so results can differ
/// from a left-to-right scalar loop in the last bits (the oracle tolerance covers that).
/// </summary>
internal static class VectorMath
{
    /// <summary>Σ a[i]·b[i] over a.Length elements.</summary>
    public static float Dot(ReadOnlySpan<float> a, ReadOnlySpan<float> b)
    {
        if (b.Length < a.Length) throw new ArgumentException("second operand is shorter", nameof(b));
        ref float pa = ref MemoryMarshal.GetReference(a);
        ref float pb = ref MemoryMarshal.GetReference(b);
        int n = a.Length, i = 0;
        float sum = 0;
        if (Vector256.IsHardwareAccelerated && n >= 8)
        {
            Vector256<float> acc0 = default, acc1 = default;
            for (; i + 16 <= n; i += 16)
            {
                acc0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref pa, (nuint)i), Vector256.LoadUnsafe(ref pb, (nuint)i), acc0);
                acc1 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref pa, (nuint)i + 8), Vector256.LoadUnsafe(ref pb, (nuint)i + 8), acc1);
            }
            for (; i + 8 <= n; i += 8)
                acc0 = Vector256.FusedMultiplyAdd(Vector256.LoadUnsafe(ref pa, (nuint)i), Vector256.LoadUnsafe(ref pb, (nuint)i), acc0);
            sum = Vector256.Sum(acc0 + acc1);
        }
        else if (Vector128.IsHardwareAccelerated && n >= 4)
        {
            Vector128<float> acc0 = default, acc1 = default;
            for (; i + 8 <= n; i += 8)
            {
                acc0 = Vector128.FusedMultiplyAdd(Vector128.LoadUnsafe(ref pa, (nuint)i), Vector128.LoadUnsafe(ref pb, (nuint)i), acc0);
                acc1 = Vector128.FusedMultiplyAdd(Vector128.LoadUnsafe(ref pa, (nuint)i + 4), Vector128.LoadUnsafe(ref pb, (nuint)i + 4), acc1);
            }
            for (; i + 4 <= n; i += 4)
                acc0 = Vector128.FusedMultiplyAdd(Vector128.LoadUnsafe(ref pa, (nuint)i), Vector128.LoadUnsafe(ref pb, (nuint)i), acc0);
            sum = Vector128.Sum(acc0 + acc1);
        }
        for (; i < n; i++)
            sum += Unsafe.Add(ref pa, i) * Unsafe.Add(ref pb, i);
        return sum;
    }

    /// <summary>y[i] += a·x[i] over x.Length elements (each element one FMA, so independent of vector width).</summary>
    public static void MultiplyAdd(float a, ReadOnlySpan<float> x, Span<float> y)
    {
        if (y.Length < x.Length) throw new ArgumentException("destination is shorter", nameof(y));
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float py = ref MemoryMarshal.GetReference(y);
        int n = x.Length, i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var va = Vector256.Create(a);
            for (; i + 8 <= n; i += 8)
                Vector256.FusedMultiplyAdd(va, Vector256.LoadUnsafe(ref px, (nuint)i), Vector256.LoadUnsafe(ref py, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            var va = Vector128.Create(a);
            for (; i + 4 <= n; i += 4)
                Vector128.FusedMultiplyAdd(va, Vector128.LoadUnsafe(ref px, (nuint)i), Vector128.LoadUnsafe(ref py, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        }
        for (; i < n; i++)
            Unsafe.Add(ref py, i) = MathF.FusedMultiplyAdd(a, Unsafe.Add(ref px, i), Unsafe.Add(ref py, i));
    }

    /// <summary>x[i] = x[i]·a.</summary>
    public static void Scale(Span<float> x, float a)
    {
        ref float px = ref MemoryMarshal.GetReference(x);
        int n = x.Length, i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (var va = Vector256.Create(a); i + 8 <= n; i += 8)
                (Vector256.LoadUnsafe(ref px, (nuint)i) * va).StoreUnsafe(ref px, (nuint)i);
        for (; i < n; i++)
            Unsafe.Add(ref px, i) *= a;
    }

    /// <summary>x[i] = d[i] + x[i] (a residual connection; one rounding per element, as in scalar code).</summary>
    public static void Add(Span<float> x, ReadOnlySpan<float> d)
    {
        if (d.Length < x.Length) throw new ArgumentException("addend is shorter", nameof(d));
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float pd = ref MemoryMarshal.GetReference(d);
        int n = x.Length, i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= n; i += 8)
                (Vector256.LoadUnsafe(ref pd, (nuint)i) + Vector256.LoadUnsafe(ref px, (nuint)i)).StoreUnsafe(ref px, (nuint)i);
        else if (Vector128.IsHardwareAccelerated)
            for (; i + 4 <= n; i += 4)
                (Vector128.LoadUnsafe(ref pd, (nuint)i) + Vector128.LoadUnsafe(ref px, (nuint)i)).StoreUnsafe(ref px, (nuint)i);
        for (; i < n; i++)
            Unsafe.Add(ref px, i) = Unsafe.Add(ref pd, i) + Unsafe.Add(ref px, i);
    }

    /// <summary>
    /// z[i] = silu(z[i]) · u[i], silu as ggml computes a row on x86 with AVX2/FMA (bitnet.cpp's reference
    /// build, and the AVX-512 and NEON builds alike): x / (1 + e^−x) with ggml_v_expf, a polynomial exp,
    /// for each full group of 8, and the C library's expf for the rest of the row. Scalar code with
    /// explicit fused multiply-adds, so every kernel set and CPU gives the same bits.
    /// </summary>
    public static void SiluTimes(Span<float> z, ReadOnlySpan<float> u)
    {
        if (u.Length < z.Length) throw new ArgumentException("second operand is shorter", nameof(u));
        int vectorized = z.Length & ~7;
        for (int i = 0; i < z.Length; i++)
        {
            float x = z[i];
            float e = i < vectorized ? PolynomialExp(0f - x) : MathF.Exp(-x);
            z[i] = x / (1f + e) * u[i];
        }
    }

    /// <summary>ggml_v_expf (adapted by ggml from Arm's optimized routines; at most 1.45 + 0.5 ulp), one lane.</summary>
    internal static float PolynomialExp(float x)
    {
        static float F(uint bits) => BitConverter.UInt32BitsToSingle(bits);
        static uint B(float value) => BitConverter.SingleToUInt32Bits(value);
        float r = F(0x4b400000);                                            // 0x1.8p23
        float z = MathF.FusedMultiplyAdd(x, F(0x3fb8aa3b), r);              // x·log2(e), rounded to an integer in z's low bits
        float n = z - r;
        float b = MathF.FusedMultiplyAdd(-n, F(0x35bfbe8e), MathF.FusedMultiplyAdd(-n, F(0x3f317200), x));
        uint e = B(z) << 23;
        float k = F(e + B(1f));
        bool c = MathF.Abs(n) > 126f;
        float uu = b * b;
        float j = MathF.FusedMultiplyAdd(
            MathF.FusedMultiplyAdd(MathF.FusedMultiplyAdd(F(0x3c072010), b, F(0x3d2b9f17)), uu,
                MathF.FusedMultiplyAdd(F(0x3e2aaf33), b, F(0x3efffedb))),
            uu, F(0x3f7ffff6) * b);
        if (!c) return MathF.FusedMultiplyAdd(k, j, k);
        uint g = n <= 0f ? 0x82000000u : 0u;
        float s1 = F(g + 0x7f000000u), s2 = F(e - g);
        if (MathF.Abs(n) > 192f) return s1 * s1;
        return MathF.FusedMultiplyAdd(s2, j, s2) * s1;
    }

    /// <summary>
    /// <see cref="PolynomialExp(float)"/> on four lanes: the same operations lane by lane, so the same bits.
    /// A vector with a lane past the polynomial's range (|n| &gt; 126, far below any soft-max weight that
    /// matters) takes the scalar function for each lane.
    /// </summary>
    internal static Vector128<float> PolynomialExp(Vector128<float> x)
    {
        static Vector128<float> C(uint bits) => Vector128.Create(bits).AsSingle();
        Vector128<float> r = C(0x4b400000);
        Vector128<float> z = Vector128.FusedMultiplyAdd(x, C(0x3fb8aa3b), r);
        Vector128<float> n = z - r;
        if (Vector128.GreaterThanAny(Vector128.Abs(n), Vector128.Create(126f)))
            return Vector128.Create(PolynomialExp(x[0]), PolynomialExp(x[1]), PolynomialExp(x[2]), PolynomialExp(x[3]));
        Vector128<float> b = Vector128.FusedMultiplyAdd(-n, C(0x35bfbe8e), Vector128.FusedMultiplyAdd(-n, C(0x3f317200), x));
        Vector128<float> k = ((z.AsUInt32() << 23) + Vector128.Create(0x3f800000u)).AsSingle();
        Vector128<float> uu = b * b;
        Vector128<float> j = Vector128.FusedMultiplyAdd(
            Vector128.FusedMultiplyAdd(Vector128.FusedMultiplyAdd(C(0x3c072010), b, C(0x3d2b9f17)), uu,
                Vector128.FusedMultiplyAdd(C(0x3e2aaf33), b, C(0x3efffedb))),
            uu, C(0x3f7ffff6) * b);
        return Vector128.FusedMultiplyAdd(k, j, k);
    }

    /// <summary>z[i] = relu(z[i])² · u[i], computed as (r·r)·u like the scalar expression.</summary>
    public static void SquaredReluTimes(Span<float> z, ReadOnlySpan<float> u)
    {
        if (u.Length < z.Length) throw new ArgumentException("second operand is shorter", nameof(u));
        ref float pz = ref MemoryMarshal.GetReference(z);
        ref float pu = ref MemoryMarshal.GetReference(u);
        int n = z.Length, i = 0;
        if (Vector256.IsHardwareAccelerated)
            for (; i + 8 <= n; i += 8)
            {
                Vector256<float> v = Vector256.LoadUnsafe(ref pz, (nuint)i);
                Vector256<float> r = Vector256.ConditionalSelect(Vector256.GreaterThan(v, Vector256<float>.Zero), v, Vector256<float>.Zero);
                (r * r * Vector256.LoadUnsafe(ref pu, (nuint)i)).StoreUnsafe(ref pz, (nuint)i);
            }
        else if (Vector128.IsHardwareAccelerated)
            for (; i + 4 <= n; i += 4)
            {
                Vector128<float> v = Vector128.LoadUnsafe(ref pz, (nuint)i);
                Vector128<float> r = Vector128.ConditionalSelect(Vector128.GreaterThan(v, Vector128<float>.Zero), v, Vector128<float>.Zero);
                (r * r * Vector128.LoadUnsafe(ref pu, (nuint)i)).StoreUnsafe(ref pz, (nuint)i);
            }
        for (; i < n; i++)
        {
            float v = Unsafe.Add(ref pz, i);
            float r = v > 0 ? v : 0f;
            Unsafe.Add(ref pz, i) = r * r * Unsafe.Add(ref pu, i);
        }
    }

    /// <summary>
    /// One RMSNorm row as ggml computes it (spec §5.2): each x·x rounded to float, the products summed
    /// in double (here in 8 lanes, then across — a different order than left to right, in double, so
    /// the float mean almost never changes), mean = (float)(Σ/n), scale = 1/sqrtf(mean + eps), then
    /// y = (x·scale)·weight with both products rounded to float, exactly as the scalar code does.
    /// </summary>
    public static void RmsNormRow(ReadOnlySpan<float> x, ReadOnlySpan<float> weight, Span<float> y, float eps)
    {
        int n = weight.Length;
        if (x.Length < n || y.Length < n) throw new ArgumentException("row shorter than the norm weight");
        ref float px = ref MemoryMarshal.GetReference(x);
        ref float pw = ref MemoryMarshal.GetReference(weight);
        ref float py = ref MemoryMarshal.GetReference(y);
        int i = 0;
        double sum = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            Vector256<double> acc = default;
            for (; i + 8 <= n; i += 8)
            {
                Vector256<float> v = Vector256.LoadUnsafe(ref px, (nuint)i);
                Vector256<float> sq = v * v;
                acc += Vector256.WidenLower(sq) + Vector256.WidenUpper(sq);
            }
            sum = Vector256.Sum(acc);
        }
        for (; i < n; i++) { float v = Unsafe.Add(ref px, i); sum += v * v; }
        float mean = (float)(sum / n);
        float scale = 1.0f / MathF.Sqrt(mean + eps);

        i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var vs = Vector256.Create(scale);
            for (; i + 8 <= n; i += 8)
                ((Vector256.LoadUnsafe(ref px, (nuint)i) * vs) * Vector256.LoadUnsafe(ref pw, (nuint)i)).StoreUnsafe(ref py, (nuint)i);
        }
        for (; i < n; i++)
        {
            float scaled = Unsafe.Add(ref px, i) * scale;
            Unsafe.Add(ref py, i) = scaled * Unsafe.Add(ref pw, i);
        }
    }
}
