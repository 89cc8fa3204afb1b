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
/// sbyte, and every product lands straight in int32, so nothing can overflow.
/// Without Dp: smull/smlal2 give int16 lanes holding two products each (|lane| ≤ 2·3·128 = 768),
/// and sadalp widens them pairwise into int32 at once. Exact either way.
/// </summary>
public static partial class I2sKernels
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
                for (int r = 0; r < rowCount; r++)
                {
                    byte* row = w + (long)(rowStart + r) * rowBytes;
                    for (int t = 0; t < tokens; t++)
                        d[t * rowCount + r] = useDotProduct
                            ? DotProdRow(row, a + (long)t * columns, blocks)
                            : AdvSimdRow(row, a + (long)t * columns, blocks);
                }
            }
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int DotProdRow(byte* row, sbyte* q, int blocks)
    {
        Debug.Assert(Dp.IsSupported);
        var mask3 = Vector128.Create((byte)3);
        Vector128<int> acc0 = default, acc1 = default;
        for (int b = 0; b < blocks; b++)
        {
            Vector128<byte> lo = AdvSimd.LoadVector128(row + b * 32), hi = AdvSimd.LoadVector128(row + b * 32 + 16);
            sbyte* qb = q + b * 128;
            acc0 = Dp.DotProduct(acc0, AdvSimd.ShiftRightLogical(lo, 6).AsSByte(), AdvSimd.LoadVector128(qb));
            acc1 = Dp.DotProduct(acc1, AdvSimd.ShiftRightLogical(hi, 6).AsSByte(), AdvSimd.LoadVector128(qb + 16));
            acc0 = Dp.DotProduct(acc0, (AdvSimd.ShiftRightLogical(lo, 4) & mask3).AsSByte(), AdvSimd.LoadVector128(qb + 32));
            acc1 = Dp.DotProduct(acc1, (AdvSimd.ShiftRightLogical(hi, 4) & mask3).AsSByte(), AdvSimd.LoadVector128(qb + 48));
            acc0 = Dp.DotProduct(acc0, (AdvSimd.ShiftRightLogical(lo, 2) & mask3).AsSByte(), AdvSimd.LoadVector128(qb + 64));
            acc1 = Dp.DotProduct(acc1, (AdvSimd.ShiftRightLogical(hi, 2) & mask3).AsSByte(), AdvSimd.LoadVector128(qb + 80));
            acc0 = Dp.DotProduct(acc0, (lo & mask3).AsSByte(), AdvSimd.LoadVector128(qb + 96));
            acc1 = Dp.DotProduct(acc1, (hi & mask3).AsSByte(), AdvSimd.LoadVector128(qb + 112));
        }
        return AdvSimd.Arm64.AddAcross(acc0 + acc1).ToScalar();
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int AdvSimdRow(byte* row, sbyte* q, int blocks)
    {
        Debug.Assert(AdvSimd.Arm64.IsSupported);
        var mask3 = Vector128.Create((byte)3);
        Vector128<int> acc = default;
        for (int b = 0; b < blocks; b++)
        {
            Vector128<byte> lo = AdvSimd.LoadVector128(row + b * 32), hi = AdvSimd.LoadVector128(row + b * 32 + 16);
            sbyte* qb = q + b * 128;
            acc = MulAddWidening(acc, AdvSimd.ShiftRightLogical(lo, 6), AdvSimd.LoadVector128(qb));
            acc = MulAddWidening(acc, AdvSimd.ShiftRightLogical(hi, 6), AdvSimd.LoadVector128(qb + 16));
            acc = MulAddWidening(acc, AdvSimd.ShiftRightLogical(lo, 4) & mask3, AdvSimd.LoadVector128(qb + 32));
            acc = MulAddWidening(acc, AdvSimd.ShiftRightLogical(hi, 4) & mask3, AdvSimd.LoadVector128(qb + 48));
            acc = MulAddWidening(acc, AdvSimd.ShiftRightLogical(lo, 2) & mask3, AdvSimd.LoadVector128(qb + 64));
            acc = MulAddWidening(acc, AdvSimd.ShiftRightLogical(hi, 2) & mask3, AdvSimd.LoadVector128(qb + 80));
            acc = MulAddWidening(acc, lo & mask3, AdvSimd.LoadVector128(qb + 96));
            acc = MulAddWidening(acc, hi & mask3, AdvSimd.LoadVector128(qb + 112));
        }
        return AdvSimd.Arm64.AddAcross(acc).ToScalar();
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
