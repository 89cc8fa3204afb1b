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
/// <see cref="Q8ExactDotRowsKernel"/> for several input vectors at once (the screened head of a batched step):
/// x holds <c>tokens</c> vectors of <c>columns</c> values, and token t's dot with row rowStart + r goes to
/// dst[t · dstStride + r]. Each row is read once for all the tokens.
/// </summary>
public delegate void Q8ExactDotRowsTokensKernel(
    ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int tokens, int rowStart, int rowCount, Span<long> dst, int dstStride);

/// <summary>
/// int8 × int16 row dots with exact 64-bit results. The scalar kernel is the specification; the
/// vector kernels must return the same integers.
///
/// Why nothing overflows: a product is at most 128 · 32768 = 2^22 in magnitude. The vector kernels
/// add at most two products per step into each int32 lane (pmaddwd pairs; smlal adds one), so a lane
/// grows by at most 2^23 per step; they move the lanes into the 64-bit total every <see cref="StepsPerFlush"/>
/// = 128 steps, when a lane holds at most 2^30 &lt; 2^31.
/// </summary>
[SkipLocalsInit]
internal static partial class Q8ExactDots
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

    /// <summary>
    /// Tokens whose accumulators one pass over a row keeps in registers; more take the chunk of rows again from
    /// cache. Four, not eight: eight tokens' inputs (40 KB at 2560 columns) crowd the rows out of L1, and two
    /// passes of four ran the 2B4T head faster than one of eight.
    /// </summary>
    public const int MaxTokensPerPass = 4;

    /// <summary>The several-token specification: <see cref="RowsScalar"/> for each token.</summary>
    public static void RowsTokensScalar(ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int tokens, int rowStart, int rowCount,
        Span<long> dst, int dstStride)
    {
        ValidateTokens(columns, x, tokens, rowCount, dst, dstStride);
        for (int t = 0; t < tokens; t++)
            RowsScalar(matrix, columns, x.Slice(t * columns, columns), rowStart, rowCount, dst.Slice(t * dstStride, rowCount));
    }

    /// <summary>
    /// AVX2 for several tokens: 16 weights of a row sign-extended once, then one pmaddwd per token into that
    /// token's accumulator (up to <see cref="MaxTokensPerPass"/> per pass over the row).
    /// </summary>
    public static void RowsTokensAvx2(ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int tokens, int rowStart, int rowCount,
        Span<long> dst, int dstStride)
    {
        if (!Avx2.IsSupported) throw new PlatformNotSupportedException("needs AVX2");
        RowsTokens(Width.V256, matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride);
    }

    /// <summary>
    /// <see cref="RowsTokensAvx2"/> with 512-bit vectors: 32 weights widened per step (AVX-512BW). One token, or
    /// a runtime without AVX-512BW (a build for x86-64-v3, DOTNET_EnableAVX512=0), takes the AVX2 kernel: a
    /// lone token is bound by memory, and the 256-bit loop streams a row faster.
    /// </summary>
    public static void RowsTokensAvx512(ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int tokens, int rowStart, int rowCount,
        Span<long> dst, int dstStride) =>
        RowsTokens(Avx512BW.IsSupported && tokens > 1 ? Width.V512 : Width.V256, matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride);

    /// <summary>
    /// ARM64 AdvSimd for several tokens: 16 weights widened to int16 once, then per token smlal / smlal2 into
    /// two accumulators (two products per lane per step, as in <see cref="RowsAdvSimd"/>).
    /// </summary>
    public static void RowsTokensAdvSimd(ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int tokens, int rowStart, int rowCount,
        Span<long> dst, int dstStride)
    {
        if (!AdvSimd.Arm64.IsSupported) throw new PlatformNotSupportedException("needs ARM64 AdvSimd");
        RowsTokens(Width.V128, matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride);
    }

    private enum Width { V128, V256, V512 }

    private static unsafe void RowsTokens(Width width, ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int tokens, int rowStart, int rowCount,
        Span<long> dst, int dstStride)
    {
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        ValidateTokens(columns, x, tokens, rowCount, dst, dstStride);
        fixed (sbyte* m = matrix)
        fixed (short* xs = x)
        fixed (long* d = dst)
        {
            for (int t0 = 0; t0 < tokens; t0 += MaxTokensPerPass)
            {
                var pass = new TokenPass(m, columns, xs + (long)t0 * columns, Math.Min(MaxTokensPerPass, tokens - t0), d + (long)t0 * dstStride, dstStride);
                for (int r = 0; r < rowCount; r++)
                    pass.Row(width, rowStart + r, r);
            }
        }
    }

    /// <summary>One pass of up to <see cref="MaxTokensPerPass"/> tokens over rows: where the tokens' inputs and results are.</summary>
    private readonly unsafe struct TokenPass(sbyte* matrix, int columns, short* x, int tokens, long* dst, int dstStride)
    {
        /// <summary>Row <paramref name="row"/>'s dots, stored at result index <paramref name="at"/> of each token.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Row(Width width, int row, int at)
        {
            sbyte* w = matrix + (long)row * columns;
            int step = width == Width.V512 ? 32 : 16, vec = columns & -step;
            long* totals = stackalloc long[MaxTokensPerPass];
            new Span<long>(totals, MaxTokensPerPass).Clear();
            // Each lane takes at most two products per step: flush every StepsPerFlush steps.
            for (int k0 = 0; k0 < vec; k0 += StepsPerFlush * step)
            {
                int kEnd = Math.Min(vec, k0 + StepsPerFlush * step);
                switch (tokens)
                {
                    case 1: Block<OneToken>(width, w, k0, kEnd, totals); break;
                    case 2: Block<TwoTokens>(width, w, k0, kEnd, totals); break;
                    case 3: Block<ThreeTokens>(width, w, k0, kEnd, totals); break;
                    default: Block<FourTokens>(width, w, k0, kEnd, totals); break;
                }
            }
            Finish(w, vec, at, totals);
        }

        private void Block<TCount>(Width width, sbyte* w, int k0, int kEnd, long* totals)
            where TCount : struct, ITokenCount
        {
            switch (width)
            {
                case Width.V512: Block512<TCount>(w, k0, kEnd, totals); break;
                case Width.V256: Block256<TCount>(w, k0, kEnd, totals); break;
                default: Block128<TCount>(w, k0, kEnd, totals); break;
            }
        }

        /// <summary>The columns past the vector steps one by one, then every token's total into dst.</summary>
        [MethodImpl(MethodImplOptions.AggressiveOptimization)]
        public void Finish(sbyte* w, int vec, int at, long* totals)
        {
            for (int t = 0; t < tokens; t++)
            {
                short* xt = x + (long)t * columns;
                long total = totals[t];
                for (int k = vec; k < columns; k++) total += w[k] * xt[k];
                dst[(long)t * dstStride + at] = total;
            }
        }

        // Not inlined: its own method keeps the accumulators and pointers in registers.
        [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
        private void Block256<TCount>(sbyte* w, int k0, int kEnd, long* totals)
            where TCount : struct, ITokenCount
        {
            short* x0 = x, x1 = x0 + columns, x2 = x1 + columns, x3 = x2 + columns;
            Vector256<int> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int k = k0; k < kEnd; k += 16)
            {
                Vector256<short> v = Avx2.ConvertToVector256Int16(Sse2.LoadVector128(w + k));
                a0 += Avx2.MultiplyAddAdjacent(v, Avx.LoadVector256(x0 + k));
                if (TCount.Count > 1) a1 += Avx2.MultiplyAddAdjacent(v, Avx.LoadVector256(x1 + k));
                if (TCount.Count > 2) a2 += Avx2.MultiplyAddAdjacent(v, Avx.LoadVector256(x2 + k));
                if (TCount.Count > 3) a3 += Avx2.MultiplyAddAdjacent(v, Avx.LoadVector256(x3 + k));
            }
            totals[0] += SumWide(a0);
            if (TCount.Count > 1) totals[1] += SumWide(a1);
            if (TCount.Count > 2) totals[2] += SumWide(a2);
            if (TCount.Count > 3) totals[3] += SumWide(a3);
        }

        [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
        private void Block512<TCount>(sbyte* w, int k0, int kEnd, long* totals)
            where TCount : struct, ITokenCount
        {
            short* x0 = x, x1 = x0 + columns, x2 = x1 + columns, x3 = x2 + columns;
            Vector512<int> a0 = default, a1 = default, a2 = default, a3 = default;
            for (int k = k0; k < kEnd; k += 32)
            {
                Vector512<short> v = Avx512BW.ConvertToVector512Int16(Avx.LoadVector256(w + k));
                a0 += Avx512BW.MultiplyAddAdjacent(v, Vector512.Load(x0 + k));
                if (TCount.Count > 1) a1 += Avx512BW.MultiplyAddAdjacent(v, Vector512.Load(x1 + k));
                if (TCount.Count > 2) a2 += Avx512BW.MultiplyAddAdjacent(v, Vector512.Load(x2 + k));
                if (TCount.Count > 3) a3 += Avx512BW.MultiplyAddAdjacent(v, Vector512.Load(x3 + k));
            }
            totals[0] += SumWide(a0);
            if (TCount.Count > 1) totals[1] += SumWide(a1);
            if (TCount.Count > 2) totals[2] += SumWide(a2);
            if (TCount.Count > 3) totals[3] += SumWide(a3);
        }

        [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
        private void Block128<TCount>(sbyte* w, int k0, int kEnd, long* totals)
            where TCount : struct, ITokenCount
        {
            short* x0 = x, x1 = x0 + columns, x2 = x1 + columns, x3 = x2 + columns;
            Vector128<int> a0 = default, a1 = default, a2 = default, a3 = default;
            Vector128<int> b0 = default, b1 = default, b2 = default, b3 = default;
            for (int k = k0; k < kEnd; k += 16)
            {
                // Columns k … k + 7 widened from a 64-bit load of their own, k + 8 … k + 15 from the upper half.
                Vector128<short> lo = AdvSimd.SignExtendWideningLower(AdvSimd.LoadVector64(w + k));
                Vector128<short> hi = AdvSimd.SignExtendWideningUpper(AdvSimd.LoadVector128(w + k));
                Pair(ref a0, ref b0, lo, hi, x0 + k);
                if (TCount.Count > 1) Pair(ref a1, ref b1, lo, hi, x1 + k);
                if (TCount.Count > 2) Pair(ref a2, ref b2, lo, hi, x2 + k);
                if (TCount.Count > 3) Pair(ref a3, ref b3, lo, hi, x3 + k);
            }
            totals[0] += SumWide(a0) + SumWide(b0);
            if (TCount.Count > 1) totals[1] += SumWide(a1) + SumWide(b1);
            if (TCount.Count > 2) totals[2] += SumWide(a2) + SumWide(b2);
            if (TCount.Count > 3) totals[3] += SumWide(a3) + SumWide(b3);

            // 16 products of one token: columns 0–3 and 8–11 into the low accumulator, 4–7 and 12–15 into the high one.
            static void Pair(ref Vector128<int> low, ref Vector128<int> high, Vector128<short> lo, Vector128<short> hi, short* xs)
            {
                low = AdvSimd.MultiplyWideningLowerAndAdd(low, lo.GetLower(), AdvSimd.LoadVector64(xs));
                high = AdvSimd.MultiplyWideningUpperAndAdd(high, lo, AdvSimd.LoadVector128(xs));
                low = AdvSimd.MultiplyWideningLowerAndAdd(low, hi.GetLower(), AdvSimd.LoadVector64(xs + 8));
                high = AdvSimd.MultiplyWideningUpperAndAdd(high, hi, AdvSimd.LoadVector128(xs + 8));
            }
        }
    }

    /// <summary>A token count fixed at compile time: each instantiation keeps exactly that many accumulators.</summary>
    private interface ITokenCount { static abstract int Count { get; } }
    private readonly struct OneToken : ITokenCount { public static int Count => 1; }
    private readonly struct TwoTokens : ITokenCount { public static int Count => 2; }
    private readonly struct ThreeTokens : ITokenCount { public static int Count => 3; }
    private readonly struct FourTokens : ITokenCount { public static int Count => 4; }

    private static void ValidateTokens(int columns, ReadOnlySpan<short> x, int tokens, int rowCount, Span<long> dst, int dstStride)
    {
        if (tokens <= 0 || (long)tokens * columns > x.Length)
            throw new ArgumentException($"input of {x.Length} values cannot feed {tokens} tokens of {columns} columns", nameof(x));
        if (dstStride < rowCount || (long)(tokens - 1) * dstStride + rowCount > dst.Length)
            throw new ArgumentException($"{tokens} × {rowCount} results at stride {dstStride} do not fit the {dst.Length}-element destination", nameof(dst));
    }

    // Lane sums in 64 bits: eight lanes of up to ~1.07e9 would overflow an int32 sum.
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long SumWide(Vector512<int> v) => Vector512.Sum(Vector512.WidenLower(v) + Vector512.WidenUpper(v));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long SumWide(Vector256<int> v) => Vector256.Sum(Vector256.WidenLower(v) + Vector256.WidenUpper(v));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static long SumWide(Vector128<int> v) => Vector128.Sum(Vector128.WidenLower(v) + Vector128.WidenUpper(v));

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
