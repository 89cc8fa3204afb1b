using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;

namespace BitNet.Inference.Kernels;

// The portable 128-bit LM-head kernels (ARM64 AdvSimd and any Vector128 platform).
public static partial class F16
{
    /// <summary>Columns per block of <see cref="DotRowsTokensVector128"/>: a block of four tokens' scaled inputs is 8 KB,
    /// so it stays in L1 while the tile's rows go through it. A multiple of 32.</summary>
    private const int TokenColumnBlock = 512;

    /// <summary>Portable 128-bit LM-head rows (ARM64 AdvSimd and any Vector128 platform).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsVector128(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int rowStart, int rowCount, Span<float> dst)
    {
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        int vecColumns = columns & ~7;
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
                var mask = Vector128.Create(BodyMask);
                for (int r = 0; r < rowCount; r++)
                {
                    short* w0 = (short*)(m + (long)(rowStart + r) * columns);
                    // Four accumulators over 16 columns a step: with two, each fmla waited on the one
                    // before it (4 cycles on Neoverse N1 and V1), slower than the conversions themselves.
                    Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default;
                    int k = 0;
                    for (; k + 16 <= vecColumns; k += 16)
                    {
                        ScaledValues128(w0 + k, mask, out Vector128<float> lo0, out Vector128<float> hi0);
                        ScaledValues128(w0 + k + 8, mask, out Vector128<float> lo1, out Vector128<float> hi1);
                        a0 = Vector128.FusedMultiplyAdd(lo0, Vector128.Load(xs + k), a0);
                        a1 = Vector128.FusedMultiplyAdd(hi0, Vector128.Load(xs + k + 4), a1);
                        a2 = Vector128.FusedMultiplyAdd(lo1, Vector128.Load(xs + k + 8), a2);
                        a3 = Vector128.FusedMultiplyAdd(hi1, Vector128.Load(xs + k + 12), a3);
                    }
                    for (; k < vecColumns; k += 8)
                    {
                        ScaledValues128(w0 + k, mask, out Vector128<float> lo, out Vector128<float> hi);
                        a0 = Vector128.FusedMultiplyAdd(lo, Vector128.Load(xs + k), a0);
                        a1 = Vector128.FusedMultiplyAdd(hi, Vector128.Load(xs + k + 4), a1);
                    }
                    dst[r] = Vector128.Sum((a0 + a2) + (a1 + a3)) + TailDot(w0, xs, vecColumns, columns);
                }
            }
        }
    }

    /// <summary>
    /// <see cref="DotRowsVector128"/> for several tokens (the NEON sets' batched head): each 8-half group is
    /// widened once for up to four tokens, each with the single-token kernel's four accumulators (ARM64 has 32
    /// vector registers), in tiles and column blocks as <see cref="DotRowsTokensAvx2"/>: the results are
    /// <see cref="DotRowsVector128"/>'s bit for bit.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void DotRowsTokensVector128(ReadOnlySpan<Half> matrix, int columns, ReadOnlySpan<float> x, int tokens, int rowStart, int rowCount,
        Span<float> dst, int dstStride)
    {
        const int group = 4;
        Span<int> vector = tokens <= 256 ? stackalloc int[tokens] : new int[tokens];
        Span<float> scaledAll = ScaleTokens(matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride, vector, out int vectorTokens);
        int wide = columns & ~15;
        Vector128<float>* acc = stackalloc Vector128<float>[TokenTileRows * group * 4];
        fixed (Half* m = matrix)
        fixed (float* scaled = scaledAll)
        fixed (float* d = dst)
        {
            var mask = Vector128.Create(BodyMask);
            for (int r0 = 0; r0 < rowCount; r0 += TokenTileRows)
            {
                int tileRows = Math.Min(TokenTileRows, rowCount - r0);
                short* tile = (short*)(m + (long)(rowStart + r0) * columns);
                for (int g0 = 0; g0 < vectorTokens; g0 += group)
                {
                    int g = Math.Min(group, vectorTokens - g0);
                    float* xg = scaled + (long)g0 * columns;
                    new Span<Vector128<float>>(acc, tileRows * 4 * g).Clear();
                    for (int c0 = 0; c0 < wide; c0 += TokenColumnBlock)
                    {
                        int c1 = Math.Min(wide, c0 + TokenColumnBlock);
                        for (int r = 0; r < tileRows; r++)
                        {
                            short* w = tile + (long)r * columns;
                            Vector128<float>* a = acc + r * 4 * g;
                            switch (g)
                            {
                                case 1: Accumulate128<OneToken>(w, xg, columns, c0, c1, a, mask); break;
                                case 2: Accumulate128<TwoTokens>(w, xg, columns, c0, c1, a, mask); break;
                                case 3: Accumulate128<ThreeTokens>(w, xg, columns, c0, c1, a, mask); break;
                                default: Accumulate128<FourTokens>(w, xg, columns, c0, c1, a, mask); break;
                            }
                        }
                    }
                    for (int r = 0; r < tileRows; r++)
                        for (int i = 0; i < g; i++)
                        {
                            Vector128<float>* a = acc + (r * g + i) * 4;
                            short* w = tile + (long)r * columns;
                            float* xs = xg + (long)i * columns;
                            Vector128<float> a0 = a[0], a1 = a[1];
                            int vecColumns = columns & ~7;
                            for (int k = wide; k < vecColumns; k += 8)
                            {
                                ScaledValues128(w + k, mask, out Vector128<float> lo, out Vector128<float> hi);
                                a0 = Vector128.FusedMultiplyAdd(lo, Vector128.Load(xs + k), a0);
                                a1 = Vector128.FusedMultiplyAdd(hi, Vector128.Load(xs + k + 4), a1);
                            }
                            d[(long)vector[g0 + i] * dstStride + r0 + r] = Vector128.Sum((a0 + a[2]) + (a1 + a[3])) + TailDot(w, xs, vecColumns, columns);
                        }
                }
            }
        }
    }

    /// <summary><see cref="Accumulate256{TCount}"/> on 128-bit vectors, 16 columns a step (c0, c1 multiples of 16).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Accumulate128<TCount>(short* w, float* x, int columns, int c0, int c1, Vector128<float>* acc, Vector128<int> mask)
        where TCount : struct, ITokenCount
    {
        float* x0 = x, x1 = x + columns, x2 = x1 + columns, x3 = x2 + columns;
        Vector128<float> a0 = acc[0], a1 = acc[1], a2 = acc[2], a3 = acc[3];
        Vector128<float> b0 = default, b1 = default, b2 = default, b3 = default;
        Vector128<float> e0 = default, e1 = default, e2 = default, e3 = default;
        Vector128<float> f0 = default, f1 = default, f2 = default, f3 = default;
        if (TCount.Count > 1) { b0 = acc[4]; b1 = acc[5]; b2 = acc[6]; b3 = acc[7]; }
        if (TCount.Count > 2) { e0 = acc[8]; e1 = acc[9]; e2 = acc[10]; e3 = acc[11]; }
        if (TCount.Count > 3) { f0 = acc[12]; f1 = acc[13]; f2 = acc[14]; f3 = acc[15]; }
        for (int k = c0; k < c1; k += 16)
        {
            ScaledValues128(w + k, mask, out Vector128<float> lo0, out Vector128<float> hi0);
            ScaledValues128(w + k + 8, mask, out Vector128<float> lo1, out Vector128<float> hi1);
            a0 = Vector128.FusedMultiplyAdd(lo0, Vector128.Load(x0 + k), a0);
            a1 = Vector128.FusedMultiplyAdd(hi0, Vector128.Load(x0 + k + 4), a1);
            a2 = Vector128.FusedMultiplyAdd(lo1, Vector128.Load(x0 + k + 8), a2);
            a3 = Vector128.FusedMultiplyAdd(hi1, Vector128.Load(x0 + k + 12), a3);
            if (TCount.Count > 1)
            {
                b0 = Vector128.FusedMultiplyAdd(lo0, Vector128.Load(x1 + k), b0);
                b1 = Vector128.FusedMultiplyAdd(hi0, Vector128.Load(x1 + k + 4), b1);
                b2 = Vector128.FusedMultiplyAdd(lo1, Vector128.Load(x1 + k + 8), b2);
                b3 = Vector128.FusedMultiplyAdd(hi1, Vector128.Load(x1 + k + 12), b3);
            }
            if (TCount.Count > 2)
            {
                e0 = Vector128.FusedMultiplyAdd(lo0, Vector128.Load(x2 + k), e0);
                e1 = Vector128.FusedMultiplyAdd(hi0, Vector128.Load(x2 + k + 4), e1);
                e2 = Vector128.FusedMultiplyAdd(lo1, Vector128.Load(x2 + k + 8), e2);
                e3 = Vector128.FusedMultiplyAdd(hi1, Vector128.Load(x2 + k + 12), e3);
            }
            if (TCount.Count > 3)
            {
                f0 = Vector128.FusedMultiplyAdd(lo0, Vector128.Load(x3 + k), f0);
                f1 = Vector128.FusedMultiplyAdd(hi0, Vector128.Load(x3 + k + 4), f1);
                f2 = Vector128.FusedMultiplyAdd(lo1, Vector128.Load(x3 + k + 8), f2);
                f3 = Vector128.FusedMultiplyAdd(hi1, Vector128.Load(x3 + k + 12), f3);
            }
        }
        acc[0] = a0; acc[1] = a1; acc[2] = a2; acc[3] = a3;
        if (TCount.Count > 1) { acc[4] = b0; acc[5] = b1; acc[6] = b2; acc[7] = b3; }
        if (TCount.Count > 2) { acc[8] = e0; acc[9] = e1; acc[10] = e2; acc[11] = e3; }
        if (TCount.Count > 3) { acc[12] = f0; acc[13] = f1; acc[14] = f2; acc[15] = f3; }
    }
}
