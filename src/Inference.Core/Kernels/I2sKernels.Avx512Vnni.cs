using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using BitNet.Inference.Kernels.X64;

namespace BitNet.Inference.Kernels;

/// <summary>
/// AVX-512 VNNI prefill tile. vpdpbusd multiplies 64 unsigned codes with 64 int8 activations and adds
/// each group of four products straight into an int32 lane: one instruction per 64 MACs, where the
/// AVX-512BW tile needs a pmaddubsw, a vpaddw and, every 16 blocks, a widening pmaddwd. On Zen 4 that
/// is the difference between the multiply pipes and all four vector pipes being the limit (measured
/// on the same 2 × 8 tile shape: ~155 against ~190 GMAC/s per core).
///
/// .NET 10 exposes vpdpbusd only as VEX (<c>AvxVnni</c>), which Zen 4 does not have, so this one loop
/// is emitted as machine code (<see cref="X64Emitter"/>) at first use. Everything around it — the
/// loops over row chunks and token tiles, decode, tails, the horizontal sums — is the C# of the
/// AVX-512 GFNI kernels, and the results are the same exact integers as <see cref="DotScalar"/>.
///
/// Accumulator range: an int32 lane adds 4 products c·q (c ≤ 3, |q| ≤ 128) per block, so a row of
/// n columns reaches at most 3·128·n/16 in a lane, far below 2^31 for any real width.
/// </summary>
public static partial class I2sKernels
{
    /// <summary>
    /// The generated tile: (rows, rowBytes, q, columns, blocks, totals) with SysV arguments in
    /// rdi, rsi, rdx, rcx, r8, r9. Writes 16 int32 vectors to totals: index row·8 + token, each to be
    /// summed horizontally.
    /// </summary>
    /// <remarks>A class of its own so that the code is emitted and mapped on first use of this kernel,
    /// not whenever any I2_S kernel is touched, and only on a CPU that can run it. The call skips the
    /// GC transition: the tile neither allocates nor blocks, and runs for microseconds.</remarks>
    private static unsafe class VnniTileCode
    {
        public static readonly delegate* unmanaged[SuppressGCTransition]<byte*, nint, sbyte*, nint, nint, Vector512<int>*, void> Tile =
            (delegate* unmanaged[SuppressGCTransition]<byte*, nint, sbyte*, nint, nint, Vector512<int>*, void>)Load();

        private static void* Load() =>
            Avx512BW.IsSupported && Gfni.V512.IsSupported && CpuHasAvx512Vnni() && ExecutableCode.IsAvailable
                ? ExecutableCode.TryLoad(EmitVnniTile())
                : null;
    }

    /// <summary>Whether the CPU has AVX512-VNNI (CPUID leaf 7, ECX bit 11) with the AVX-512BW and GFNI
    /// the tile also uses (as the runtime reports them, so DOTNET_EnableAVX512F=0 turns it off), and the
    /// process could map the generated code.</summary>
    public static unsafe bool Avx512VnniIsSupported => VnniTileCode.Tile != null;

    private static bool CpuHasAvx512Vnni() => X86Base.IsSupported && (X86Base.CpuId(7, 0).Ecx & (1 << 11)) != 0;

    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    public static unsafe void DotRowsAvx512Vnni(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots)
    {
        if (!Avx512VnniIsSupported) throw new PlatformNotSupportedException("these kernels need AVX512-VNNI, AVX-512BW and GFNI on Linux x64");
        ValidateRows(weights, columns, activations, tokens, rowStart, rowCount, dots);
        int fullTokens = tokens - tokens % TileTokens;
        if (fullTokens > 0)
        {
            int rowBytes = columns / 4, blocks = columns / I2sLayout.BlockElements;
            var tile = VnniTileCode.Tile;
            Vector512<int>* totals = stackalloc Vector512<int>[TileRows * TileTokens];
            fixed (byte* w = weights)
            fixed (sbyte* a = activations)
            fixed (int* d = dots)
            {
                byte* w0 = w + (long)rowStart * rowBytes;
                for (int rc = 0; rc < rowCount; rc += PrefillRowChunk)
                {
                    int rcEnd = Math.Min(rowCount, rc + PrefillRowChunk);
                    for (int t = 0; t < fullTokens; t += TileTokens)
                    {
                        int r = rc;
                        for (; r + TileRows <= rcEnd; r += TileRows)
                        {
                            tile(w0 + (long)r * rowBytes, rowBytes, a + (long)t * columns, columns, blocks, totals);
                            int* dst = d + t * rowCount + r;
                            for (int token = 0; token < TileTokens; token++)
                            {
                                dst[token * rowCount] = Vector512.Sum(totals[token]);
                                dst[token * rowCount + 1] = Vector512.Sum(totals[TileTokens + token]);
                            }
                        }
                        for (; r < rcEnd; r++)
                            for (int u = t; u < t + TileTokens; u++)
                                d[u * rowCount + r] = Avx512Rows1<AffineCodes>(w0 + (long)r * rowBytes, a + (long)u * columns, blocks);
                    }
                }
            }
        }
        // Decode is memory-bound, where vpdpbusd measured no faster (25.2 against 24.5 GB/s on one
        // core), so decode and the last tokens of a prefill take the GFNI kernel.
        if (fullTokens < tokens)
            DotRowsAvx512<AffineCodes>(weights, columns, activations[(fullTokens * columns)..], tokens - fullTokens, rowStart, rowCount, dots[(fullTokens * rowCount)..]);
    }

    /// <summary>
    /// The 2-row × 8-token tile as machine code. Registers: zmm0–7 row 0's totals for tokens 0–7,
    /// zmm8–15 row 1's; zmm16/17 the two rows' 32-byte blocks in both halves; zmm18–21 their codes
    /// (row 0 lo, hi, row 1 lo, hi), unpacked by vgf2p8affineqb as in <see cref="AffineCodes"/>;
    /// zmm22/23 one token's 128 activations; zmm30/31 the affine matrices.
    /// </summary>
    internal static byte[] EmitVnniTile()
    {
        var asm = new X64Emitter();
        Gpr rows = Gpr.Rdi, rowBytes = Gpr.Rsi, q = Gpr.Rdx, columns = Gpr.Rcx, blocks = Gpr.R8, totals = Gpr.R9;
        Gpr row1 = Gpr.R10, token = Gpr.R11;
        Zmm Total(int row, int t) => new(row * TileTokens + t);
        Zmm block0 = new(16), block1 = new(17), lo0 = new(18), hi0 = new(19), lo1 = new(20), hi1 = new(21);
        Zmm qlo = new(22), qhi = new(23), matrices01 = new(30), matrices23 = new(31);
        int constants01 = asm.NewLabel(), constants23 = asm.NewLabel(), loop = asm.NewLabel();

        asm.Vmovdqu64(matrices01, constants01);
        asm.Vmovdqu64(matrices23, constants23);
        for (int i = 0; i < TileRows * TileTokens; i++) asm.Vpxord(new Zmm(i), new Zmm(i), new Zmm(i));
        asm.Mov(row1, rows);
        asm.Add(row1, rowBytes);

        asm.Bind(loop);                       // one 128-element block per iteration
        asm.Vbroadcasti64x4(block0, new Mem(rows));
        asm.Vbroadcasti64x4(block1, new Mem(row1));
        asm.Vgf2p8affineqb(lo0, block0, matrices01, 0);
        asm.Vgf2p8affineqb(hi0, block0, matrices23, 0);
        asm.Vgf2p8affineqb(lo1, block1, matrices01, 0);
        asm.Vgf2p8affineqb(hi1, block1, matrices23, 0);
        asm.Mov(token, q);
        for (int t = 0; t < TileTokens; t++)
        {
            asm.Vmovdqu64(qlo, new Mem(token));
            asm.Vmovdqu64(qhi, new Mem(token, 64));
            asm.Vpdpbusd(Total(0, t), lo0, qlo);
            asm.Vpdpbusd(Total(0, t), hi0, qhi);
            asm.Vpdpbusd(Total(1, t), lo1, qlo);
            asm.Vpdpbusd(Total(1, t), hi1, qhi);
            if (t < TileTokens - 1) asm.Add(token, columns);
        }
        asm.Add(rows, I2sLayout.BlockBytes);
        asm.Add(row1, I2sLayout.BlockBytes);
        asm.Add(q, I2sLayout.BlockElements);
        asm.Dec(blocks);
        asm.Jnz(loop);

        for (int i = 0; i < TileRows * TileTokens; i++) asm.Vmovdqu64(new Mem(totals, 64 * i), new Zmm(i));
        asm.Vzeroupper();
        asm.Ret();

        AffineCodes.Constants(out var first, out var second);
        asm.Align(64);
        asm.Bind(constants01);
        asm.Data(BytesOf(first));
        asm.Bind(constants23);
        asm.Data(BytesOf(second));
        return asm.ToArray();
    }

    private static byte[] BytesOf(Vector512<byte> v)
    {
        var bytes = new byte[64];
        v.CopyTo(bytes);
        return bytes;
    }
}
