using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BitNet.Inference.Kernels;

/// <summary>
/// AVX-512BW I2_S × int8 kernels. A 32-byte block is broadcast into both halves of a 512-bit
/// register and shifted per 16-bit lane by (6 | 4) and (2 | 0) (vpsrlvw), then masked with 3.
/// That yields two 64-code vectors that match the block's activations in their natural order,
/// q[0..63] and q[64..127], so activations load straight from the quantized row with no repacking.
///
/// Accumulator range: a pmaddubsw lane is c0·q0 + c1·q1 with c ≤ 3 and |q| ≤ 128, so
/// |lane| ≤ 768; two per block give ≤ 1536 per int16 lane, and <see cref="Avx512ChunkBlocks"/>
/// = 16 blocks give ≤ 24576 &lt; 32767. Each chunk is then widened with pmaddwd(·, 1) into int32.
/// D is exact and equals DotScalar for every 2-bit code, 3 included.
///
/// .NET 10 exposes VNNI (vpdpbusd) only as the VEX AvxVnni class, which AVX-512-VNNI-only CPUs such
/// as AMD Zen 4 do not report; pmaddubsw + periodic pmaddwd is the path those CPUs take.
/// </summary>
public static partial class I2sKernels
{
    private const int Avx512ChunkBlocks = 16;

    /// <summary>Rows processed per weight-chunk in prefill: small enough for the chunk's codes to
    /// stay in L2 while every token block streams past them.</summary>
    private const int PrefillRowChunk = 64;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsAvx512(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots)
    {
        if (!Avx512BW.IsSupported) throw new PlatformNotSupportedException("AVX-512 kernels need AVX-512BW");
        ValidateRows(weights, columns, activations, tokens, rowStart, rowCount, dots);
        int rowBytes = columns / 4, blocks = columns / I2sLayout.BlockElements;
        unsafe
        {
            fixed (byte* w = weights)
            fixed (sbyte* a = activations)
            fixed (int* d = dots)
            {
                byte* w0 = w + (long)rowStart * rowBytes;
                int fullTokens = tokens & ~3;
                // Prefill: 4 rows × 4 tokens per tile; the rows' codes are unpacked once per block
                // and used by all four tokens.
                for (int rc = 0; rc < rowCount; rc += PrefillRowChunk)
                {
                    int rcEnd = Math.Min(rowCount, rc + PrefillRowChunk);
                    for (int t = 0; t < fullTokens; t += 4)
                    {
                        int r = rc;
                        for (; r + 4 <= rcEnd; r += 4)
                            Avx512Rows4Tokens4(w0 + (long)r * rowBytes, rowBytes, a + (long)t * columns, columns, blocks, d + t * rowCount + r, rowCount);
                        for (; r < rcEnd; r++)
                            for (int u = t; u < t + 4; u++)
                                d[u * rowCount + r] = Avx512Rows1(w0 + (long)r * rowBytes, a + (long)u * columns, blocks);
                    }
                }
                // Decode (and the prefill token tail): 4 rows share each activation load.
                for (int t = fullTokens; t < tokens; t++)
                {
                    sbyte* q = a + (long)t * columns;
                    int* dt = d + t * rowCount;
                    int r = 0;
                    for (; r + 4 <= rowCount; r += 4)
                        Avx512Rows4(w0 + (long)r * rowBytes, rowBytes, q, blocks, dt + r);
                    for (; r < rowCount; r++)
                        dt[r] = Avx512Rows1(w0 + (long)r * rowBytes, q, blocks);
                }
            }
        }
    }

    /// <summary>Per-16-bit-lane shift counts: 6 in the low half (group 0), 4 in the high half (group 1).</summary>
    private static Vector512<ushort> ShiftsGroups01 => Vector512.Create(Vector256.Create((ushort)6), Vector256.Create((ushort)4));
    /// <summary>2 in the low half (group 2), 0 in the high half (group 3).</summary>
    private static Vector512<ushort> ShiftsGroups23 => Vector512.Create(Vector256.Create((ushort)2), Vector256<ushort>.Zero);

    /// <summary>The block's codes as two 64-lane vectors aligned with q[0..63] and q[64..127].</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Avx512Codes(byte* block, Vector512<ushort> shift01, Vector512<ushort> shift23,
        Vector512<byte> mask3, out Vector512<byte> lo, out Vector512<byte> hi)
    {
        Debug.Assert(Avx512BW.IsSupported);
        // vbroadcastf64x4: the 32 bytes land in both 256-bit halves (the lane type is irrelevant to a move).
        Vector512<ushort> v = Avx512F.BroadcastVector256ToVector512((double*)block).AsUInt16();
        lo = Avx512BW.ShiftRightLogicalVariable(v, shift01).AsByte() & mask3;
        hi = Avx512BW.ShiftRightLogicalVariable(v, shift23).AsByte() & mask3;
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Avx512Mul(Vector512<byte> lo, Vector512<byte> hi, Vector512<sbyte> qlo, Vector512<sbyte> qhi) =>
        Avx512BW.MultiplyAddAdjacent(lo, qlo) + Avx512BW.MultiplyAddAdjacent(hi, qhi);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Avx512Widen(Vector512<int> acc, Vector512<short> sum16) =>
        acc + Avx512BW.MultiplyAddAdjacent(sum16, Vector512<short>.One);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int Avx512Rows1(byte* row, sbyte* q, int blocks)
    {
        var mask3 = Vector512.Create((byte)3);
        Vector512<ushort> sh01 = ShiftsGroups01, sh23 = ShiftsGroups23;
        Vector512<int> acc = default;
        for (int b0 = 0; b0 < blocks; b0 += Avx512ChunkBlocks)
        {
            int end = Math.Min(blocks, b0 + Avx512ChunkBlocks);
            Vector512<short> s = default;
            for (int b = b0; b < end; b++)
            {
                Avx512Codes(row + b * 32, sh01, sh23, mask3, out var lo, out var hi);
                s += Avx512Mul(lo, hi, Avx512BW.LoadVector512(q + b * 128), Avx512BW.LoadVector512(q + b * 128 + 64));
            }
            acc = Avx512Widen(acc, s);
        }
        return Vector512.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Avx512Rows4(byte* rows, int rowBytes, sbyte* q, int blocks, int* dst)
    {
        var mask3 = Vector512.Create((byte)3);
        Vector512<ushort> sh01 = ShiftsGroups01, sh23 = ShiftsGroups23;
        Vector512<int> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        for (int b0 = 0; b0 < blocks; b0 += Avx512ChunkBlocks)
        {
            int end = Math.Min(blocks, b0 + Avx512ChunkBlocks);
            Vector512<short> s0 = default, s1 = default, s2 = default, s3 = default;
            for (int b = b0; b < end; b++)
            {
                // The 4 rows are read as 4 short interleaved streams, which the hardware prefetcher does not
                // follow (measured: 5 GB/s from DRAM against 21 GB/s for a plain streaming read). So fetch the
                // tile two tiles ahead ourselves, 128 bytes per iteration: the rate this loop consumes them.
                byte* ahead = rows + 8 * rowBytes + b * 128;
                Sse.Prefetch0(ahead);
                Sse.Prefetch0(ahead + 64);
                Vector512<sbyte> qlo = Avx512BW.LoadVector512(q + b * 128), qhi = Avx512BW.LoadVector512(q + b * 128 + 64);
                byte* wb = rows + b * 32;
                Avx512Codes(wb, sh01, sh23, mask3, out var lo, out var hi);
                s0 += Avx512Mul(lo, hi, qlo, qhi);
                Avx512Codes(wb + rowBytes, sh01, sh23, mask3, out lo, out hi);
                s1 += Avx512Mul(lo, hi, qlo, qhi);
                Avx512Codes(wb + 2 * rowBytes, sh01, sh23, mask3, out lo, out hi);
                s2 += Avx512Mul(lo, hi, qlo, qhi);
                Avx512Codes(wb + 3 * rowBytes, sh01, sh23, mask3, out lo, out hi);
                s3 += Avx512Mul(lo, hi, qlo, qhi);
            }
            acc0 = Avx512Widen(acc0, s0); acc1 = Avx512Widen(acc1, s1);
            acc2 = Avx512Widen(acc2, s2); acc3 = Avx512Widen(acc3, s3);
        }
        dst[0] = Vector512.Sum(acc0); dst[1] = Vector512.Sum(acc1);
        dst[2] = Vector512.Sum(acc2); dst[3] = Vector512.Sum(acc3);
    }

    /// <summary>4 weight rows × 4 tokens. Results for token u, row i go to dst[u·stride + i].
    /// 16 int16 accumulators + 8 code vectors + 2 activation vectors fit the 32 zmm registers.</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Avx512Rows4Tokens4(byte* rows, int rowBytes, sbyte* q, int columns, int blocks, int* dst, int stride)
    {
        var mask3 = Vector512.Create((byte)3);
        Vector512<ushort> sh01 = ShiftsGroups01, sh23 = ShiftsGroups23;
        // int32 totals live in memory: widening happens once per 16 blocks, so this costs little
        // and leaves the registers to the int16 accumulators.
        Vector512<int>* acc = stackalloc Vector512<int>[16];
        for (int i = 0; i < 16; i++) acc[i] = default;
        for (int b0 = 0; b0 < blocks; b0 += Avx512ChunkBlocks)
        {
            int end = Math.Min(blocks, b0 + Avx512ChunkBlocks);
            Vector512<short> s00 = default, s01 = default, s02 = default, s03 = default;
            Vector512<short> s10 = default, s11 = default, s12 = default, s13 = default;
            Vector512<short> s20 = default, s21 = default, s22 = default, s23 = default;
            Vector512<short> s30 = default, s31 = default, s32 = default, s33 = default;
            for (int b = b0; b < end; b++)
            {
                byte* wb = rows + b * 32;
                Avx512Codes(wb, sh01, sh23, mask3, out var lo0, out var hi0);
                Avx512Codes(wb + rowBytes, sh01, sh23, mask3, out var lo1, out var hi1);
                Avx512Codes(wb + 2 * rowBytes, sh01, sh23, mask3, out var lo2, out var hi2);
                Avx512Codes(wb + 3 * rowBytes, sh01, sh23, mask3, out var lo3, out var hi3);
                sbyte* qb = q + b * 128;
                Vector512<sbyte> qlo = Avx512BW.LoadVector512(qb), qhi = Avx512BW.LoadVector512(qb + 64);
                s00 += Avx512Mul(lo0, hi0, qlo, qhi); s10 += Avx512Mul(lo1, hi1, qlo, qhi);
                s20 += Avx512Mul(lo2, hi2, qlo, qhi); s30 += Avx512Mul(lo3, hi3, qlo, qhi);
                qb += columns;
                qlo = Avx512BW.LoadVector512(qb); qhi = Avx512BW.LoadVector512(qb + 64);
                s01 += Avx512Mul(lo0, hi0, qlo, qhi); s11 += Avx512Mul(lo1, hi1, qlo, qhi);
                s21 += Avx512Mul(lo2, hi2, qlo, qhi); s31 += Avx512Mul(lo3, hi3, qlo, qhi);
                qb += columns;
                qlo = Avx512BW.LoadVector512(qb); qhi = Avx512BW.LoadVector512(qb + 64);
                s02 += Avx512Mul(lo0, hi0, qlo, qhi); s12 += Avx512Mul(lo1, hi1, qlo, qhi);
                s22 += Avx512Mul(lo2, hi2, qlo, qhi); s32 += Avx512Mul(lo3, hi3, qlo, qhi);
                qb += columns;
                qlo = Avx512BW.LoadVector512(qb); qhi = Avx512BW.LoadVector512(qb + 64);
                s03 += Avx512Mul(lo0, hi0, qlo, qhi); s13 += Avx512Mul(lo1, hi1, qlo, qhi);
                s23 += Avx512Mul(lo2, hi2, qlo, qhi); s33 += Avx512Mul(lo3, hi3, qlo, qhi);
            }
            // acc[row·4 + token]
            acc[0] = Avx512Widen(acc[0], s00); acc[1] = Avx512Widen(acc[1], s01); acc[2] = Avx512Widen(acc[2], s02); acc[3] = Avx512Widen(acc[3], s03);
            acc[4] = Avx512Widen(acc[4], s10); acc[5] = Avx512Widen(acc[5], s11); acc[6] = Avx512Widen(acc[6], s12); acc[7] = Avx512Widen(acc[7], s13);
            acc[8] = Avx512Widen(acc[8], s20); acc[9] = Avx512Widen(acc[9], s21); acc[10] = Avx512Widen(acc[10], s22); acc[11] = Avx512Widen(acc[11], s23);
            acc[12] = Avx512Widen(acc[12], s30); acc[13] = Avx512Widen(acc[13], s31); acc[14] = Avx512Widen(acc[14], s32); acc[15] = Avx512Widen(acc[15], s33);
        }
        for (int row = 0; row < 4; row++)
            for (int token = 0; token < 4; token++)
                dst[token * stride + row] = Vector512.Sum(acc[row * 4 + token]);
    }
}
