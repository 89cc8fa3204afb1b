using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using BitNet.Inference.Kernels.X64;

namespace BitNet.Inference.Kernels;

/// <summary>
/// AVX-512 VNNI I2_S kernels. vpdpbusd multiplies 64 unsigned codes with 64 int8 activations and adds
/// each group of four products straight into an int32 lane: one instruction per 64 MACs, where the
/// AVX-512BW kernels need a pmaddubsw, a vpaddw and, every 16 blocks, a widening pmaddwd. On Zen 4 that
/// moves the prefill limit from all four vector pipes to the two multiply pipes (measured on the same
/// 2 × 8 tile: ~155 against ~190 GMAC/s per core).
///
/// .NET 10 exposes vpdpbusd only as VEX (<c>AvxVnni</c>), which Zen 4 does not have, so the inner loops
/// are emitted as machine code (<see cref="X64Emitter"/>) at first use: a 2-row × 8-token prefill tile
/// and 4-row and 1-row single-token loops. The codes are unpacked exactly as <see cref="AffineCodes"/>
/// does, and each call ends by summing its accumulators across lanes. Being our own machine code, they
/// also run in a Native AOT binary built for x86-64-v3, where every Avx512 intrinsic is compiled out;
/// the C# around them (row chunks, token tiles) uses no vector type at all. Results are the same exact
/// integers as <see cref="DotScalar"/>.
///
/// Accumulator range: an int32 lane adds 4 products c·q (c ≤ 3, |q| ≤ 128) per block, at most
/// 3·128·n/16 over a row of n columns, far below 2^31 for any real width.
/// </summary>
public static partial class I2sKernels
{
    /// <summary>Whether the VNNI kernels can run here (<see cref="X64Cpu.HasAvx512VnniWithGfni"/>, and the
    /// code could be mapped).</summary>
    public static unsafe bool Avx512VnniIsSupported => VnniCode.Tile != null;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void DotRowsAvx512Vnni(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots)
    {
        if (!Avx512VnniIsSupported) throw new PlatformNotSupportedException("these kernels need AVX-512BW, AVX512-VNNI and GFNI on Linux x64");
        ValidateRows(weights, columns, activations, tokens, rowStart, rowCount, dots);
        int rowBytes = columns / 4, blocks = columns / I2sLayout.BlockElements;
        int fullTokens = tokens - tokens % TileTokens;
        var tile = VnniCode.Tile;
        var rows4 = VnniCode.Rows4;
        var rows1 = VnniCode.Rows1;
        // What one call leaves: its row × token dot products, at the lanes SumLane gives.
        int* sums = stackalloc int[16];
        fixed (byte* w = weights)
        fixed (sbyte* a = activations)
        fixed (int* d = dots)
        {
            byte* w0 = w + (long)rowStart * rowBytes;
            // Prefill: 2 rows × 8 tokens per call, a 64-row chunk at a time so the chunk's codes stay in
            // L2 while every 8-token group streams past them.
            for (int rc = 0; rc < rowCount; rc += PrefillRowChunk)
            {
                int rcEnd = Math.Min(rowCount, rc + PrefillRowChunk);
                for (int t = 0; t < fullTokens; t += TileTokens)
                {
                    int r = rc;
                    for (; r + TileRows <= rcEnd; r += TileRows)
                    {
                        tile(w0 + (long)r * rowBytes, rowBytes, a + (long)t * columns, columns, blocks, sums);
                        int* dst = d + t * rowCount + r;
                        for (int token = 0; token < TileTokens; token++)
                        {
                            dst[token * rowCount] = sums[TileLane(0, token)];
                            dst[token * rowCount + 1] = sums[TileLane(1, token)];
                        }
                    }
                    for (; r < rcEnd; r++)
                        for (int u = t; u < t + TileTokens; u++)
                        {
                            rows1(w0 + (long)r * rowBytes, rowBytes, a + (long)u * columns, blocks, sums);
                            d[u * rowCount + r] = sums[0];
                        }
                }
            }
            // Decode, and the last tokens of a prefill: 4 rows share each activation load, and several
            // tokens go through one 64-row chunk before the next, so its codes come from cache after the first.
            for (int rc = 0; rc < rowCount; rc += PrefillRowChunk)
            {
                int rcEnd = Math.Min(rowCount, rc + PrefillRowChunk);
                for (int t = fullTokens; t < tokens; t++)
                {
                    sbyte* q = a + (long)t * columns;
                    int* dt = d + t * rowCount;
                    int r = rc;
                    for (; r + 4 <= rcEnd; r += 4)
                    {
                        rows4(w0 + (long)r * rowBytes, rowBytes, q, blocks, sums);
                        dt[r] = sums[0]; dt[r + 1] = sums[4]; dt[r + 2] = sums[8]; dt[r + 3] = sums[12];   // SumLane(i, 4)
                    }
                    for (; r < rcEnd; r++)
                    {
                        rows1(w0 + (long)r * rowBytes, rowBytes, q, blocks, sums);
                        dt[r] = sums[0];
                    }
                }
            }
        }
    }

    /// <summary>The lane of the tile's sums holding row <paramref name="row"/>, token <paramref name="token"/>.</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static int TileLane(int row, int token) => SumLane(row * TileTokens + token, TileRows * TileTokens);

    /// <summary>
    /// The emitted functions, SysV calling convention (arguments in rdi, rsi, rdx, rcx, r8, r9). A class
    /// of its own so the code is emitted and mapped on first use of these kernels, and only on a CPU that
    /// can run it. Calls skip the GC transition: the loops neither allocate nor block, and run for
    /// microseconds.
    /// </summary>
    private static unsafe class VnniCode
    {
        /// <summary>(rows, rowBytes, q, columns, blocks, sums): 2 rows × 8 tokens; 16 dot products to sums.</summary>
        public static readonly delegate* unmanaged[SuppressGCTransition]<byte*, nint, sbyte*, nint, nint, int*, void> Tile;

        /// <summary>(rows, rowBytes, q, blocks, sums): 4 rows × 1 token, and 1 row × 1 token; the dot products to sums.</summary>
        public static readonly delegate* unmanaged[SuppressGCTransition]<byte*, nint, sbyte*, nint, int*, void> Rows4, Rows1;

        static VnniCode()
        {
            if (!X64Cpu.HasAvx512VnniWithGfni) return;
            byte[] code = EmitVnniKernels(out int tile, out int rows4, out int rows1);
            byte* start = (byte*)ExecutableCode.TryLoad(code);
            if (start == null) return;
            Rows4 = (delegate* unmanaged[SuppressGCTransition]<byte*, nint, sbyte*, nint, int*, void>)(start + rows4);
            Rows1 = (delegate* unmanaged[SuppressGCTransition]<byte*, nint, sbyte*, nint, int*, void>)(start + rows1);
            Tile = (delegate* unmanaged[SuppressGCTransition]<byte*, nint, sbyte*, nint, nint, int*, void>)(start + tile);
        }
    }

    /// <summary>The three kernels in one block of code, with their entry offsets, then the two affine
    /// matrices (see <see cref="AffineCodes"/>) as 64-byte constants.</summary>
    internal static byte[] EmitVnniKernels(out int tile, out int rows4, out int rows1)
    {
        var asm = new X64Emitter();
        int matrices01 = asm.NewLabel(), matrices23 = asm.NewLabel();
        int tileEntry = asm.NewLabel(), rows4Entry = asm.NewLabel(), rows1Entry = asm.NewLabel();
        asm.Bind(tileEntry);
        EmitTile(asm, matrices01, matrices23);
        asm.Align(16);
        asm.Bind(rows4Entry);
        EmitRows(asm, 4, matrices01, matrices23);
        asm.Align(16);
        asm.Bind(rows1Entry);
        EmitRows(asm, 1, matrices01, matrices23);

        AffineCodes.Constants(out var first, out var second);
        asm.Align(64);
        asm.Bind(matrices01);
        asm.Data(BytesOf(first));
        asm.Bind(matrices23);
        asm.Data(BytesOf(second));
        byte[] code = asm.ToArray();
        (tile, rows4, rows1) = (asm.OffsetOf(tileEntry), asm.OffsetOf(rows4Entry), asm.OffsetOf(rows1Entry));
        return code;
    }

    // Register plan shared by the kernels: totals in zmm0–15, a row's broadcast block in zmm16/17, its
    // unpacked codes in zmm18–21 (lo, hi per row), one token's 128 activations in zmm22/23 (q[0..63],
    // q[64..127]), the affine matrices in zmm30/31.
    private static readonly Zmm Matrices01 = new(30), Matrices23 = new(31), ActsLo = new(22), ActsHi = new(23);

    /// <summary>2 rows × 8 tokens over `blocks` blocks; each (row, token) dot to sums[TileLane(row, token)].</summary>
    private static void EmitTile(X64Emitter asm, int matrices01, int matrices23)
    {
        Gpr rows = Gpr.Rdi, rowBytes = Gpr.Rsi, q = Gpr.Rdx, columns = Gpr.Rcx, blocks = Gpr.R8, sums = Gpr.R9;
        Gpr row1 = Gpr.R10, token = Gpr.R11;
        Zmm Total(int row, int t) => new(row * TileTokens + t);
        Zmm block0 = new(16), block1 = new(17), lo0 = new(18), hi0 = new(19), lo1 = new(20), hi1 = new(21);
        int loop = asm.NewLabel();

        asm.Vmovdqu64(Matrices01, matrices01);
        asm.Vmovdqu64(Matrices23, matrices23);
        for (int i = 0; i < TileRows * TileTokens; i++) asm.Vpxord(new Zmm(i), new Zmm(i), new Zmm(i));
        asm.Mov(row1, rows);
        asm.Add(row1, rowBytes);

        asm.Bind(loop);                       // one 128-element block per iteration
        asm.Vbroadcasti64x4(block0, new Mem(rows));
        asm.Vbroadcasti64x4(block1, new Mem(row1));
        asm.Vgf2p8affineqb(lo0, block0, Matrices01, 0);
        asm.Vgf2p8affineqb(hi0, block0, Matrices23, 0);
        asm.Vgf2p8affineqb(lo1, block1, Matrices01, 0);
        asm.Vgf2p8affineqb(hi1, block1, Matrices23, 0);
        asm.Mov(token, q);
        for (int t = 0; t < TileTokens; t++)
        {
            asm.Vmovdqu64(ActsLo, new Mem(token));
            asm.Vmovdqu64(ActsHi, new Mem(token, 64));
            asm.Vpdpbusd(Total(0, t), lo0, ActsLo);
            asm.Vpdpbusd(Total(0, t), hi0, ActsHi);
            asm.Vpdpbusd(Total(1, t), lo1, ActsLo);
            asm.Vpdpbusd(Total(1, t), hi1, ActsHi);
            if (t < TileTokens - 1) asm.Add(token, columns);
        }
        asm.Add(rows, I2sLayout.BlockBytes);
        asm.Add(row1, I2sLayout.BlockBytes);
        asm.Add(q, I2sLayout.BlockElements);
        asm.Dec(blocks);
        asm.Jnz(loop);

        EmitSums(asm, TileRows * TileTokens, sums);
        asm.Vzeroupper();
        asm.Ret();
    }

    /// <summary>
    /// <paramref name="rowCount"/> rows (1 or 4) × 1 token; row i's dot to sums[SumLane(i, rowCount)]. The 4-row form
    /// prefetches the rows two tiles ahead, 128 bytes per block: its rows are 4 short interleaved streams,
    /// which the hardware prefetcher does not follow (the same measurement as <see cref="Avx512Rows4{TCodes}"/>).
    /// </summary>
    private static void EmitRows(X64Emitter asm, int rowCount, int matrices01, int matrices23)
    {
        Gpr rows = Gpr.Rdi, rowBytes = Gpr.Rsi, q = Gpr.Rdx, blocks = Gpr.Rcx, sums = Gpr.R8;
        Gpr[] row = [rows, Gpr.R9, Gpr.R10, Gpr.R11];
        Gpr ahead = Gpr.Rax;
        Zmm block = new(16), lo = new(18), hi = new(19);
        int loop = asm.NewLabel();

        asm.Vmovdqu64(Matrices01, matrices01);
        asm.Vmovdqu64(Matrices23, matrices23);
        for (int i = 0; i < rowCount; i++) asm.Vpxord(new Zmm(i), new Zmm(i), new Zmm(i));
        for (int i = 1; i < rowCount; i++)
        {
            asm.Mov(row[i], row[i - 1]);
            asm.Add(row[i], rowBytes);
        }
        bool prefetch = rowCount == 4;
        if (prefetch)
        {
            asm.Mov(ahead, row[3]);                       // row 3 + 5 rows = row 8: two 4-row tiles ahead
            for (int i = 0; i < 5; i++) asm.Add(ahead, rowBytes);
        }

        asm.Bind(loop);
        if (prefetch)
        {
            asm.Prefetcht0(new Mem(ahead));
            asm.Prefetcht0(new Mem(ahead, 64));
            asm.Add(ahead, 4 * I2sLayout.BlockBytes);
        }
        asm.Vmovdqu64(ActsLo, new Mem(q));
        asm.Vmovdqu64(ActsHi, new Mem(q, 64));
        for (int i = 0; i < rowCount; i++)
        {
            asm.Vbroadcasti64x4(block, new Mem(row[i]));
            asm.Vgf2p8affineqb(lo, block, Matrices01, 0);
            asm.Vgf2p8affineqb(hi, block, Matrices23, 0);
            asm.Vpdpbusd(new Zmm(i), lo, ActsLo);
            asm.Vpdpbusd(new Zmm(i), hi, ActsHi);
            asm.Add(row[i], I2sLayout.BlockBytes);
        }
        asm.Add(q, I2sLayout.BlockElements);
        asm.Dec(blocks);
        asm.Jnz(loop);

        EmitSums(asm, rowCount, sums);
        asm.Vzeroupper();
        asm.Ret();
    }

    /// <summary>
    /// Sums each of zmm0 … zmm(count−1) (count 1, 4 or 16) across its 16 lanes and stores the sums as
    /// one 16-int vector at [destination]; <see cref="SumLane"/> says where each lands. A transposing
    /// tree: 16 totals cost 45 shuffles and adds instead of ~9 instructions each, and the caller reads
    /// plain ints rather than reloading 64-byte stores in halves.
    ///   1. 512 → 256: pair (x, y) → [x.lanes0-1 + x.lanes2-3 | y.lanes0-1 + y.lanes2-3] (128-bit lanes).
    ///   2. 256 → 128: pair (x, y) → 128-bit lane j holds 4 partial sums of input j (of the 4 inputs).
    ///   3. count 16: unpack dwords, then qwords, with adds: lane 4j + k holds input 4k + j.
    ///      count ≤ 4: add the lane's dwords in place with two vpshufd: lane 4j holds input j.
    /// A single input is paired with itself.
    /// </summary>
    private static void EmitSums(X64Emitter asm, int count, Gpr destination)
    {
        Zmm a = new(24), b = new(25);
        List<Zmm> v = [.. Enumerable.Range(0, count).Select(i => new Zmm(i))];
        List<Zmm> Pairwise(List<Zmm> inputs, Action<Zmm, Zmm> combineInto)
        {
            List<Zmm> outputs = [];
            for (int i = 0; i < inputs.Count; i += 2)
            {
                Zmm x = inputs[i], y = i + 1 < inputs.Count ? inputs[i + 1] : x;
                combineInto(x, y);
                outputs.Add(x);
            }
            return outputs;
        }
        v = Pairwise(v, (x, y) => { asm.Vshufi64x2(a, x, y, 0x44); asm.Vshufi64x2(b, x, y, 0xEE); asm.Vpaddd(x, a, b); });
        v = Pairwise(v, (x, y) => { asm.Vshufi64x2(a, x, y, 0x88); asm.Vshufi64x2(b, x, y, 0xDD); asm.Vpaddd(x, a, b); });
        if (count == 16)
        {
            v = Pairwise(v, (x, y) => { asm.Vpunpckldq(a, x, y); asm.Vpunpckhdq(b, x, y); asm.Vpaddd(x, a, b); });
            v = Pairwise(v, (x, y) => { asm.Vpunpcklqdq(a, x, y); asm.Vpunpckhqdq(b, x, y); asm.Vpaddd(x, a, b); });
        }
        else
        {
            Zmm x = v.Single();
            asm.Vpshufd(a, x, 0x4E);      // swap the qwords of each 128-bit lane
            asm.Vpaddd(x, x, a);
            asm.Vpshufd(a, x, 0xB1);      // swap the dwords of each qword
            asm.Vpaddd(x, x, a);
        }
        asm.Vmovdqu64(new Mem(destination), v.Single());
    }

    /// <summary>Where <see cref="EmitSums"/> stores the sum of input <paramref name="input"/> of <paramref name="count"/>.</summary>
    internal static int SumLane(int input, int count) => count == 16 ? 4 * (input % 4) + input / 4 : 4 * input;

    private static byte[] BytesOf(Vector512<byte> v)
    {
        var bytes = new byte[64];
        v.CopyTo(bytes);
        return bytes;
    }
}
