using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BitNet.Inference.Kernels;

// The AVX-512F LM-head kernels: one token four rows at a time, and several tokens by row pairs.
public static partial class F16
{
    /// <summary>AVX-512F LM-head rows, 4 rows per input load; 16 products per FMA.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsAvx512(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        if (!Avx512F.IsSupported) throw new PlatformNotSupportedException("needs AVX-512F");
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        int vecColumns = columns & ~15;
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
                var mask = Vector512.Create(BodyMask);
                int r = 0;
                for (; r + 4 <= rowCount; r += 4)
                {
                    short* w0 = (short*)(m + (long)(rowStart + r) * columns);
                    short* w1 = w0 + columns, w2 = w1 + columns, w3 = w2 + columns;
                    Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    // 4 rows = 4 interleaved streams the hardware prefetcher follows poorly; fetch the
                    // tile two tiles ahead (40 KB for 2560 columns: into L2, prefetcht1) at the rate this
                    // loop consumes it (4 × 32 bytes per step).
                    byte* ahead = (byte*)(w0 + 8L * columns);
                    for (int k = 0; k < vecColumns; k += 16)
                    {
                        Sse.Prefetch1(ahead + 8L * k);
                        Sse.Prefetch1(ahead + 8L * k + 64);
                        Vector512<float> xv = Avx512F.LoadVector512(xs + k);
                        a0 = Avx512F.FusedMultiplyAdd(ScaledValues512(w0 + k, mask), xv, a0);
                        a1 = Avx512F.FusedMultiplyAdd(ScaledValues512(w1 + k, mask), xv, a1);
                        a2 = Avx512F.FusedMultiplyAdd(ScaledValues512(w2 + k, mask), xv, a2);
                        a3 = Avx512F.FusedMultiplyAdd(ScaledValues512(w3 + k, mask), xv, a3);
                    }
                    dst[r] = Vector512.Sum(a0) + TailDot(w0, xs, vecColumns, columns);
                    dst[r + 1] = Vector512.Sum(a1) + TailDot(w1, xs, vecColumns, columns);
                    dst[r + 2] = Vector512.Sum(a2) + TailDot(w2, xs, vecColumns, columns);
                    dst[r + 3] = Vector512.Sum(a3) + TailDot(w3, xs, vecColumns, columns);
                }
                for (; r < rowCount; r++)
                {
                    short* w0 = (short*)(m + (long)(rowStart + r) * columns);
                    Vector512<float> a0 = default;
                    for (int k = 0; k < vecColumns; k += 16)
                        a0 = Avx512F.FusedMultiplyAdd(ScaledValues512(w0 + k, mask), Avx512F.LoadVector512(xs + k), a0);
                    dst[r] = Vector512.Sum(a0) + TailDot(w0, xs, vecColumns, columns);
                }
            }
        }
    }

    /// <summary>Columns per block of the 512-bit row-pair loops: four tokens' inputs are 20 KB, still inside
    /// an AVX-512 core's 48 KB L1, and each call of the loop runs 2.5 times longer than with 512, which
    /// pays its setup (16 accumulators loaded and stored) less often. A multiple of 32.</summary>
    private const int PairColumnBlock = 1280;

    /// <summary>
    /// <see cref="DotRowsTokensAvx2"/> with 512-bit vectors, two rows by up to four tokens per step: a 512-bit
    /// accumulator holds two of the single-token kernel's 256-bit ones side by side (columns k … k + 7 in its
    /// low half, k + 8 … k + 15 in its high half), so every lane takes the same FMAs in the same order and the
    /// results are <see cref="DotRowsAvx2"/>'s bit for bit. Each input vector loaded serves both rows (one
    /// row by eight tokens spent more cycles on input loads than on FMAs); more than four tokens take
    /// the tile again from L2. The tile after next is prefetched while one is computed, spread over all its
    /// token groups (two lines per step of the pair loop for one group, a share of them for several, so
    /// memory keeps streaming while the second group computes); issued as a burst of 32 before each call,
    /// the prefetches overlapped the FMAs less (docs/performance.md). The pair loop is emitted machine code
    /// (<see cref="Avx512PairLoops"/>), so Native AOT binaries built for x86-64-v3 run it too; a tile's odd
    /// last row takes the AVX2 loop, whose accumulators have the same layout. Where the pair loops cannot
    /// run this is <see cref="DotRowsTokensAvx2"/>.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void DotRowsTokensAvx512(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int tokens, int rowStart, int rowCount,
        Span<float> dst, int dstStride)
    {
        if (Avx512PairLoops.Instance is not { } loops)
        {
            DotRowsTokensAvx2(matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride);
            return;
        }
        if (!Avx2.IsSupported || !Fma.IsSupported) throw new PlatformNotSupportedException("needs AVX2 and FMA");
        const int group = Avx512PairLoops.MaxTokens;
        Span<int> vector = tokens <= 256 ? stackalloc int[tokens] : new int[tokens];
        Span<float> scaledAll = ScaleTokens(matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride, vector, out int vectorTokens);
        Span<float> plainAll = PlainTokens(x, columns, vector[..vectorTokens]);
        int wide = columns & ~31;
        int groups = (vectorTokens + group - 1) / group;
        long tileBytes = (long)TokenTileRows * columns * sizeof(short);
        // Per (row, token) the AVX2 loop's four 256-bit accumulators, which are the pair loop's two 512-bit ones.
        Vector256<float>* acc = stackalloc Vector256<float>[TokenTileRows * group * 4];
        Avx512PairLoops.Args args = default;
        args.RowBytes = (nint)columns * sizeof(short);
        args.AheadStep = 128 / Math.Max(1, groups);
        fixed (Half* m = matrix)
        fixed (float* scaled = scaledAll)
        fixed (float* plain = plainAll)
        fixed (float* d = dst)
        {
            var mask = Vector256.Create(BodyMask);
            byte* end = (byte*)(m + (long)(rowStart + rowCount) * columns);
            for (int r0 = 0; r0 < rowCount; r0 += TokenTileRows)
            {
                int tileRows = Math.Min(TokenTileRows, rowCount - r0);
                short* tile = (short*)(m + (long)(rowStart + r0) * columns);
                // The tile after next, spread over all of this tile's token groups (group i fetches the i-th
                // part), so memory keeps streaming while later groups compute from cache.
                byte* tileAhead = (byte*)tile + 2 * tileBytes;
                for (int g0 = 0; g0 < vectorTokens; g0 += group)
                {
                    int g = Math.Min(group, vectorTokens - g0);
                    float* xg = scaled + (long)g0 * columns, pg = plain + (long)g0 * columns;
                    byte* ahead = tileAhead + (long)(g0 / group) * tileBytes / groups;
                    new Span<Vector256<float>>(acc, tileRows * 4 * g).Clear();
                    for (int c0 = 0; c0 < wide; c0 += PairColumnBlock)
                    {
                        int c1 = Math.Min(wide, c0 + PairColumnBlock);
                        int r = 0;
                        for (; r + 2 <= tileRows; r += 2)
                        {
                            short* w = tile + (long)r * columns;
                            args.Ahead = PrefetchTarget(ref ahead, end, true, w, (c1 - c0) / 16 * 64 / groups);   // two rows' worth
                            args.Row = w + c0;
                            float** inputs = &args.X0;
                            for (int u = 0; u < g; u++) inputs[u] = pg + (long)u * columns + c0;
                            args.Steps = (c1 - c0) / 32;
                            args.Acc0 = (float*)(acc + r * 4 * g);
                            args.Acc1 = (float*)(acc + (r + 1) * 4 * g);
                            loops.Run(g, &args);
                        }
                        if (r < tileRows)
                        {
                            short* w = tile + (long)r * columns;
                            // Its loop prefetches a line per 32 columns, one group's rate: later groups of several fetch nothing.
                            byte* next = PrefetchTarget(ref ahead, end, groups == 1, w, (c1 - c0) / 32 * 64 / groups);
                            Vector256<float>* a = acc + r * 4 * g;
                            Accumulate256(g, w, xg, columns, c0, c1, a, mask, next);
                        }
                    }
                    FinishTile(tile, tileRows, columns, xg, g, acc, mask, d, vector.Slice(g0, g), dstStride, r0);
                }
            }
        }
    }

    /// <summary>
    /// One token's rows through <see cref="DotRowsTokensAvx512"/>, whose emitted pair loops widen halves exactly:
    /// the sums of <see cref="DotRowsAvx2"/> bit for bit (non-finite weights aside), without the subnormal floats
    /// that its shift widening makes of subnormal halves, which cost Intel cores a microcode assist per FMA.
    /// </summary>
    public static void DotRowsExactWidening(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst) =>
        DotRowsTokensAvx512(matrix, columns, x, 1, rowStart, rowCount, dst, rowCount);

    /// <summary>Per-thread copy of the listed tokens' inputs as they are, for the emitted pair loops (which widen
    /// the halves exactly): contiguous slots in <see cref="ScaleTokens"/>'s order, from a 64-byte boundary.</summary>
    [ThreadStatic] private static float[]? _plainTokens;

    private static Span<float> PlainTokens(ReadOnlySpan<float> x, int columns, ReadOnlySpan<int> tokens)
    {
        Span<float> plain = Aligned64(ref _plainTokens, tokens.Length * columns);
        for (int i = 0; i < tokens.Length; i++)
            x.Slice(tokens[i] * columns, columns).CopyTo(plain.Slice(i * columns, columns));
        return plain;
    }
}
