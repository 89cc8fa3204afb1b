using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace BitNet.Inference.Kernels;

/// <summary>
/// Computes dst[r − rowStart] = Σ_k q[r, k] · x[k] exactly, for rows of an int8 matrix and an int16
/// input vector. The screened LM head (<see cref="Model.LmHeadMode.Screened"/>) needs these dots as
/// exact integers: its error bounds are derived for exact arithmetic, so no float rounding may hide
/// in the sum.
/// </summary>
public delegate void Q8ExactDotRowsKernel(
    ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int rowStart, int rowCount, Span<long> dst);

/// <summary>
/// int8 × int16 row dots with exact 64-bit results. The scalar kernel is the specification; the
/// vector kernels must return the same integers.
///
/// Why nothing overflows: a product is at most 128 · 32768 = 2^22 in magnitude. The vector kernels
/// add at most two products per step into each int32 lane (pmaddwd pairs; smlal adds one), so a lane
/// grows by at most 2^23 per step; they move the lanes into the 64-bit total every <see cref="StepsPerFlush"/>
/// = 128 steps, when a lane holds at most 2^30 &lt; 2^31.
/// </summary>
internal static class Q8ExactDots
{
    /// <summary>Vector steps (one pair of products per int32 lane each) between moves into the int64 total.</summary>
    public const int StepsPerFlush = 128;

    /// <summary>The specification: Σ q·x in 64-bit integers, left to right.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void RowsScalar(ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int rowStart, int rowCount, Span<long> dst)
    {
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        for (int r = 0; r < rowCount; r++)
        {
            ReadOnlySpan<sbyte> row = matrix.Slice((rowStart + r) * columns, columns);
            long sum = 0;
            for (int k = 0; k < columns; k++)
                sum += row[k] * x[k];
            dst[r] = sum;
        }
    }

    /// <summary>
    /// AVX2: 16 weights sign-extended to int16, one pmaddwd against 16 inputs (8 pair sums in int32
    /// lanes), two accumulators. One row at a time: one sequential stream for the hardware prefetcher.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void RowsAvx2(ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int rowStart, int rowCount, Span<long> dst)
    {
        if (!Avx2.IsSupported) throw new PlatformNotSupportedException("needs AVX2");
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        int vec = columns & ~15;
        fixed (sbyte* m = matrix)
        fixed (short* xs = x)
        {
            for (int r = 0; r < rowCount; r++)
            {
                sbyte* w = m + (long)(rowStart + r) * columns;
                long total = 0;
                // Each accumulator takes one pmaddwd per 32 columns: flush every StepsPerFlush of them.
                for (int k0 = 0; k0 < vec; k0 += StepsPerFlush * 32)
                {
                    int kEnd = Math.Min(vec, k0 + StepsPerFlush * 32);
                    Vector256<int> acc0 = default, acc1 = default;
                    int k = k0;
                    for (; k + 32 <= kEnd; k += 32)
                    {
                        acc0 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Sse2.LoadVector128(w + k)), Avx.LoadVector256(xs + k));
                        acc1 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Sse2.LoadVector128(w + k + 16)), Avx.LoadVector256(xs + k + 16));
                    }
                    if (k < kEnd)
                        acc0 += Avx2.MultiplyAddAdjacent(Avx2.ConvertToVector256Int16(Sse2.LoadVector128(w + k)), Avx.LoadVector256(xs + k));
                    total += SumWide(acc0) + SumWide(acc1);
                }
                for (int k = vec; k < columns; k++) total += w[k] * xs[k];
                dst[r] = total;
            }
        }
    }

    /// <summary>
    /// ARM64 AdvSimd: 16 weights widened to int16, then smlal / smlal2 (int16 × int16 added into int32
    /// lanes) against 16 inputs, four accumulators of four lanes each.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void RowsAdvSimd(ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int rowStart, int rowCount, Span<long> dst)
    {
        if (!AdvSimd.Arm64.IsSupported) throw new PlatformNotSupportedException("needs ARM64 AdvSimd");
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        int vec = columns & ~15;
        fixed (sbyte* m = matrix)
        fixed (short* xs = x)
        {
            for (int r = 0; r < rowCount; r++)
            {
                sbyte* w = m + (long)(rowStart + r) * columns;
                long total = 0;
                // Each lane takes two products per 16 columns (one pair step): flush every StepsPerFlush steps.
                for (int k0 = 0; k0 < vec; k0 += StepsPerFlush * 16)
                {
                    int kEnd = Math.Min(vec, k0 + StepsPerFlush * 16);
                    // Four accumulators: smlal waits 4 cycles for its accumulator on Neoverse cores, and
                    // two chains of two per step made the loop wait on that, not on its operations.
                    Vector128<int> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
                    for (int k = k0; k < kEnd; k += 16)
                    {
                        // Low halves come from 64-bit loads of their own: taken from a 128-bit value
                        // with GetLower, each cost a register copy, on the pipe the widenings need.
                        Vector128<short> lo = AdvSimd.SignExtendWideningLower(AdvSimd.LoadVector64(w + k));
                        Vector128<short> hi = AdvSimd.SignExtendWideningUpper(AdvSimd.LoadVector128(w + k));
                        acc1 = AdvSimd.MultiplyWideningUpperAndAdd(acc1, lo, AdvSimd.LoadVector128(xs + k));
                        acc3 = AdvSimd.MultiplyWideningUpperAndAdd(acc3, hi, AdvSimd.LoadVector128(xs + k + 8));
                        acc0 = AdvSimd.MultiplyWideningLowerAndAdd(acc0, lo.GetLower(), AdvSimd.LoadVector64(xs + k));
                        acc2 = AdvSimd.MultiplyWideningLowerAndAdd(acc2, hi.GetLower(), AdvSimd.LoadVector64(xs + k + 8));
                    }
                    total += SumWide(acc0) + SumWide(acc1) + SumWide(acc2) + SumWide(acc3);
                }
                for (int k = vec; k < columns; k++) total += w[k] * xs[k];
                dst[r] = total;
            }
        }
    }

    // Lane sums in 64 bits: eight lanes of up to ~1.07e9 would overflow an int32 sum.
    private static long SumWide(Vector256<int> v) => SumWide(v.GetLower()) + SumWide(v.GetUpper());

    private static long SumWide(Vector128<int> v) =>
        (long)v.GetElement(0) + v.GetElement(1) + v.GetElement(2) + v.GetElement(3);

    private static void Validate(ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int rowStart, int rowCount, Span<long> dst)
    {
        if (columns <= 0 || x.Length < columns)
            throw new ArgumentException($"input of {x.Length} values cannot feed {columns} columns", nameof(x));
        if (rowStart < 0 || rowCount < 0 || (long)(rowStart + rowCount) * columns > matrix.Length)
            throw new ArgumentException($"rows {rowStart}..{rowStart + rowCount} of {columns} columns run past the matrix", nameof(matrix));
        if (dst.Length < rowCount)
            throw new ArgumentException($"{rowCount} results do not fit the {dst.Length}-element destination", nameof(dst));
    }
}
