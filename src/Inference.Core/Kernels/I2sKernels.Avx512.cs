using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace BitNet.Inference.Kernels;

/// <summary>
/// AVX-512BW I2_S × int8 kernels. A 32-byte block is broadcast into both halves of a 512-bit
/// register and its bit pairs are pulled out so that two 64-code vectors match the block's
/// activations in their natural order, q[0..63] and q[64..127]; activations load straight from the
/// quantized row with no repacking. Two ways to pull the pairs out (<see cref="IAvx512Codes"/>):
/// a per-16-bit-lane shift by (6 | 4) and (2 | 0) (vpsrlvw) then a mask with 3, or, where the CPU has
/// GFNI, one vgf2p8affineqb per vector, whose per-qword 8×8 bit matrix moves bits (s+1, s) of every
/// byte to bits (1, 0) and clears the rest. The kernels are generic over the two, so each is compiled
/// with its own decoder inlined and nothing is tested in the loops.
///
/// Accumulator range: a pmaddubsw lane is c0·q0 + c1·q1 with c ≤ 3 and |q| ≤ 128, so
/// |lane| ≤ 768; two per block give ≤ 1536 per int16 lane, and <see cref="Avx512ChunkBlocks"/>
/// = 16 blocks give ≤ 24576 &lt; 32767. Each chunk is then widened with pmaddwd(·, 1) into int32.
/// D is exact and equals DotScalar for every 2-bit code, 3 included.
///
/// .NET 10 exposes VNNI (vpdpbusd) only as the VEX AvxVnni class, which AVX-512-VNNI-only CPUs such
/// as AMD Zen 4 do not report; those CPUs take the emitted kernels of I2sKernels.Avx512Vnni.cs, and
/// these pmaddubsw kernels serve AVX-512 CPUs without VNNI (Skylake-SP) and `--kernel avx512/avx512gfni`.
/// </summary>
internal static partial class I2sKernels
{
    private const int Avx512ChunkBlocks = 16;

    /// <summary>Rows processed per weight-chunk in prefill: small enough for the chunk's codes to
    /// stay in L2 while every token block streams past them.</summary>
    private const int PrefillRowChunk = 64;

    /// <summary>Prefill tile: weight rows × tokens per call. 2 × 8 keeps 16 int16 accumulators, 4 code
    /// vectors and 2 activation vectors in the 32 zmm registers, and unpacks each block's codes once per
    /// 8 tokens (faster than 4 × 4, whose 4 code unpacks per 4 tokens cost more vector-ALU slots than
    /// the extra activation loads of 2 × 8).</summary>
    private const int TileRows = 2, TileTokens = 8;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsAvx512(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots)
    {
        if (!Avx512BW.IsSupported) throw new PlatformNotSupportedException("AVX-512 kernels need AVX-512BW");
        DotRowsAvx512<ShiftedCodes>(weights, columns, activations, tokens, rowStart, rowCount, dots);
    }

    /// <summary>The AVX-512 kernels with GFNI code unpacking (Intel Ice Lake and later, AMD Zen 4 and later).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static void DotRowsAvx512Gfni(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots)
    {
        if (!Avx512BW.IsSupported || !Gfni.V512.IsSupported) throw new PlatformNotSupportedException("these kernels need AVX-512BW and GFNI");
        DotRowsAvx512<AffineCodes>(weights, columns, activations, tokens, rowStart, rowCount, dots);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static void DotRowsAvx512<TCodes>(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots) where TCodes : struct, IAvx512Codes
    {
        ValidateRows(weights, columns, activations, tokens, rowStart, rowCount, dots);
        int rowBytes = columns / 4, blocks = columns / I2sLayout.BlockElements;
        unsafe
        {
            fixed (byte* w = weights)
            fixed (sbyte* a = activations)
            fixed (int* d = dots)
            {
                byte* w0 = w + (long)rowStart * rowBytes;
                int fullTokens = tokens - tokens % TileTokens;
                // Prefill: 2 rows × 8 tokens per tile; the rows' codes are unpacked once per block
                // and used by all eight tokens.
                for (int rc = 0; rc < rowCount; rc += PrefillRowChunk)
                {
                    int rcEnd = Math.Min(rowCount, rc + PrefillRowChunk);
                    for (int t = 0; t < fullTokens; t += TileTokens)
                    {
                        int r = rc;
                        for (; r + TileRows <= rcEnd; r += TileRows)
                            Avx512Rows2Tokens8<TCodes>(w0 + (long)r * rowBytes, rowBytes, a + (long)t * columns, columns, blocks, d + t * rowCount + r, rowCount);
                        for (; r < rcEnd; r++)
                            for (int u = t; u < t + TileTokens; u++)
                                d[u * rowCount + r] = Avx512Rows1<TCodes>(w0 + (long)r * rowBytes, a + (long)u * columns, blocks);
                    }
                }
                // Decode, and the last tokens of a prefill (or a short prompt): 4 rows share each
                // activation load. Several tokens go through one 64-row chunk before the next, so
                // the chunk's codes are read from memory once and from cache by the other tokens.
                for (int rc = 0; rc < rowCount; rc += PrefillRowChunk)
                {
                    int rcEnd = Math.Min(rowCount, rc + PrefillRowChunk);
                    for (int t = fullTokens; t < tokens; t++)
                    {
                        sbyte* q = a + (long)t * columns;
                        int* dt = d + t * rowCount;
                        int r = rc;
                        for (; r + 4 <= rcEnd; r += 4)
                            Avx512Rows4<TCodes>(w0 + (long)r * rowBytes, rowBytes, q, blocks, dt + r);
                        for (; r < rcEnd; r++)
                            dt[r] = Avx512Rows1<TCodes>(w0 + (long)r * rowBytes, q, blocks);
                    }
                }
            }
        }
    }

    /// <summary>How a 32-byte block becomes two 64-lane code vectors aligned with q[0..63] and q[64..127].
    /// The two constant operands are built once per kernel call by <c>Constants</c> and passed in:
    /// the JIT does not fold a 512-bit constant assembled from two halves, so built inside the loop
    /// it would cost several instructions per block.</summary>
    private unsafe interface IAvx512Codes
    {
        static abstract void Constants(out Vector512<byte> first, out Vector512<byte> second);
        static abstract void Unpack(byte* block, Vector512<byte> first, Vector512<byte> second, out Vector512<byte> lo, out Vector512<byte> hi);
    }

    /// <summary>vpsrlvw per 16-bit lane, then a mask with 3: group 0 | group 1 from shifts 6 | 4, group 2 | group 3 from 2 | 0.</summary>
    private readonly unsafe struct ShiftedCodes : IAvx512Codes
    {
        public static void Constants(out Vector512<byte> first, out Vector512<byte> second)
        {
            first = Vector512.Create(Vector256.Create((ushort)6), Vector256.Create((ushort)4)).AsByte();
            second = Vector512.Create(Vector256.Create((ushort)2), Vector256<ushort>.Zero).AsByte();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* block, Vector512<byte> shifts01, Vector512<byte> shifts23, out Vector512<byte> lo, out Vector512<byte> hi)
        {
            // vbroadcasti64x4: the 32 bytes land in both 256-bit halves.
            Vector512<ushort> v = Avx512F.BroadcastVector256ToVector512((ulong*)block).AsUInt16();
            Vector512<byte> mask3 = Vector512.Create((byte)3);
            lo = Avx512BW.ShiftRightLogicalVariable(v, shifts01.AsUInt16()).AsByte() & mask3;
            hi = Avx512BW.ShiftRightLogicalVariable(v, shifts23.AsUInt16()).AsByte() & mask3;
        }
    }

    /// <summary>
    /// vgf2p8affineqb: output bit i of each byte is the parity of (matrix byte 7 − i) AND (input byte),
    /// so a matrix whose byte 7 is 1 &lt;&lt; s and byte 6 is 2 &lt;&lt; s yields (b &gt;&gt; s) &amp; 3 in one instruction.
    /// The matrix is per qword, so the low half of the register takes shift 6 (or 2), the high half 4 (or 0).
    /// </summary>
    private readonly unsafe struct AffineCodes : IAvx512Codes
    {
        private static ulong PairAt(int shift) => ((ulong)(1u << shift) << 56) | ((ulong)(2u << shift) << 48);

        public static void Constants(out Vector512<byte> first, out Vector512<byte> second)
        {
            first = Vector512.Create(Vector256.Create(PairAt(6)), Vector256.Create(PairAt(4))).AsByte();
            second = Vector512.Create(Vector256.Create(PairAt(2)), Vector256.Create(PairAt(0))).AsByte();
        }

        [MethodImpl(MethodImplOptions.AggressiveInlining)]
        public static void Unpack(byte* block, Vector512<byte> matrices01, Vector512<byte> matrices23, out Vector512<byte> lo, out Vector512<byte> hi)
        {
            Vector512<byte> v = Avx512F.BroadcastVector256ToVector512((ulong*)block).AsByte();
            lo = Gfni.V512.GaloisFieldAffineTransform(v, matrices01, 0);
            hi = Gfni.V512.GaloisFieldAffineTransform(v, matrices23, 0);
        }
    }

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<short> Avx512Mul(Vector512<byte> lo, Vector512<byte> hi, Vector512<sbyte> qlo, Vector512<sbyte> qhi) =>
        Avx512BW.MultiplyAddAdjacent(lo, qlo) + Avx512BW.MultiplyAddAdjacent(hi, qhi);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static Vector512<int> Avx512Widen(Vector512<int> acc, Vector512<short> sum16) =>
        acc + Avx512BW.MultiplyAddAdjacent(sum16, Vector512<short>.One);

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe int Avx512Rows1<TCodes>(byte* row, sbyte* q, int blocks) where TCodes : struct, IAvx512Codes
    {
        TCodes.Constants(out var c1, out var c2);
        Vector512<int> acc = default;
        for (int b0 = 0; b0 < blocks; b0 += Avx512ChunkBlocks)
        {
            int end = Math.Min(blocks, b0 + Avx512ChunkBlocks);
            Vector512<short> s = default;
            for (int b = b0; b < end; b++)
            {
                TCodes.Unpack(row + b * 32, c1, c2, out var lo, out var hi);
                s += Avx512Mul(lo, hi, Avx512BW.LoadVector512(q + b * 128), Avx512BW.LoadVector512(q + b * 128 + 64));
            }
            acc = Avx512Widen(acc, s);
        }
        return Vector512.Sum(acc);
    }

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    private static unsafe void Avx512Rows4<TCodes>(byte* rows, int rowBytes, sbyte* q, int blocks, int* dst) where TCodes : struct, IAvx512Codes
    {
        TCodes.Constants(out var c1, out var c2);
        Vector512<int> acc0 = default, acc1 = default, acc2 = default, acc3 = default;
        for (int b0 = 0; b0 < blocks; b0 += Avx512ChunkBlocks)
        {
            int end = Math.Min(blocks, b0 + Avx512ChunkBlocks);
            Vector512<short> s0 = default, s1 = default, s2 = default, s3 = default;
            for (int b = b0; b < end; b++)
            {
                // The 4 rows are read as 4 short interleaved streams, which the hardware prefetcher does not
                // follow. So fetch the tile two tiles ahead ourselves, 128 bytes per iteration: the rate
                // this loop consumes them.
                byte* ahead = rows + 8 * rowBytes + b * 128;
                Sse.Prefetch0(ahead);
                Sse.Prefetch0(ahead + 64);
                Vector512<sbyte> qlo = Avx512BW.LoadVector512(q + b * 128), qhi = Avx512BW.LoadVector512(q + b * 128 + 64);
                byte* wb = rows + b * 32;
                TCodes.Unpack(wb, c1, c2, out var lo, out var hi);
                s0 += Avx512Mul(lo, hi, qlo, qhi);
                TCodes.Unpack(wb + rowBytes, c1, c2, out lo, out hi);
                s1 += Avx512Mul(lo, hi, qlo, qhi);
                TCodes.Unpack(wb + 2 * rowBytes, c1, c2, out lo, out hi);
                s2 += Avx512Mul(lo, hi, qlo, qhi);
                TCodes.Unpack(wb + 3 * rowBytes, c1, c2, out lo, out hi);
                s3 += Avx512Mul(lo, hi, qlo, qhi);
            }
            acc0 = Avx512Widen(acc0, s0); acc1 = Avx512Widen(acc1, s1);
            acc2 = Avx512Widen(acc2, s2); acc3 = Avx512Widen(acc3, s3);
        }
        dst[0] = Vector512.Sum(acc0); dst[1] = Vector512.Sum(acc1);
        dst[2] = Vector512.Sum(acc2); dst[3] = Vector512.Sum(acc3);
    }

    /// <summary>2 weight rows × 8 tokens. Results for token u, row i go to dst[u·stride + i].</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    [SkipLocalsInit]
    private static unsafe void Avx512Rows2Tokens8<TCodes>(byte* rows, int rowBytes, sbyte* q, int columns, int blocks, int* dst, int stride)
        where TCodes : struct, IAvx512Codes
    {
        // int32 totals live in memory: widening happens once per 16 blocks, so this costs little
        // and leaves the registers to the int16 accumulators. acc[row·8 + token].
        TCodes.Constants(out var c1, out var c2);
        Vector512<int>* acc = stackalloc Vector512<int>[TileRows * TileTokens];
        for (int i = 0; i < TileRows * TileTokens; i++) acc[i] = default;
        for (int b0 = 0; b0 < blocks; b0 += Avx512ChunkBlocks)
        {
            int end = Math.Min(blocks, b0 + Avx512ChunkBlocks);
            Vector512<short> s00 = default, s01 = default, s02 = default, s03 = default, s04 = default, s05 = default, s06 = default, s07 = default;
            Vector512<short> s10 = default, s11 = default, s12 = default, s13 = default, s14 = default, s15 = default, s16 = default, s17 = default;
            for (int b = b0; b < end; b++)
            {
                byte* wb = rows + b * 32;
                TCodes.Unpack(wb, c1, c2, out var lo0, out var hi0);
                TCodes.Unpack(wb + rowBytes, c1, c2, out var lo1, out var hi1);
                sbyte* qb = q + b * 128;
                Vector512<sbyte> ql = Avx512BW.LoadVector512(qb), qh = Avx512BW.LoadVector512(qb + 64);
                s00 += Avx512Mul(lo0, hi0, ql, qh); s10 += Avx512Mul(lo1, hi1, ql, qh); qb += columns;
                ql = Avx512BW.LoadVector512(qb); qh = Avx512BW.LoadVector512(qb + 64);
                s01 += Avx512Mul(lo0, hi0, ql, qh); s11 += Avx512Mul(lo1, hi1, ql, qh); qb += columns;
                ql = Avx512BW.LoadVector512(qb); qh = Avx512BW.LoadVector512(qb + 64);
                s02 += Avx512Mul(lo0, hi0, ql, qh); s12 += Avx512Mul(lo1, hi1, ql, qh); qb += columns;
                ql = Avx512BW.LoadVector512(qb); qh = Avx512BW.LoadVector512(qb + 64);
                s03 += Avx512Mul(lo0, hi0, ql, qh); s13 += Avx512Mul(lo1, hi1, ql, qh); qb += columns;
                ql = Avx512BW.LoadVector512(qb); qh = Avx512BW.LoadVector512(qb + 64);
                s04 += Avx512Mul(lo0, hi0, ql, qh); s14 += Avx512Mul(lo1, hi1, ql, qh); qb += columns;
                ql = Avx512BW.LoadVector512(qb); qh = Avx512BW.LoadVector512(qb + 64);
                s05 += Avx512Mul(lo0, hi0, ql, qh); s15 += Avx512Mul(lo1, hi1, ql, qh); qb += columns;
                ql = Avx512BW.LoadVector512(qb); qh = Avx512BW.LoadVector512(qb + 64);
                s06 += Avx512Mul(lo0, hi0, ql, qh); s16 += Avx512Mul(lo1, hi1, ql, qh); qb += columns;
                ql = Avx512BW.LoadVector512(qb); qh = Avx512BW.LoadVector512(qb + 64);
                s07 += Avx512Mul(lo0, hi0, ql, qh); s17 += Avx512Mul(lo1, hi1, ql, qh);
            }
            acc[0] = Avx512Widen(acc[0], s00); acc[1] = Avx512Widen(acc[1], s01); acc[2] = Avx512Widen(acc[2], s02); acc[3] = Avx512Widen(acc[3], s03);
            acc[4] = Avx512Widen(acc[4], s04); acc[5] = Avx512Widen(acc[5], s05); acc[6] = Avx512Widen(acc[6], s06); acc[7] = Avx512Widen(acc[7], s07);
            acc[8] = Avx512Widen(acc[8], s10); acc[9] = Avx512Widen(acc[9], s11); acc[10] = Avx512Widen(acc[10], s12); acc[11] = Avx512Widen(acc[11], s13);
            acc[12] = Avx512Widen(acc[12], s14); acc[13] = Avx512Widen(acc[13], s15); acc[14] = Avx512Widen(acc[14], s16); acc[15] = Avx512Widen(acc[15], s17);
        }
        for (int token = 0; token < TileTokens; token++)
        {
            dst[token * stride] = Vector512.Sum(acc[token]);
            dst[token * stride + 1] = Vector512.Sum(acc[TileTokens + token]);
        }
    }
}
