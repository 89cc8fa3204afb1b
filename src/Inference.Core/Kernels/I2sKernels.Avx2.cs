using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BitNet.Inference.Kernels;

/// <summary>
/// AVX2 I2_S × int8 kernels (spec §8.2). One 32-byte block holds 128 codes: byte p carries
/// elements p, 32+p, 64+p, 96+p in bit pairs 7-6, 5-4, 3-2, 1-0. Shifting the 32 bytes right by
/// 6, 4, 2, 0 and masking with 3 gives four vectors of 32 codes that line up with the four
/// 32-byte slices of the block's activations, so pmaddubsw (unsigned code × signed int8 → int16
/// pair sums) needs no shuffles.
///
/// Accumulator range: a pmaddubsw lane is c0·q0 + c1·q1 with c ≤ 3 (2-bit field, the unused code
/// 3 included) and |q| ≤ 128, so |lane| ≤ 768; four of them per block give ≤ 3072 per int16 lane,
/// and <see cref="Avx2ChunkBlocks"/> = 8 blocks give ≤ 24576 &lt; 32767. After each chunk the
/// int16 lanes are widened with pmaddwd(·, 1) into int32, which cannot overflow for any real
/// width (|D| ≤ 3·128·columns). So D is exact, equal to DotScalar, even for code 3.
/// </summary>
internal static partial class I2sKernels
{
    private const int Avx2ChunkBlocks = 8;
    /// <summary>Rows per chunk for the tokens after the last 4-token tile (see DotRowsAvx2).</summary>
    private const int Avx2TailRowChunk = 64;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsAvx2(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots)
    {
        if (!Avx2.IsSupported) throw new PlatformNotSupportedException("AVX2 kernels need AVX2");
        ValidateRows(weights, columns, activations, tokens, rowStart, rowCount, dots);
        int rowBytes = columns / 4, blocks = columns / I2sLayout.BlockElements;
        unsafe
        {
            fixed (byte* w = weights)
            fixed (sbyte* a = activations)
            fixed (int* d = dots)
            {
                byte* w0 = w + (long)rowStart * rowBytes;
                int t = 0;
                // Prefill and batched steps: 4 tokens share each unpacked weight block, two rows each
                // activation load (Avx2Rows2Tokens4); an odd last row goes alone.
                for (; t + 4 <= tokens; t += 4)
                {
                    int r = 0;
                    for (; r + 2 <= rowCount; r += 2)
                        Avx2Rows2Tokens4(w0 + (long)r * rowBytes, rowBytes, a + (long)t * columns, columns, blocks, d + t * rowCount + r, rowCount);
                    for (; r < rowCount; r++)
                        Avx2Row1Tokens4(w0 + (long)r * rowBytes, a + (long)t * columns, columns, blocks, d + t * rowCount + r, rowCount);
                }
                // Decode (and the prefill token tail): 4 rows share each activation load. The tail
                // tokens go through one 64-row chunk before the next, so the chunk's codes are read
                // from memory once and from cache by the other tokens.
                for (int rc = 0; rc < rowCount; rc += Avx2TailRowChunk)
                {
                    int rcEnd = Math.Min(rowCount, rc + Avx2TailRowChunk);
                    for (int u = t; u < tokens; u++)
                    {
                        sbyte* q = a + (long)u * columns;
                        int* dt = d + u * rowCount;
                        int r = rc;
                        for (; r + 4 <= rcEnd; r += 4)
                            Avx2Rows4(w0 + (long)r * rowBytes, rowBytes, q, blocks, dt + r);
                        for (; r < rcEnd; r++)
                            dt[r] = Avx2Rows1(w0 + (long)r * rowBytes, q, blocks);
                    }
                }
            }
        }
    }

    /// <summary>The four code vectors of one block: (bytes >> 6) &amp; 3, (>> 4) &amp; 3, (>> 2) &amp; 3, &amp; 3.
    /// The 16-bit shifts pull bits across byte borders; the mask removes them.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void Avx2Codes(byte* block, Vector256<byte> mask3,
        out Vector256<byte> c0, out Vector256<byte> c1, out Vector256<byte> c2, out Vector256<byte> c3)
    {
        Debug.Assert(Avx2.IsSupported);
        Vector256<ushort> v = Avx.LoadVector256((ushort*)block);
        c0 = Avx2.ShiftRightLogical(v, 6).AsByte() & mask3;
        c1 = Avx2.ShiftRightLogical(v, 4).AsByte() & mask3;
        c2 = Avx2.ShiftRightLogical(v, 2).AsByte() & mask3;
        c3 = v.AsByte() & mask3;
    }

    /// <summary>Σ over one block of code × activation as int16 pair sums (pmaddubsw, 4 groups).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<short> Avx2BlockSum(
        Vector256<byte> c0, Vector256<byte> c1, Vector256<byte> c2, Vector256<byte> c3, sbyte* q)
    {
        Vector256<short> s = Avx2.MultiplyAddAdjacent(c0, Avx.LoadVector256(q));
        s += Avx2.MultiplyAddAdjacent(c1, Avx.LoadVector256(q + 32));
        s += Avx2.MultiplyAddAdjacent(c2, Avx.LoadVector256(q + 64));
        s += Avx2.MultiplyAddAdjacent(c3, Avx.LoadVector256(q + 96));
        return s;
    }

    /// <summary>int16 lanes → int32 lanes (pmaddwd with 1), added to <paramref name="acc"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector256<int> Avx2Widen(Vector256<int> acc, Vector256<short> sum16) =>
        acc + Avx2.MultiplyAddAdjacent(sum16, Vector256<short>.One);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int Avx2Rows1(byte* row, sbyte* q, int blocks)
    {
        var mask3 = Vector256.Create((byte)3);
        Vector256<int> acc = default;
        for (int b0 = 0; b0 < blocks; b0 += Avx2ChunkBlocks)
        {
            int end = Math.Min(blocks, b0 + Avx2ChunkBlocks);
            Vector256<short> s = default;
            for (int b = b0; b < end; b++)
            {
                Avx2Codes(row + b * 32, mask3, out var c0, out var c1, out var c2, out var c3);
                s += Avx2BlockSum(c0, c1, c2, c3, q + b * 128);
            }
            acc = Avx2Widen(acc, s);
        }
        return Vector256.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Avx2Rows4(byte* rows, int rowBytes, sbyte* q, int blocks, int* dst)
    {
        var mask3 = Vector256.Create((byte)3);
        Vector256<int> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        for (int b0 = 0; b0 < blocks; b0 += Avx2ChunkBlocks)
        {
            int end = Math.Min(blocks, b0 + Avx2ChunkBlocks);
            Vector256<short> s0 = default, s1 = default, s2 = default, s3 = default;
            for (int b = b0; b < end; b++)
            {
                // Prefetch two tiles ahead: the hardware prefetcher does not follow 4 short interleaved
                // row streams (see the AVX-512 kernel).
                byte* ahead = rows + 8 * rowBytes + b * 128;
                Sse.Prefetch0(ahead);
                Sse.Prefetch0(ahead + 64);
                sbyte* qb = q + b * 128;
                Vector256<sbyte> q0 = Avx.LoadVector256(qb), q1 = Avx.LoadVector256(qb + 32);
                Vector256<sbyte> q2 = Avx.LoadVector256(qb + 64), q3 = Avx.LoadVector256(qb + 96);
                byte* wb = rows + b * 32;
                s0 += Avx2Block(wb, mask3, q0, q1, q2, q3);
                s1 += Avx2Block(wb + rowBytes, mask3, q0, q1, q2, q3);
                s2 += Avx2Block(wb + 2 * rowBytes, mask3, q0, q1, q2, q3);
                s3 += Avx2Block(wb + 3 * rowBytes, mask3, q0, q1, q2, q3);
            }
            acc0 = Avx2Widen(acc0, s0); acc1 = Avx2Widen(acc1, s1);
            acc2 = Avx2Widen(acc2, s2); acc3 = Avx2Widen(acc3, s3);
        }
        dst[0] = Vector256.Sum(acc0); dst[1] = Vector256.Sum(acc1);
        dst[2] = Vector256.Sum(acc2); dst[3] = Vector256.Sum(acc3);
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe Vector256<short> Avx2Block(byte* block, Vector256<byte> mask3,
        Vector256<sbyte> q0, Vector256<sbyte> q1, Vector256<sbyte> q2, Vector256<sbyte> q3)
    {
        Avx2Codes(block, mask3, out var c0, out var c1, out var c2, out var c3);
        return Avx2.MultiplyAddAdjacent(c0, q0) + Avx2.MultiplyAddAdjacent(c1, q1)
             + Avx2.MultiplyAddAdjacent(c2, q2) + Avx2.MultiplyAddAdjacent(c3, q3);
    }

    /// <summary>
    /// Two weight rows against 4 tokens; row i's dot for token u goes to dst[i + u·stride]. The block's four
    /// slices are taken one after the other, each unpacked for both rows, so that every activation load feeds
    /// both rows: 18 loads per block for 8 row-token products instead of 34 (the 1-row loop is bound by
    /// its loads). Eight int16 sums, two rows' codes of one slice and the activation fit the 16 registers.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Avx2Rows2Tokens4(byte* rows, int rowBytes, sbyte* q, int columns, int blocks, int* dst, int stride)
    {
        var mask3 = Vector256.Create((byte)3);
        sbyte* q1 = q + columns, q2 = q1 + columns, q3 = q2 + columns;
        // Row i, token u's int32 sums at acc[4i + u]; they wait in memory between chunks: in registers they
        // would crowd out the loop's.
        Vector256<int>* acc = stackalloc Vector256<int>[8];
        new Span<Vector256<int>>(acc, 8).Clear();
        for (int b0 = 0; b0 < blocks; b0 += Avx2ChunkBlocks)
        {
            int end = Math.Min(blocks, b0 + Avx2ChunkBlocks);
            Vector256<short> s00 = default, s01 = default, s02 = default, s03 = default;
            Vector256<short> s10 = default, s11 = default, s12 = default, s13 = default;
            for (int b = b0; b < end; b++)
            {
                // Two interleaved row streams lose the hardware prefetcher's pace from memory: fetch the
                // pair four ahead.
                byte* ahead = rows + 8 * rowBytes + b * 32;
                Sse.Prefetch0(ahead);
                Sse.Prefetch0(ahead + rowBytes);
                Vector256<ushort> v0 = Avx.LoadVector256((ushort*)(rows + b * 32));
                Vector256<ushort> v1 = Avx.LoadVector256((ushort*)(rows + rowBytes + b * 32));
                int o = b * 128;
                // Slices at bits 7-6, 5-4, 3-2, 1-0 of each byte (see Avx2Codes), one after the other.
                Vector256<byte> c0, c1;
                Vector256<sbyte> x;
                c0 = Avx2.ShiftRightLogical(v0, 6).AsByte() & mask3; c1 = Avx2.ShiftRightLogical(v1, 6).AsByte() & mask3;
                x = Avx.LoadVector256(q + o); s00 += Avx2.MultiplyAddAdjacent(c0, x); s10 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q1 + o); s01 += Avx2.MultiplyAddAdjacent(c0, x); s11 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q2 + o); s02 += Avx2.MultiplyAddAdjacent(c0, x); s12 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q3 + o); s03 += Avx2.MultiplyAddAdjacent(c0, x); s13 += Avx2.MultiplyAddAdjacent(c1, x);
                c0 = Avx2.ShiftRightLogical(v0, 4).AsByte() & mask3; c1 = Avx2.ShiftRightLogical(v1, 4).AsByte() & mask3;
                x = Avx.LoadVector256(q + o + 32); s00 += Avx2.MultiplyAddAdjacent(c0, x); s10 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q1 + o + 32); s01 += Avx2.MultiplyAddAdjacent(c0, x); s11 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q2 + o + 32); s02 += Avx2.MultiplyAddAdjacent(c0, x); s12 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q3 + o + 32); s03 += Avx2.MultiplyAddAdjacent(c0, x); s13 += Avx2.MultiplyAddAdjacent(c1, x);
                c0 = Avx2.ShiftRightLogical(v0, 2).AsByte() & mask3; c1 = Avx2.ShiftRightLogical(v1, 2).AsByte() & mask3;
                x = Avx.LoadVector256(q + o + 64); s00 += Avx2.MultiplyAddAdjacent(c0, x); s10 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q1 + o + 64); s01 += Avx2.MultiplyAddAdjacent(c0, x); s11 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q2 + o + 64); s02 += Avx2.MultiplyAddAdjacent(c0, x); s12 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q3 + o + 64); s03 += Avx2.MultiplyAddAdjacent(c0, x); s13 += Avx2.MultiplyAddAdjacent(c1, x);
                c0 = v0.AsByte() & mask3; c1 = v1.AsByte() & mask3;
                x = Avx.LoadVector256(q + o + 96); s00 += Avx2.MultiplyAddAdjacent(c0, x); s10 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q1 + o + 96); s01 += Avx2.MultiplyAddAdjacent(c0, x); s11 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q2 + o + 96); s02 += Avx2.MultiplyAddAdjacent(c0, x); s12 += Avx2.MultiplyAddAdjacent(c1, x);
                x = Avx.LoadVector256(q3 + o + 96); s03 += Avx2.MultiplyAddAdjacent(c0, x); s13 += Avx2.MultiplyAddAdjacent(c1, x);
            }
            acc[0] = Avx2Widen(acc[0], s00); acc[1] = Avx2Widen(acc[1], s01); acc[2] = Avx2Widen(acc[2], s02); acc[3] = Avx2Widen(acc[3], s03);
            acc[4] = Avx2Widen(acc[4], s10); acc[5] = Avx2Widen(acc[5], s11); acc[6] = Avx2Widen(acc[6], s12); acc[7] = Avx2Widen(acc[7], s13);
        }
        for (int u = 0; u < 4; u++)
        {
            dst[u * stride] = Vector256.Sum(acc[u]);
            dst[u * stride + 1] = Vector256.Sum(acc[4 + u]);
        }
    }

    /// <summary>One weight row against 4 tokens; results go to dst[0], dst[stride], dst[2·stride], dst[3·stride].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Avx2Row1Tokens4(byte* row, sbyte* q, int columns, int blocks, int* dst, int stride)
    {
        var mask3 = Vector256.Create((byte)3);
        Vector256<int> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        for (int b0 = 0; b0 < blocks; b0 += Avx2ChunkBlocks)
        {
            int end = Math.Min(blocks, b0 + Avx2ChunkBlocks);
            Vector256<short> s0 = default, s1 = default, s2 = default, s3 = default;
            for (int b = b0; b < end; b++)
            {
                Avx2Codes(row + b * 32, mask3, out var c0, out var c1, out var c2, out var c3);
                sbyte* qb = q + b * 128;
                s0 += Avx2BlockSum(c0, c1, c2, c3, qb);
                s1 += Avx2BlockSum(c0, c1, c2, c3, qb + columns);
                s2 += Avx2BlockSum(c0, c1, c2, c3, qb + 2 * columns);
                s3 += Avx2BlockSum(c0, c1, c2, c3, qb + 3 * columns);
            }
            acc0 = Avx2Widen(acc0, s0); acc1 = Avx2Widen(acc1, s1);
            acc2 = Avx2Widen(acc2, s2); acc3 = Avx2Widen(acc3, s3);
        }
        dst[0] = Vector256.Sum(acc0); dst[stride] = Vector256.Sum(acc1);
        dst[2 * stride] = Vector256.Sum(acc2); dst[3 * stride] = Vector256.Sum(acc3);
    }
}
