using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace BitNet.Inference.Kernels;

/// <summary>
/// Computes dst[r − rowStart] = scale[r] · Σ_k q[r, k] · x[k] for rows of an int8 matrix with one
/// float scale per row (the optional quantized LM head).
/// </summary>
public delegate void Q8DotRowsKernel(
    ReadOnlySpan<sbyte> matrix, ReadOnlySpan<float> rowScales, int columns, ReadOnlySpan<float> x,
    int rowStart, int rowCount, Span<float> dst);

/// <summary>
/// The tied embedding quantized once at load to int8 with one scale per row (absmax / 127, round
/// half to even; an all-zero row keeps zeros): 1 byte per weight instead of 2, so the LM head reads half as many bytes per
/// token. Opt-in (<c>--lm-head q8</c>): its logits differ slightly from the exact F16 head.
/// </summary>
internal sealed unsafe class LmHeadQ8 : IDisposable
{
    /// <summary>The int8 rows, in 2 MB pages where the OS gives them (328 MB for 2B4T).</summary>
    private readonly Memory.HugePageBlock _block;
    private readonly long _length;

    /// <summary>rows × columns int8, row-major (native memory, freed by <see cref="Dispose"/>).</summary>
    public ReadOnlySpan<sbyte> Weights
    {
        get
        {
            ObjectDisposedException.ThrowIf(_block.IsDisposed, this);
            return new ReadOnlySpan<sbyte>(_block.Start, checked((int)_length));
        }
    }

    /// <summary>One dequantization scale per row: w ≈ q · scale.</summary>
    public float[] Scales { get; }
    /// <summary>
    /// Per row, what the screened head's error bound needs (null unless asked for at quantization):
    /// max_k |w[r,k] − scale·q[r,k]| rounded up, max_k |w[r,k]|, and Σ_k |q[r,k]|.
    /// </summary>
    public RowErrorFacts? ErrorFacts { get; private set; }
    public int Rows { get; }
    public int Columns { get; }

    private LmHeadQ8(int rows, int columns)
    {
        Rows = rows; Columns = columns;
        _length = checked((long)rows * columns);
        checked { _ = (int)_length; }   // spans address it
        _block = new Memory.HugePageBlock(_length);
        Scales = new float[rows];
    }

    public void Dispose() => _block.Dispose();

    /// <summary>
    /// Quantize an F16 matrix; <paramref name="parallelFor"/> (row ranges) spreads the work, or null for
    /// one thread. With <paramref name="errorFacts"/>, also measure each row's quantization error
    /// (<see cref="ErrorFacts"/>), one more pass over the row while it is in cache.
    /// </summary>
    public static LmHeadQ8 Quantize(ReadOnlySpan<Half> matrix, int rows, int columns, Action<int, Action<int, int>>? parallelFor = null,
        bool errorFacts = false)
    {
        if (rows <= 0 || columns <= 0 || (long)rows * columns > matrix.Length)
            throw new ArgumentException($"a {rows}×{columns} head does not fit the {matrix.Length}-value matrix", nameof(matrix));
        var head = new LmHeadQ8(rows, columns);
        sbyte* weights = (sbyte*)head._block.Start;
        float[] scales = head.Scales;
        RowErrorFacts? facts = errorFacts ? new RowErrorFacts(rows) : null;
        head.ErrorFacts = facts;
        {
            fixed (Half* m = matrix)
            {
                Half* mp = m;
                void Range(int start, int end)
                {
                    Span<float> row = columns <= 16384 ? stackalloc float[columns] : new float[columns];
                    for (int r = start; r < end; r++)
                    {
                        F16.ConvertToSingle(new ReadOnlySpan<Half>(mp + (long)r * columns, columns), row);
                        // The activation quantizer's rule (absmax → ±127, round half to even), vectorised;
                        // the row's dequantization scale is 1/s.
                        (float s, _) = ActivationQuantizer.Quantize(row, new Span<sbyte>(weights + (long)r * columns, columns));
                        scales[r] = 1f / s;
                        facts?.Measure(r, row, new ReadOnlySpan<sbyte>(weights + (long)r * columns, columns), scales[r]);
                    }
                }
                if (parallelFor is null) Range(0, rows);
                else parallelFor(rows, Range);
            }
        }
        return head;
    }

    /// <summary>Reference rows: Σ (float)q·x in float, times the row scale.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsScalar(ReadOnlySpan<sbyte> matrix, ReadOnlySpan<float> rowScales, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        Validate(matrix, rowScales, columns, x, rowStart, rowCount, dst);
        for (int r = 0; r < rowCount; r++)
        {
            ReadOnlySpan<sbyte> row = matrix.Slice((rowStart + r) * columns, columns);
            float sum = 0;
            for (int k = 0; k < columns; k++) sum += row[k] * x[k];
            dst[r] = sum * rowScales[rowStart + r];
        }
    }

    /// <summary>AVX-512F rows: 16 bytes sign-extended to int32, converted to float, one FMA; 4 rows per input load.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsAvx512(ReadOnlySpan<sbyte> matrix, ReadOnlySpan<float> rowScales, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        if (!Avx512F.IsSupported) throw new PlatformNotSupportedException("needs AVX-512F");
        Validate(matrix, rowScales, columns, x, rowStart, rowCount, dst);
        int vec = columns & ~15;
        unsafe
        {
            fixed (sbyte* m = matrix)
            fixed (float* xs = x)
            {
                int r = 0;
                for (; r + 4 <= rowCount; r += 4)
                {
                    sbyte* w0 = m + (long)(rowStart + r) * columns, w1 = w0 + columns, w2 = w1 + columns, w3 = w2 + columns;
                    Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    sbyte* ahead = w0 + 8L * columns;   // prefetch two 4-row tiles ahead (see F16.DotRowsAvx512)
                    for (int k = 0; k < vec; k += 16)
                    {
                        Sse.Prefetch1(ahead + 4L * k);
                        Vector512<float> xv = Avx512F.LoadVector512(xs + k);
                        a0 = Avx512F.FusedMultiplyAdd(Widen512(w0 + k), xv, a0);
                        a1 = Avx512F.FusedMultiplyAdd(Widen512(w1 + k), xv, a1);
                        a2 = Avx512F.FusedMultiplyAdd(Widen512(w2 + k), xv, a2);
                        a3 = Avx512F.FusedMultiplyAdd(Widen512(w3 + k), xv, a3);
                    }
                    dst[r] = (Vector512.Sum(a0) + Tail(w0, xs, vec, columns)) * rowScales[rowStart + r];
                    dst[r + 1] = (Vector512.Sum(a1) + Tail(w1, xs, vec, columns)) * rowScales[rowStart + r + 1];
                    dst[r + 2] = (Vector512.Sum(a2) + Tail(w2, xs, vec, columns)) * rowScales[rowStart + r + 2];
                    dst[r + 3] = (Vector512.Sum(a3) + Tail(w3, xs, vec, columns)) * rowScales[rowStart + r + 3];
                }
                for (; r < rowCount; r++)
                {
                    sbyte* w0 = m + (long)(rowStart + r) * columns;
                    Vector512<float> a0 = default;
                    for (int k = 0; k < vec; k += 16)
                        a0 = Avx512F.FusedMultiplyAdd(Widen512(w0 + k), Avx512F.LoadVector512(xs + k), a0);
                    dst[r] = (Vector512.Sum(a0) + Tail(w0, xs, vec, columns)) * rowScales[rowStart + r];
                }
            }
        }
    }

    /// <summary>
    /// AVX2 rows in the integer domain: the input is rounded once per call to int16 (per-call scale
    /// 32767/max|x|, relative error ≤ 2^−16, far below the int8 weights' own), then each 16 weights
    /// cost one sign-extension to int16, one pmaddwd and one add — half the work of converting every
    /// weight to float. int32 lanes: |w·x| pair sums ≤ 2·127·32767 ≈ 8.3e6, flushed to float every
    /// 128 steps (≤ 1.07e9 &lt; 2^31), so nothing overflows for any width.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    [SkipLocalsInit]
    public static void DotRowsAvx2(ReadOnlySpan<sbyte> matrix, ReadOnlySpan<float> rowScales, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported) throw new PlatformNotSupportedException("needs AVX2 and FMA");
        Validate(matrix, rowScales, columns, x, rowStart, rowCount, dst);
        int vec = columns & ~15;
        Span<short> x16 = columns <= 16384 ? stackalloc short[columns] : new short[columns];
        float fromInt = RoundToInt16(x, x16);
        if (fromInt == 0)
        {
            DotRowsScalar(matrix, rowScales, columns, x, rowStart, rowCount, dst);
            return;
        }
        unsafe
        {
            fixed (sbyte* m = matrix)
            fixed (short* xs = x16)
            {
                for (int r = 0; r < rowCount; r++)
                {
                    sbyte* w0 = m + (long)(rowStart + r) * columns;
                    Sse.Prefetch1(w0 + 4L * columns);
                    float total = 0;
                    for (int k0 = 0; k0 < vec; k0 += 128 * 16)
                    {
                        int kEnd = Math.Min(vec, k0 + 128 * 16);
                        Vector256<int> acc0 = default, acc1 = default;
                        int k = k0;
                        for (; k + 32 <= kEnd; k += 32)
                        {
                            acc0 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Sse2.LoadVector128(w0 + k)), Avx.LoadVector256(xs + k));
                            acc1 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Sse2.LoadVector128(w0 + k + 16)), Avx.LoadVector256(xs + k + 16));
                        }
                        for (; k < kEnd; k += 16)
                            acc0 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Sse2.LoadVector128(w0 + k)), Avx.LoadVector256(xs + k));
                        total += Vector256.Sum(acc0 + acc1);
                    }
                    float tail = 0;
                    for (int k = vec; k < columns; k++) tail += w0[k] * x[k];
                    dst[r] = (total * fromInt + tail) * rowScales[rowStart + r];
                }
            }
        }
    }

    /// <summary>
    /// ARM64 rows in the integer domain, as the AVX2 kernel: the input rounded once to int16, then exact
    /// int8 × int16 dots (<see cref="Q8ExactDots.RowsAdvSimd"/>: sign-extend, smlal, smlal2), in float
    /// only at the end. 6 vector operations per 16 weights where widening every weight to float took 14,
    /// which made this head no faster than the F16 one on Graviton, where decode is compute-bound.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    [SkipLocalsInit]
    public static void DotRowsAdvSimd(ReadOnlySpan<sbyte> matrix, ReadOnlySpan<float> rowScales, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        if (!AdvSimd.Arm64.IsSupported) throw new PlatformNotSupportedException("needs ARM64 AdvSimd");
        Validate(matrix, rowScales, columns, x, rowStart, rowCount, dst);
        Span<short> x16 = columns <= 16384 ? stackalloc short[columns] : new short[columns];
        float fromInt = RoundToInt16(x, x16);
        if (fromInt == 0)
        {
            DotRowsScalar(matrix, rowScales, columns, x, rowStart, rowCount, dst);
            return;
        }
        Span<long> dots = stackalloc long[64];
        for (int r = 0; r < rowCount; r += dots.Length)
        {
            int n = Math.Min(dots.Length, rowCount - r);
            Q8ExactDots.RowsAdvSimd(matrix, columns, x16, rowStart + r, n, dots[..n]);
            for (int i = 0; i < n; i++)
                dst[r + i] = (float)(dots[i] * (double)fromInt) * rowScales[rowStart + r + i];
        }
    }

    /// <summary>
    /// x rounded to int16 steps of max|x|/32767 into <paramref name="x16"/>; returns that step (x16 · step ≈ x),
    /// or 0 when max|x| is 0 or not finite and the caller must take the scalar path.
    /// </summary>
    private static float RoundToInt16(ReadOnlySpan<float> x, Span<short> x16)
    {
        float maxAbs = 0;
        for (int k = 0; k < x.Length; k++) maxAbs = Math.Max(maxAbs, Math.Abs(x[k]));
        if (!float.IsFinite(maxAbs) || maxAbs == 0) return 0;
        float toInt = 32767f / maxAbs;
        for (int k = 0; k < x.Length; k++) x16[k] = (short)MathF.Round(x[k] * toInt);
        return maxAbs / 32767f;
    }

    private static unsafe Vector512<float> Widen512(sbyte* bytes) =>
        Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Sse2.LoadVector128(bytes)));

    private static unsafe float Tail(sbyte* row, float* x, int from, int columns)
    {
        float sum = 0;
        for (int k = from; k < columns; k++) sum += row[k] * x[k];
        return sum;
    }

    private static void Validate(ReadOnlySpan<sbyte> matrix, ReadOnlySpan<float> rowScales, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        if (columns <= 0 || x.Length < columns)
            throw new ArgumentException($"input of {x.Length} values cannot feed {columns} columns", nameof(x));
        if (rowStart < 0 || rowCount < 0 || (long)(rowStart + rowCount) * columns > matrix.Length || rowStart + rowCount > rowScales.Length)
            throw new ArgumentException($"rows {rowStart}..{rowStart + rowCount} of {columns} columns run past the matrix", nameof(matrix));
        if (dst.Length < rowCount)
            throw new ArgumentException($"{rowCount} results do not fit the {dst.Length}-element destination", nameof(dst));
    }
}

/// <summary>
/// How far each int8 row is from its F16 original, measured once at load: the inputs of the screened
/// head's per-row error bound (see <see cref="Model.LogitScreen"/>).
/// </summary>
internal sealed class RowErrorFacts(int rows)
{
    /// <summary>max_k |w[r,k] − scale_r·q[r,k]|, rounded up (a true upper bound of the exact difference).</summary>
    public float[] MaxError { get; } = new float[rows];
    /// <summary>max_k |w[r,k]| (exact).</summary>
    public float[] MaxAbs { get; } = new float[rows];
    /// <summary>Σ_k |q[r,k]| (exact).</summary>
    public int[] CodeAbsSum { get; } = new int[rows];

    /// <summary>Measure row <paramref name="r"/>: <paramref name="w"/> the F16 values as floats, <paramref name="q"/> its codes.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // runs once per row at load: no tier-0 loop
    public void Measure(int r, ReadOnlySpan<float> w, ReadOnlySpan<sbyte> q, float scale)
    {
        // The error w − scale·q through one fused multiply-add: a single rounding of the exact
        // difference, so the exact one is at most |result|·(1 + 2^−23). Without hardware FMA the
        // difference is taken in double, where it is exact (the loop at the end, which also takes the tail).
        int n = w.Length, k = 0;
        float maxError = 0, maxAbs = 0;
        int codeSum = 0;
        if (Avx2.IsSupported && Fma.IsSupported && n >= 8)
        {
            Vector256<float> err = default, abs = default, vs = Vector256.Create(scale);
            Vector256<int> codes = default;
            for (; k + 8 <= n; k += 8)
            {
                Vector256<float> wv = Vector256.Create(w.Slice(k, 8));
                Vector256<int> qv = Avx2.ConvertToVector256Int32(
                    Vector128.CreateScalarUnsafe(MemoryMarshal.Read<long>(MemoryMarshal.AsBytes(q.Slice(k, 8)))).AsSByte());
                err = Vector256.Max(err, Vector256.Abs(Fma.MultiplyAddNegated(vs, Vector256.ConvertToSingle(qv), wv)));
                abs = Vector256.Max(abs, Vector256.Abs(wv));
                codes += Vector256.Abs(qv);
            }
            maxError = Max(err);
            maxAbs = Max(abs);
            codeSum = Vector256.Sum(codes);
        }
        else if (AdvSimd.Arm64.IsSupported && n >= 4)
        {
            Vector128<float> err = default, abs = default, vs = Vector128.Create(scale);
            Vector128<int> codes = default;
            for (; k + 4 <= n; k += 4)
            {
                Vector128<float> wv = Vector128.Create(w.Slice(k, 4));
                Vector128<int> qv = Vector128.Create((int)q[k], q[k + 1], q[k + 2], q[k + 3]);
                err = Vector128.Max(err, Vector128.Abs(AdvSimd.FusedMultiplySubtract(wv, vs, Vector128.ConvertToSingle(qv))));
                abs = Vector128.Max(abs, Vector128.Abs(wv));
                codes += Vector128.Abs(qv);
            }
            maxError = AdvSimd.Arm64.MaxAcross(err).ToScalar();
            maxAbs = AdvSimd.Arm64.MaxAcross(abs).ToScalar();
            codeSum = Vector128.Sum(codes);
        }
        double tailError = 0;
        for (; k < n; k++)
        {
            // In double every step is exact: scale·q is a 24-bit × 8-bit product, and w and scale·q are
            // within a factor of ~2^9 of each other or q is 0, so their difference fits 53 bits.
            tailError = Math.Max(tailError, Math.Abs(w[k] - (double)scale * q[k]));
            maxAbs = Math.Max(maxAbs, Math.Abs(w[k]));
            codeSum += Math.Abs((int)q[k]);
        }
        double bound = Math.Max(maxError * (1 + 1.0 / (1 << 23)), tailError);
        float rounded = (float)bound;
        MaxError[r] = rounded < bound ? MathF.BitIncrement(rounded) : rounded;
        MaxAbs[r] = maxAbs;
        CodeAbsSum[r] = codeSum;
    }

    private static float Max(Vector256<float> v)
    {
        Vector128<float> m = Vector128.Max(v.GetLower(), v.GetUpper());
        return Math.Max(Math.Max(m[0], m[1]), Math.Max(m[2], m[3]));
    }
}
