using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BitNet.Inference.Kernels;

// The AVX2 + FMA LM-head kernels: one token a row at a time, and several tokens by row pairs.
public static partial class F16
{
    /// <summary>
    /// AVX2 + FMA LM-head rows, one row at a time with four 8-lane accumulators. Reading one row after
    /// the other is a single sequential stream, which the hardware prefetcher follows at full speed,
    /// faster than four interleaved rows sharing each input load (the input is 10 KB and stays in L1
    /// either way).
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsAvx2(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported) throw new PlatformNotSupportedException("needs AVX2 and FMA");
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        int wide = columns & ~31, vecColumns = columns & ~7;
        Span<float> scaled = columns <= 16384 ? stackalloc float[columns] : new float[columns];
        if (!ScaleBy2Pow112(x, scaled))
        {
            DotRowsScalar(matrix, columns, x, rowStart, rowCount, dst);
            return;
        }
        unsafe
        {
            fixed (Half* m = matrix)
            fixed (float* xs = scaled)
            {
                var mask = Vector256.Create(BodyMask);
                for (int r = 0; r < rowCount; r++)
                {
                    short* w = (short*)(m + (long)(rowStart + r) * columns);
                    Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    int k = 0;
                    for (; k < wide; k += 32)
                    {
                        a0 = Fma.MultiplyAdd(ScaledValues256(w + k, mask), Avx.LoadVector256(xs + k), a0);
                        a1 = Fma.MultiplyAdd(ScaledValues256(w + k + 8, mask), Avx.LoadVector256(xs + k + 8), a1);
                        a2 = Fma.MultiplyAdd(ScaledValues256(w + k + 16, mask), Avx.LoadVector256(xs + k + 16), a2);
                        a3 = Fma.MultiplyAdd(ScaledValues256(w + k + 24, mask), Avx.LoadVector256(xs + k + 24), a3);
                    }
                    for (; k < vecColumns; k += 8)
                        a0 = Fma.MultiplyAdd(ScaledValues256(w + k, mask), Avx.LoadVector256(xs + k), a0);
                    dst[r] = HorizontalSum((a0 + a1) + (a2 + a3)) + TailDot(w, xs, vecColumns, columns);
                }
            }
        }
    }

    /// <summary>Columns per block of <see cref="DotRowsTokensAvx2"/>: its pair loop runs 40 steps a call at 2560 columns,
    /// and with blocks of 512 the start and end of its FMA chains showed more; four tokens' inputs (20 KB) still
    /// mostly stay in L1. A multiple of 32.</summary>
    private const int Avx2PairColumnBlock = 1280;

    /// <summary>
    /// <see cref="DotRowsAvx2"/> for several tokens. Rows go in tiles of <see cref="TokenTileRows"/>, tokens in
    /// groups of up to four (balanced: 5 → 3 + 2), columns in blocks of <see cref="Avx2PairColumnBlock"/>. Within a
    /// block each pair of rows takes the single-token kernel's four accumulator slices one after the other: slice
    /// j's 8 columns of both rows are widened once and meet each token's input (loaded once for both rows) by FMA,
    /// so one load serves two FMAs; the accumulators stay in memory between slices and blocks. Every (row, token)
    /// accumulator still takes the single-token kernel's FMAs in its order, so the results are its results bit for
    /// bit. A group of one token, and a tile's odd last row, take the row loop (<see cref="Accumulate256{TCount}"/>).
    /// A token whose input cannot be scaled takes the reference path, as it does there.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void DotRowsTokensAvx2(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int tokens, int rowStart, int rowCount,
        Span<float> dst, int dstStride)
    {
        if (!Avx2.IsSupported || !Fma.IsSupported) throw new PlatformNotSupportedException("needs AVX2 and FMA");
        Span<int> vector = tokens <= 256 ? stackalloc int[tokens] : new int[tokens];
        Span<float> scaledAll = ScaleTokens(matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride, vector, out int vectorTokens);
        // Two rows by four tokens: eight accumulators, two widened weight vectors, the input and the mask fit in
        // 16 registers, and eight independent FMA chains cover the FMA latency at two FMAs a cycle.
        const int maxGroup = 4;
        int groups = (vectorTokens + maxGroup - 1) / maxGroup;
        // Groups as even as the count allows (5 tokens: 2 + 3), so no group is left with a lone token.
        int GroupStart(int group) => vectorTokens * group / groups;
        int wide = columns & ~31;
        Vector256<float>* acc = stackalloc Vector256<float>[TokenTileRows * maxGroup * 4];
        // The pair loop reads its group's inputs from a copy interleaved by 8 columns, slice by slice within each
        // column block (SliceStart): a call's loads for all the tokens are one contiguous run (with the
        // tokens a row apart, 4 KB multiples put them in the same L1 sets).
        int interleavedLength = vectorTokens * wide + 15;
        float[] interleavedBuffer = _interleavedTokens is { } reused && reused.Length >= interleavedLength
            ? reused : (_interleavedTokens = GC.AllocateUninitializedArray<float>(interleavedLength, pinned: true));
        fixed (Half* m = matrix)
        fixed (float* scaled = scaledAll)
        fixed (float* d = dst)
        fixed (float* interleavedStart = interleavedBuffer)
        {
            float* interleaved = (float*)(((nint)interleavedStart + 63) & ~(nint)63);
            for (int gi = 0; gi < groups; gi++)
            {
                int g0 = GroupStart(gi), g = GroupStart(gi + 1) - g0;
                for (int i = 0; i < g; i++)
                {
                    float* from = scaled + (long)(g0 + i) * columns, to = interleaved + (long)g0 * wide + 8 * i;
                    for (int c0 = 0; c0 < wide; c0 += Avx2PairColumnBlock)
                    {
                        int c1 = Math.Min(wide, c0 + Avx2PairColumnBlock);
                        for (int j = 0; j < 4; j++)
                        {
                            float* slice = to + (long)SliceStart(c0, c1, j) * g;
                            for (int c = c0 + 8 * j; c < c1; c += 32, slice += 8 * g)
                                Avx.Store(slice, Avx.LoadVector256(from + c));
                        }
                    }
                }
            }
            var mask = Vector256.Create(BodyMask);
            byte* end = (byte*)(m + (long)(rowStart + rowCount) * columns);
            for (int r0 = 0; r0 < rowCount; r0 += TokenTileRows)
            {
                int tileRows = Math.Min(TokenTileRows, rowCount - r0);
                short* tile = (short*)(m + (long)(rowStart + r0) * columns);
                // The tile after next, spread over this tile's first token group (see DotRowsTokensAvx512).
                byte* ahead = (byte*)(tile + 2L * TokenTileRows * columns);
                for (int gi = 0; gi < groups; gi++)
                {
                    int g0 = GroupStart(gi), g = GroupStart(gi + 1) - g0;
                    float* xg = scaled + (long)g0 * columns, xi = interleaved + (long)g0 * wide;
                    new Span<Vector256<float>>(acc, tileRows * 4 * g).Clear();
                    for (int c0 = 0; c0 < wide; c0 += Avx2PairColumnBlock)
                    {
                        int c1 = Math.Min(wide, c0 + Avx2PairColumnBlock);
                        int r = 0;
                        // One token has only two chains per row pair: the row loop's four do better.
                        if (g > 1)
                            for (; r + 2 <= tileRows; r += 2)
                            {
                                short* w = tile + (long)r * columns;
                                // A line per 64 columns of a slice: over the four slices, the pair's bytes.
                                byte* next = PrefetchTarget(ref ahead, end, g0 == 0, w, (c1 - c0) / 32 * 128);
                                Vector256<float>* a = acc + r * 4 * g;
                                for (int j = 0; j < 4; j++, next += (c1 - c0))
                                {
                                    float* xj = xi + SliceStart(c0, c1, j) * g;
                                    switch (g)
                                    {
                                        case 2: AccumulatePair<TwoTokens>(w + 8 * j, xj, columns, c0, c1, a + j, a + 4 * g + j, mask, next); break;
                                        case 3: AccumulatePair<ThreeTokens>(w + 8 * j, xj, columns, c0, c1, a + j, a + 4 * g + j, mask, next); break;
                                        default: AccumulatePair<FourTokens>(w + 8 * j, xj, columns, c0, c1, a + j, a + 4 * g + j, mask, next); break;
                                    }
                                }
                            }
                        for (; r < tileRows; r++)
                        {
                            short* w = tile + (long)r * columns;
                            byte* next = PrefetchTarget(ref ahead, end, g0 == 0, w, (c1 - c0) / 32 * 64);
                            Vector256<float>* a = acc + r * 4 * g;
                            Accumulate256(g, w, xg, columns, c0, c1, a, mask, next);
                        }
                    }
                    FinishTile(tile, tileRows, columns, xg, g, acc, mask, d, vector.Slice(g0, g), dstStride, r0);
                }
            }
        }
    }

    /// <summary>Where accumulator slice <paramref name="j"/> of the column block [<paramref name="c0"/>,
    /// <paramref name="c1"/>) starts in <see cref="DotRowsTokensAvx2"/>'s copy of the inputs, in units of one
    /// token's input: the block holds its four slices one after the other (each a quarter of the block), so a call
    /// of <see cref="AccumulatePair{TCount}"/> reads one contiguous run.</summary>
    private static int SliceStart(int c0, int c1, int j) => c0 + j * ((c1 - c0) / 4);

    /// <summary>One accumulator slice of two rows for <typeparamref name="TCount"/> tokens over columns [c0, c1)
    /// (multiples of 32): every 32 columns k, the 8 halves at <paramref name="w"/> + k (and one row, <paramref
    /// name="columns"/> halves, further) times each token's 8 inputs, which <paramref name="x"/> holds interleaved
    /// (token u's at x + 8u, the next step's 8·Count floats further). Token u's accumulators are acc0[4u] and
    /// acc1[4u]. One prefetch at <paramref name="prefetch"/> per step, 32 bytes apart.</summary>
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static unsafe void AccumulatePair<TCount>(short* w, float* x, int columns, int c0, int c1, Vector256<float>* acc0,
        Vector256<float>* acc1, Vector256<int> mask, byte* prefetch)
        where TCount : struct, ITokenCount
    {
        short* w1 = w + columns;
        int step = 8 * TCount.Count;
        Vector256<float> a0 = acc0[0], b0 = acc1[0];
        Vector256<float> a1 = acc0[4], b1 = acc1[4];
        Vector256<float> a2 = default, b2 = default, a3 = default, b3 = default;
        if (TCount.Count > 2) { a2 = acc0[8]; b2 = acc1[8]; }
        if (TCount.Count > 3) { a3 = acc0[12]; b3 = acc1[12]; }
        // A line per two steps would be enough; one per step (the same line twice) keeps a single loop body.
        for (int k = c0; k < c1; k += 32, x += step, prefetch += 32)
        {
            Sse.Prefetch0(prefetch);
            Vector256<float> v = ScaledValues256(w + k, mask), u = ScaledValues256(w1 + k, mask);
            Vector256<float> xv = Avx.LoadVector256(x);
            a0 = Fma.MultiplyAdd(v, xv, a0); b0 = Fma.MultiplyAdd(u, xv, b0);
            xv = Avx.LoadVector256(x + 8);
            a1 = Fma.MultiplyAdd(v, xv, a1); b1 = Fma.MultiplyAdd(u, xv, b1);
            if (TCount.Count > 2) { xv = Avx.LoadVector256(x + 16); a2 = Fma.MultiplyAdd(v, xv, a2); b2 = Fma.MultiplyAdd(u, xv, b2); }
            if (TCount.Count > 3) { xv = Avx.LoadVector256(x + 24); a3 = Fma.MultiplyAdd(v, xv, a3); b3 = Fma.MultiplyAdd(u, xv, b3); }
        }
        acc0[0] = a0; acc1[0] = b0; acc0[4] = a1; acc1[4] = b1;
        if (TCount.Count > 2) { acc0[8] = a2; acc1[8] = b2; }
        if (TCount.Count > 3) { acc0[12] = a3; acc1[12] = b3; }
    }

    /// <summary>
    /// Where a row loop of the several-token kernels prefetches: when it <paramref name="fetches"/> (the AVX2
    /// loops in a tile's first token group, the 512-bit pair loops in every group), the next
    /// <paramref name="bytes"/> of the tile after next (and <paramref name="ahead"/> moves past them); otherwise,
    /// or past the matrix's end, the loop's own rows, already cached.
    /// </summary>
    private static unsafe byte* PrefetchTarget(ref byte* ahead, byte* end, bool fetches, short* rows, int bytes)
    {
        byte* target = fetches && ahead < end ? ahead : (byte*)rows;
        ahead += bytes;
        return target;
    }

    /// <summary>Columns [c0, c1) (multiples of 32) of one row for <typeparamref name="TCount"/> tokens whose
    /// scaled inputs lie <paramref name="columns"/> apart from <paramref name="x"/>; token u's four accumulators
    /// are acc[4u … 4u + 3], loaded and stored around the loop. One line at <paramref name="prefetch"/> is
    /// prefetched per step (<see cref="PrefetchTarget"/>).</summary>
    // Not inlined: its own method keeps its accumulators and pointers in registers.
    [MethodImpl(MethodImplOptions.NoInlining | MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Accumulate256<TCount>(short* w, float* x, int columns, int c0, int c1, Vector256<float>* acc, Vector256<int> mask,
        byte* prefetch)
        where TCount : struct, ITokenCount
    {
        float* x0 = x, x1 = x + columns, x2 = x1 + columns, x3 = x2 + columns;
        Vector256<float> a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
        Vector256<float> e0 = default, e1 = default, e2 = default, e3 = default;
        Vector256<float> f0 = default, f1 = default, f2 = default, f3 = default;
        if (TCount.Count > 1) { b0 = acc[4]; b1 = acc[5]; b2 = acc[6]; b3 = acc[7]; }
        if (TCount.Count > 2) { e0 = acc[8]; e1 = acc[9]; e2 = acc[10]; e3 = acc[11]; }
        if (TCount.Count > 3) { f0 = acc[12]; f1 = acc[13]; f2 = acc[14]; f3 = acc[15]; }
        for (int k = c0; k < c1; k += 32, prefetch += 64)
        {
            Sse.Prefetch0(prefetch);
            Vector256<float> v = ScaledValues256(w + k, mask);
            a0 = Fma.MultiplyAdd(v, Avx.LoadVector256(x0 + k), a0);
            if (TCount.Count > 1) b0 = Fma.MultiplyAdd(v, Avx.LoadVector256(x1 + k), b0);
            if (TCount.Count > 2) e0 = Fma.MultiplyAdd(v, Avx.LoadVector256(x2 + k), e0);
            if (TCount.Count > 3) f0 = Fma.MultiplyAdd(v, Avx.LoadVector256(x3 + k), f0);
            v = ScaledValues256(w + k + 8, mask);
            a1 = Fma.MultiplyAdd(v, Avx.LoadVector256(x0 + k + 8), a1);
            if (TCount.Count > 1) b1 = Fma.MultiplyAdd(v, Avx.LoadVector256(x1 + k + 8), b1);
            if (TCount.Count > 2) e1 = Fma.MultiplyAdd(v, Avx.LoadVector256(x2 + k + 8), e1);
            if (TCount.Count > 3) f1 = Fma.MultiplyAdd(v, Avx.LoadVector256(x3 + k + 8), f1);
            v = ScaledValues256(w + k + 16, mask);
            a2 = Fma.MultiplyAdd(v, Avx.LoadVector256(x0 + k + 16), a2);
            if (TCount.Count > 1) b2 = Fma.MultiplyAdd(v, Avx.LoadVector256(x1 + k + 16), b2);
            if (TCount.Count > 2) e2 = Fma.MultiplyAdd(v, Avx.LoadVector256(x2 + k + 16), e2);
            if (TCount.Count > 3) f2 = Fma.MultiplyAdd(v, Avx.LoadVector256(x3 + k + 16), f2);
            v = ScaledValues256(w + k + 24, mask);
            a3 = Fma.MultiplyAdd(v, Avx.LoadVector256(x0 + k + 24), a3);
            if (TCount.Count > 1) b3 = Fma.MultiplyAdd(v, Avx.LoadVector256(x1 + k + 24), b3);
            if (TCount.Count > 2) e3 = Fma.MultiplyAdd(v, Avx.LoadVector256(x2 + k + 24), e3);
            if (TCount.Count > 3) f3 = Fma.MultiplyAdd(v, Avx.LoadVector256(x3 + k + 24), f3);
        }
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
        if (TCount.Count > 1) { acc[4] = b0; acc[5] = b1; acc[6] = b2; acc[7] = b3; }
        if (TCount.Count > 2) { acc[8] = e0; acc[9] = e1; acc[10] = e2; acc[11] = e3; }
        if (TCount.Count > 3) { acc[12] = f0; acc[13] = f1; acc[14] = f2; acc[15] = f3; }
    }

    /// <summary><see cref="Accumulate256{TCount}"/> for a token count (1 … 4) known at run time.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Accumulate256(int tokens, short* w, float* x, int columns, int c0, int c1, Vector256<float>* acc,
        Vector256<int> mask, byte* prefetch)
    {
        switch (tokens)
        {
            case 1: Accumulate256<OneToken>(w, x, columns, c0, c1, acc, mask, prefetch); break;
            case 2: Accumulate256<TwoTokens>(w, x, columns, c0, c1, acc, mask, prefetch); break;
            case 3: Accumulate256<ThreeTokens>(w, x, columns, c0, c1, acc, mask, prefetch); break;
            default: Accumulate256<FourTokens>(w, x, columns, c0, c1, acc, mask, prefetch); break;
        }
    }

    /// <summary>A tile's results for a group of tokens: row r of token i (of <paramref name="tokens"/>, which says
    /// where each token's results go) from its four accumulators acc[4(r·g + i) …], finished as <see cref="DotRowsAvx2"/>
    /// finishes a row. Four (row, token) sums are reduced together (<see cref="HorizontalSums"/>): three horizontal adds
    /// for four results instead of two each.</summary>
    private static unsafe void FinishTile(short* tile, int tileRows, int columns, float* xg, int g, Vector256<float>* acc,
        Vector256<int> mask, float* d, ReadOnlySpan<int> tokens, long dstStride, int r0)
    {
        int count = tileRows * g, k = 0;
        float* sums = stackalloc float[4];
        for (; k < count; k += 4)
        {
            if (k + 4 <= count)
                HorizontalSums(RowSum(k), RowSum(k + 1), RowSum(k + 2), RowSum(k + 3)).Store(sums);
            else
                for (int q = 0; k + q < count; q++) sums[q] = HorizontalSum(RowSum(k + q));
            for (int q = 0; q < 4 && k + q < count; q++)
            {
                int r = (k + q) / g, i = (k + q) % g;
                d[tokens[i] * dstStride + r0 + r] = sums[q] + TailDot(tile + (long)r * columns, xg + (long)i * columns, columns & ~7, columns);
            }
        }

        // Accumulator set k (row k / g, token k % g) with the 8-column steps that follow the 32-column ones.
        Vector256<float> RowSum(int k) => AddPendingColumns(acc + 4 * k, tile + (long)(k / g) * columns, xg + (long)(k % g) * columns, columns, mask);
    }

    /// <summary>A row's four accumulators after the 32-column steps, with the 8-column steps into the first, added
    /// as <see cref="DotRowsAvx2"/> adds them: (a0 + a1) + (a2 + a3).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<float> AddPendingColumns(Vector256<float>* a, short* w, float* xs, int columns, Vector256<int> mask)
    {
        Vector256<float> a0 = a[0];
        for (int c = columns & ~31; c < (columns & ~7); c += 8)
            a0 = Fma.MultiplyAdd(ScaledValues256(w + c, mask), Avx.LoadVector256(xs + c), a0);
        return (a0 + a[1]) + (a[2] + a[3]);
    }

    /// <summary>The sum of v's lanes in Vector256.Sum's order, written out so that the one-token and several-token
    /// kernels agree by construction: ((v0 + v1) + (v2 + v3)) + ((v4 + v5) + (v6 + v7)).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static float HorizontalSum(Vector256<float> v)
    {
        Vector256<float> pairs = Avx.HorizontalAdd(v, v);           // v0+v1, v2+v3, ·, · | v4+v5, v6+v7, ·, ·
        Vector256<float> quads = Avx.HorizontalAdd(pairs, pairs);   // (v0+v1)+(v2+v3), … | (v4+v5)+(v6+v7), …
        return quads.GetLower().ToScalar() + quads.GetUpper().ToScalar();
    }

    /// <summary><see cref="HorizontalSum"/> of four vectors at once: lane j of the result is vector j's sum, in the
    /// same order.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<float> HorizontalSums(Vector256<float> s0, Vector256<float> s1, Vector256<float> s2, Vector256<float> s3)
    {
        // hadd(a, b) = a0+a1, a2+a3, b0+b1, b2+b3 | a4+a5, a6+a7, b4+b5, b6+b7 (per 128-bit half).
        Vector256<float> quads = Avx.HorizontalAdd(Avx.HorizontalAdd(s0, s1), Avx.HorizontalAdd(s2, s3));
        return quads.GetLower() + quads.GetUpper();
    }
}
