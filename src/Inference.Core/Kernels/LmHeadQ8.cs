using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
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
public sealed unsafe class LmHeadQ8 : IDisposable
{
    /// <summary>Alignment of the int8 rows: one transparent huge page, so the kernel can back the
    /// 328 MB copy with 2 MB pages (fewer page faults while quantizing, fewer TLB misses while streaming).</summary>
    private const nuint HugePage = 2 << 20;
    private sbyte* _weights;
    private readonly long _length;

    /// <summary>rows × columns int8, row-major (native memory, freed by <see cref="Dispose"/>).</summary>
    public ReadOnlySpan<sbyte> Weights
    {
        get
        {
            ObjectDisposedException.ThrowIf(_weights is null, this);
            return new ReadOnlySpan<sbyte>(_weights, checked((int)_length));
        }
    }

    /// <summary>One dequantization scale per row: w ≈ q · scale.</summary>
    public float[] Scales { get; }
    public int Rows { get; }
    public int Columns { get; }

    private LmHeadQ8(int rows, int columns)
    {
        Rows = rows; Columns = columns;
        _length = checked((long)rows * columns);
        checked { _ = (int)_length; }   // spans address it
        nuint size = ((nuint)_length + HugePage - 1) & ~(HugePage - 1);
        _weights = (sbyte*)NativeMemory.AlignedAlloc(size, HugePage);
        Threading.PageWarmup.PreferHugePages((nint)_weights, (long)size);
        Scales = new float[rows];
    }

    public void Dispose()
    {
        if (_weights is null) return;
        NativeMemory.AlignedFree(_weights);
        _weights = null;
        GC.SuppressFinalize(this);
    }

    ~LmHeadQ8() => Dispose();

    /// <summary>Quantize an F16 matrix; <paramref name="parallelFor"/> (row ranges) spreads the work, or null for one thread.</summary>
    public static LmHeadQ8 Quantize(ReadOnlySpan<Half> matrix, int rows, int columns, Action<int, Action<int, int>>? parallelFor = null)
    {
        if (rows <= 0 || columns <= 0 || (long)rows * columns > matrix.Length)
            throw new ArgumentException($"a {rows}×{columns} head does not fit the {matrix.Length}-value matrix", nameof(matrix));
        var head = new LmHeadQ8(rows, columns);
        sbyte* weights = head._weights;
        float[] scales = head.Scales;
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
        float maxAbs = 0;
        for (int k = 0; k < columns; k++) maxAbs = Math.Max(maxAbs, Math.Abs(x[k]));
        if (!float.IsFinite(maxAbs) || maxAbs == 0)
        {
            DotRowsScalar(matrix, rowScales, columns, x, rowStart, rowCount, dst);
            return;
        }
        float toInt = 32767f / maxAbs, fromInt = maxAbs / 32767f;
        Span<short> x16 = columns <= 16384 ? stackalloc short[columns] : new short[columns];
        for (int k = 0; k < columns; k++) x16[k] = (short)MathF.Round(x[k] * toInt);
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

    /// <summary>Portable 128-bit rows (ARM64).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsVector128(ReadOnlySpan<sbyte> matrix, ReadOnlySpan<float> rowScales, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        Validate(matrix, rowScales, columns, x, rowStart, rowCount, dst);
        int vec = columns & ~15;
        unsafe
        {
            fixed (sbyte* m = matrix)
            fixed (float* xs = x)
            {
                for (int r = 0; r < rowCount; r++)
                {
                    sbyte* w0 = m + (long)(rowStart + r) * columns;
                    Vector128<float> a0 = default, a1 = default;
                    for (int k = 0; k < vec; k += 16)
                    {
                        Vector128<sbyte> b = Vector128.Load(w0 + k);
                        Vector128<short> lo = Vector128.WidenLower(b), hi = Vector128.WidenUpper(b);
                        a0 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(Vector128.WidenLower(lo)), Vector128.Load(xs + k), a0);
                        a1 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(Vector128.WidenUpper(lo)), Vector128.Load(xs + k + 4), a1);
                        a0 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(Vector128.WidenLower(hi)), Vector128.Load(xs + k + 8), a0);
                        a1 = Vector128.FusedMultiplyAdd(Vector128.ConvertToSingle(Vector128.WidenUpper(hi)), Vector128.Load(xs + k + 12), a1);
                    }
                    dst[r] = (Vector128.Sum(a0 + a1) + Tail(w0, xs, vec, columns)) * rowScales[rowStart + r];
                }
            }
        }
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
