using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.Arm;

namespace BitNet.Inference.Kernels;

/// <summary>
/// ARM64 AdvSimd I2_S × int8 kernels (spec §8.2), on the same 128/32 layout as x86 (never the
/// 64/16 layout of newer bitnet.cpp ARM builds, spec §3.4). A block's 32 bytes load as two
/// 16-byte halves; byte shifts (ushr on 8-bit lanes, so no bits leak between bytes) by 6, 4, 2
/// and a mask with 3 give eight 16-code vectors: the shift-6 pair matches q[0..15] and q[16..31],
/// the shift-4 pair q[32..63], and so on.
///
/// With Dp (ARMv8.2 dotprod, Graviton 2+): sdot, signed × signed int8 into int32 — codes 0..3 fit
/// sbyte, and every product lands straight in int32, so nothing can overflow. Prefill runs 1 row ×
/// 8 tokens per call, unpacking each block once for the 8 tokens.
/// Without Dp: smull/smlal2 give int16 lanes holding two products each (|lane| ≤ 2·3·128 = 768),
/// and sadalp widens them pairwise into int32 at once. Exact either way.
/// </summary>
internal static partial class I2sKernels
{
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsAdvSimd(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots)
    {
        if (!AdvSimd.Arm64.IsSupported) throw new PlatformNotSupportedException("AdvSimd kernels need ARM64 AdvSimd");
        DotRowsArm(weights, columns, activations, tokens, rowStart, rowCount, dots, useDotProduct: false);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsDotProd(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots)
    {
        if (!Dp.IsSupported || !AdvSimd.Arm64.IsSupported) throw new PlatformNotSupportedException("dotprod kernels need ARMv8.2 Dp");
        DotRowsArm(weights, columns, activations, tokens, rowStart, rowCount, dots, useDotProduct: true);
    }

    private static void DotRowsArm(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots, bool useDotProduct)
    {
        ValidateRows(weights, columns, activations, tokens, rowStart, rowCount, dots);
        int rowBytes = columns / 4, blocks = columns / I2sLayout.BlockElements;
        unsafe
        {
            fixed (byte* w = weights)
            fixed (sbyte* a = activations)
            fixed (int* d = dots)
            {
                // Row outer, token inner: a row's codes (≤ 2 KB) stay in L1 while every token uses them.
                // With sdot, prefill takes 8 tokens at a time, so each block's codes are unpacked once
                // for all 8 (7 shift/mask ops shared by 64 sdot, instead of 7 per 8).
                int tiledTokens = useDotProduct ? tokens - tokens % DotProdTileTokens : 0;
                for (int r = 0; r < rowCount; r++)
                {
                    byte* row = w + (long)(rowStart + r) * rowBytes;
                    for (int t = 0; t < tiledTokens; t += DotProdTileTokens)
                        DotProdRowTokens8(row, a + (long)t * columns, columns, blocks, d + t * rowCount + r, rowCount);
                    for (int t = tiledTokens; t < tokens; t++)
                        d[t * rowCount + r] = useDotProduct
                            ? DotProdRow(row, a + (long)t * columns, blocks)
                            : AdvSimdRow(row, a + (long)t * columns, blocks);
                }
            }
        }
    }

    /// <summary>
    /// One row · one token with sdot. Three of a byte's four codes are not shifted down: masked in
    /// place, the code at bits 4–5 is 16·code and the one at bits 2–3 is 4·code, still a small
    /// positive int8, so sdot takes them as they are and the sums are scaled back once at the end.
    /// That is 8 vector operations per 32 bytes of codes instead of 14 (6 shifts, 8 masks), and on
    /// Graviton 2 (Neoverse N1: two SIMD pipes that the sdot also need) those operations, not the
    /// memory, bound a decode thread (llvm-mca's estimate: scripts/arm64-mca.py).
    /// </summary>
    /// <remarks>
    /// No overflow: a lane of one sdot adds four products, each |16·code·q| ≤ 16·3·128 = 6,144 at most,
    /// so an accumulator gains at most 24,576 per lane per 128 columns, and the two of a scale are
    /// added before scaling back: below 2^31 for rows of up to 5 million columns. The scaled sums are
    /// exact multiples of 4 and 16, lane by lane, so the arithmetic shifts that scale them back are exact.
    /// </remarks>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int DotProdRow(byte* row, sbyte* q, int blocks)
    {
        Debug.Assert(Dp.IsSupported);
        var bits01 = Vector128.Create((byte)0x03);
        var bits23 = Vector128.Create((byte)0x0C);
        var bits45 = Vector128.Create((byte)0x30);
        // Two chains per scale, at most two sdot per chain and block: with two chains of four, Neoverse V1
        // waited on sdot latency (8 cycles a block, where its four SIMD pipes allow 4).
        Vector128<int> one0 = default, one1 = default, four0 = default, four1 = default, sixteen0 = default, sixteen1 = default;
        for (int b = 0; b < blocks; b++)
        {
            byte* block = row + b * 32;
            Vector128<byte> lo = AdvSimd.LoadVector128(block), hi = AdvSimd.LoadVector128(block + 16);
            sbyte* qb = q + b * 128;
            // Activation order as UnpackBlock's: bits 6-7 of lo, hi ↔ q[0..31], bits 4-5 ↔ q[32..63],
            // bits 2-3 ↔ q[64..95], bits 0-1 ↔ q[96..127].
            one0 = Dp.DotProduct(one0, AdvSimd.ShiftRightLogical(lo, 6).AsSByte(), AdvSimd.LoadVector128(qb));
            one1 = Dp.DotProduct(one1, AdvSimd.ShiftRightLogical(hi, 6).AsSByte(), AdvSimd.LoadVector128(qb + 16));
            sixteen0 = Dp.DotProduct(sixteen0, (lo & bits45).AsSByte(), AdvSimd.LoadVector128(qb + 32));
            sixteen1 = Dp.DotProduct(sixteen1, (hi & bits45).AsSByte(), AdvSimd.LoadVector128(qb + 48));
            four0 = Dp.DotProduct(four0, (lo & bits23).AsSByte(), AdvSimd.LoadVector128(qb + 64));
            four1 = Dp.DotProduct(four1, (hi & bits23).AsSByte(), AdvSimd.LoadVector128(qb + 80));
            one0 = Dp.DotProduct(one0, (lo & bits01).AsSByte(), AdvSimd.LoadVector128(qb + 96));
            one1 = Dp.DotProduct(one1, (hi & bits01).AsSByte(), AdvSimd.LoadVector128(qb + 112));
        }
        Vector128<int> sum = one0 + one1
            + AdvSimd.ShiftRightArithmetic(four0 + four1, 2)
            + AdvSimd.ShiftRightArithmetic(sixteen0 + sixteen1, 4);
        return AdvSimd.Arm64.AddAcross(sum).ToScalar();
    }

    private const int DotProdTileTokens = 8;

    /// <summary>
    /// One row × 8 tokens: the block's eight 16-code vectors are unpacked once and each token's 128
    /// activations meet them in 8 sdot into that token's accumulator. Token u's dot goes to dst[u·stride].
    /// 8 accumulators + 8 code vectors + an activation vector fit the 32 SIMD registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void DotProdRowTokens8(byte* row, sbyte* q, int columns, int blocks, int* dst, int stride)
    {
        Debug.Assert(Dp.IsSupported);
        Vector128<int> s0 = default, s1 = default, s2 = default, s3 = default, s4 = default, s5 = default, s6 = default, s7 = default;
        for (int b = 0; b < blocks; b++)
        {
            UnpackBlock(row + b * 32, out var u0, out var u1, out var u2, out var u3, out var u4, out var u5, out var u6, out var u7);
            Vector128<sbyte> c0 = u0.AsSByte(), c1 = u1.AsSByte(), c2 = u2.AsSByte(), c3 = u3.AsSByte();
            Vector128<sbyte> c4 = u4.AsSByte(), c5 = u5.AsSByte(), c6 = u6.AsSByte(), c7 = u7.AsSByte();
            sbyte* qb = q + b * 128;
            s0 = DotBlock(s0, c0, c1, c2, c3, c4, c5, c6, c7, qb);
            s1 = DotBlock(s1, c0, c1, c2, c3, c4, c5, c6, c7, qb + columns);
            s2 = DotBlock(s2, c0, c1, c2, c3, c4, c5, c6, c7, qb + 2 * columns);
            s3 = DotBlock(s3, c0, c1, c2, c3, c4, c5, c6, c7, qb + 3 * columns);
            s4 = DotBlock(s4, c0, c1, c2, c3, c4, c5, c6, c7, qb + 4 * columns);
            s5 = DotBlock(s5, c0, c1, c2, c3, c4, c5, c6, c7, qb + 5 * columns);
            s6 = DotBlock(s6, c0, c1, c2, c3, c4, c5, c6, c7, qb + 6 * columns);
            s7 = DotBlock(s7, c0, c1, c2, c3, c4, c5, c6, c7, qb + 7 * columns);
        }
        dst[0] = AdvSimd.Arm64.AddAcross(s0).ToScalar();
        dst[stride] = AdvSimd.Arm64.AddAcross(s1).ToScalar();
        dst[2 * stride] = AdvSimd.Arm64.AddAcross(s2).ToScalar();
        dst[3 * stride] = AdvSimd.Arm64.AddAcross(s3).ToScalar();
        dst[4 * stride] = AdvSimd.Arm64.AddAcross(s4).ToScalar();
        dst[5 * stride] = AdvSimd.Arm64.AddAcross(s5).ToScalar();
        dst[6 * stride] = AdvSimd.Arm64.AddAcross(s6).ToScalar();
        dst[7 * stride] = AdvSimd.Arm64.AddAcross(s7).ToScalar();
    }

    /// <summary>acc += one block's 128 codes · q[0..127], the code vectors in q order (c0 ↔ q[0..15], c1 ↔ q[16..31], …).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector128<int> DotBlock(Vector128<int> acc,
        Vector128<sbyte> c0, Vector128<sbyte> c1, Vector128<sbyte> c2, Vector128<sbyte> c3,
        Vector128<sbyte> c4, Vector128<sbyte> c5, Vector128<sbyte> c6, Vector128<sbyte> c7, sbyte* q)
    {
        acc = Dp.DotProduct(acc, c0, AdvSimd.LoadVector128(q));
        acc = Dp.DotProduct(acc, c1, AdvSimd.LoadVector128(q + 16));
        acc = Dp.DotProduct(acc, c2, AdvSimd.LoadVector128(q + 32));
        acc = Dp.DotProduct(acc, c3, AdvSimd.LoadVector128(q + 48));
        acc = Dp.DotProduct(acc, c4, AdvSimd.LoadVector128(q + 64));
        acc = Dp.DotProduct(acc, c5, AdvSimd.LoadVector128(q + 80));
        acc = Dp.DotProduct(acc, c6, AdvSimd.LoadVector128(q + 96));
        return Dp.DotProduct(acc, c7, AdvSimd.LoadVector128(q + 112));
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int AdvSimdRow(byte* row, sbyte* q, int blocks)
    {
        Debug.Assert(AdvSimd.Arm64.IsSupported);
        Vector128<int> acc = default;
        for (int b = 0; b < blocks; b++)
        {
            UnpackBlock(row + b * 32, out var c0, out var c1, out var c2, out var c3, out var c4, out var c5, out var c6, out var c7);
            sbyte* qb = q + b * 128;
            acc = MulAddWidening(acc, c0, AdvSimd.LoadVector128(qb));
            acc = MulAddWidening(acc, c1, AdvSimd.LoadVector128(qb + 16));
            acc = MulAddWidening(acc, c2, AdvSimd.LoadVector128(qb + 32));
            acc = MulAddWidening(acc, c3, AdvSimd.LoadVector128(qb + 48));
            acc = MulAddWidening(acc, c4, AdvSimd.LoadVector128(qb + 64));
            acc = MulAddWidening(acc, c5, AdvSimd.LoadVector128(qb + 80));
            acc = MulAddWidening(acc, c6, AdvSimd.LoadVector128(qb + 96));
            acc = MulAddWidening(acc, c7, AdvSimd.LoadVector128(qb + 112));
        }
        return AdvSimd.Arm64.AddAcross(acc).ToScalar();
    }

    /// <summary>
    /// A block's 32 bytes as eight 16-code vectors in activation order: c0, c1 are the shift-6 codes of
    /// the two 16-byte halves (q[0..15], q[16..31]), c2, c3 the shift-4 codes (q[32..63]), then shift 2,
    /// then the low bit pairs. ushr works on 8-bit lanes, so no bits leak between bytes.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void UnpackBlock(byte* block,
        out Vector128<byte> c0, out Vector128<byte> c1, out Vector128<byte> c2, out Vector128<byte> c3,
        out Vector128<byte> c4, out Vector128<byte> c5, out Vector128<byte> c6, out Vector128<byte> c7)
    {
        var mask3 = Vector128.Create((byte)3);
        Vector128<byte> lo = AdvSimd.LoadVector128(block), hi = AdvSimd.LoadVector128(block + 16);
        c0 = AdvSimd.ShiftRightLogical(lo, 6);
        c1 = AdvSimd.ShiftRightLogical(hi, 6);
        c2 = AdvSimd.ShiftRightLogical(lo, 4) & mask3;
        c3 = AdvSimd.ShiftRightLogical(hi, 4) & mask3;
        c4 = AdvSimd.ShiftRightLogical(lo, 2) & mask3;
        c5 = AdvSimd.ShiftRightLogical(hi, 2) & mask3;
        c6 = lo & mask3;
        c7 = hi & mask3;
    }

    /// <summary>acc += Σ codes·q over 16 lanes: smull (low 8) + smlal2 (high 8) into int16, then sadalp into int32.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector128<int> MulAddWidening(Vector128<int> acc, Vector128<byte> codes, Vector128<sbyte> q)
    {
        Vector128<short> pairs = AdvSimd.MultiplyWideningLower(codes.AsSByte().GetLower(), q.GetLower());
        pairs = AdvSimd.MultiplyWideningUpperAndAdd(pairs, codes.AsSByte(), q);
        return AdvSimd.AddPairwiseWideningAndAdd(acc, pairs);
    }
}
