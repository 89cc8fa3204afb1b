using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using BitNet.Inference.Kernels.X64;

namespace BitNet.Inference.Kernels;

/// <summary>
/// AVX-512 VNNI I2_S kernels. vpdpbusd multiplies 64 unsigned codes with 64 int8 activations and adds
/// each group of four products straight into an int32 lane: one instruction per 64 MACs, where the
/// AVX-512BW kernels need a pmaddubsw, a vpaddw and, every 16 blocks, a widening pmaddwd. On Zen 4 that
/// moves the prefill limit from all four vector pipes to the two multiply pipes (docs/kernels.md).
///
/// .NET 10 exposes vpdpbusd only as VEX (<c>AvxVnni</c>), which Zen 4 does not have, so the inner loops
/// are emitted as machine code (<see cref="X64Emitter"/>) at first use: a 4-row × 4-token loop for
/// several tokens (prefill and batched decode steps), and 4-row and 1-row single-token loops. The codes
/// are unpacked as <see cref="AffineCodes"/> does where the CPU has GFNI, else (Intel Cascade Lake has
/// VNNI but no GFNI; and Zen 5, see <see cref="VnniKernels.Best"/>) as <see cref="ShiftedCodes"/> does,
/// and each call ends by summing its accumulators across lanes. Being our own machine code, they
/// also run in a Native AOT binary built for x86-64-v3, where every Avx512 intrinsic is compiled out;
/// the C# around them (row chunks, token groups) uses no vector type at all. Results are the same exact
/// integers as <see cref="DotScalar"/>.
///
/// Accumulator range: an int32 lane adds 4 products c·q (c ≤ 3, |q| ≤ 128) per block, at most
/// 3·128·n/16 over a row of n columns, far below 2^31 for any real width.
/// </summary>
internal static partial class I2sKernels
{
    /// <summary>Whether the VNNI kernels can run here (<see cref="X64Cpu.HasAvx512Vnni"/>, and the code
    /// could be mapped).</summary>
    public static bool Avx512VnniIsSupported => VnniKernels.Best is not null;

    /// <summary>How the VNNI kernels in use unpack the codes: "gfni" or "shift" (null when unsupported).</summary>
    public static string? Avx512VnniUnpack => VnniKernels.Best?.Unpack;

    public static void DotRowsAvx512Vnni(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots) =>
        DotRowsAvx512Vnni(VnniKernels.Best ?? throw new PlatformNotSupportedException("these kernels need AVX-512BW and AVX512-VNNI on Linux x64"),
            weights, columns, activations, tokens, rowStart, rowCount, dots);

    /// <summary>
    /// <see cref="DotRowsAvx512Vnni(ReadOnlySpan{byte}, int, ReadOnlySpan{sbyte}, int, int, int, Span{int})"/> for
    /// codes in <see cref="I2sCodeOrder.FourRowBlocks"/> order; <paramref name="weights"/> holds the whole matrix
    /// from row 0 (its groups of 4 rows are counted from there).
    /// </summary>
    public static void DotRowsAvx512VnniFourRowBlocks(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots) =>
        DotRowsAvx512Vnni(VnniKernels.BestForFourRowBlocks ?? throw new PlatformNotSupportedException("these kernels need AVX-512BW and AVX512-VNNI on Linux x64"),
            weights, columns, activations, tokens, rowStart, rowCount, dots);

    /// <summary>The kernels with one particular unpacking and code order (tests run each where the CPU can).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]
    internal static unsafe void DotRowsAvx512Vnni(VnniKernels code,
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots)
    {
        ValidateRows(weights, columns, activations, tokens, rowStart, rowCount, dots);
        int rowBytes = columns / 4, blocks = columns / I2sLayout.BlockElements, end = rowStart + rowCount;
        bool fourRowBlocks = code.Order == I2sCodeOrder.FourRowBlocks;
        // Rows in interleaved groups (FourRowBlocks: the matrix's whole groups; row order: none).
        int groupedRows = fourRowBlocks ? weights.Length / rowBytes / 4 * 4 : 0;
        // The 4-row groups this range takes whole, rows [first, first + 4·groups); the rows around them go one by one.
        int first = rowStart, groups = rowCount / 4;
        if (fourRowBlocks)
        {
            first = Math.Min((rowStart + 3) & ~3, end);
            groups = Math.Max(0, Math.Min(end, groupedRows) / 4 - first / 4);
        }
        int afterGroups = first + 4 * groups;
        var rows4 = code.Rows4;
        var row1 = code.Row1;
        // Where the 1-row kernel leaves its dot (in lane 0).
        int* sums = stackalloc int[16];
        fixed (byte* w = weights)
        fixed (sbyte* a = activations)
        fixed (int* d = dots)
        {
            byte* wg = w + (long)first * rowBytes;
            var singles = new SingleRows(row1, w, columns, groupedRows, a, d, rowStart, rowCount, sums);
            // Several tokens (prefill, or a decode step of several sequences): 4 rows × 4 tokens at a time,
            // each block unpacked once for the four. Two or three tokens left over fill the empty slots
            // with the first of them again (their dots are dropped), which costs less than unpacking the
            // codes once per token.
            int t0 = 0, groupTokens = tokens / 4 * 4;
            if (tokens - groupTokens >= 2) groupTokens += 4;
            if (groupTokens > 0)
            {
                int* staged = stackalloc int[Tokens4Chunk * 16];
                Tokens4Args targs = default;
                targs.RowBytes = rowBytes;
                targs.Blocks = blocks;
                // A chunk of rows for every token group in turn: its codes come from cache after the first.
                for (int g0 = 0; g0 < groups; g0 += Tokens4Chunk)
                {
                    int chunk = Math.Min(Tokens4Chunk, groups - g0);
                    for (int u0 = t0; u0 < t0 + groupTokens; u0 += 4)
                    {
                        int count = Math.Min(4, tokens - u0);
                        sbyte** q = &targs.Q0;
                        for (int u = 0; u < 4; u++) q[u] = a + (long)(u0 + Math.Min(u, count - 1)) * columns;
                        targs.Rows = wg + (long)4 * g0 * rowBytes;
                        targs.Staged = staged;
                        targs.Groups = chunk;
                        code.Tokens4(&targs);
                        // Group g's 16 dots: token u's four rows in staged[16g + 4u … 16g + 4u + 3].
                        for (int u = 0; u < count; u++)
                        {
                            int* dt = d + (u0 + u) * rowCount + (first - rowStart) + 4 * g0;
                            for (int g = 0; g < chunk; g++)
                                for (int r = 0; r < 4; r++)
                                    dt[4 * g + r] = staged[16 * g + 4 * u + r];
                        }
                    }
                }
                int t1 = Math.Min(tokens, t0 + groupTokens);
                singles.Run(rowStart, first, t0, t1);
                singles.Run(afterGroups, end, t0, t1);
                t0 = t1;
            }
            // The last token, if one is left: 4 rows share each activation load, the whole range in one call.
            for (int t = t0; t < tokens; t++)
            {
                if (groups > 0) rows4(wg, rowBytes, a + (long)t * columns, blocks, d + t * rowCount + (first - rowStart), groups);
                singles.Run(rowStart, first, t, t + 1);
                singles.Run(afterGroups, end, t, t + 1);
            }
        }
    }

    /// <summary>The dots of rows outside a range's 4-row groups, one row and token per call of the 1-row kernel:
    /// rows below <c>groupedRows</c> sit in a <see cref="I2sCodeOrder.FourRowBlocks"/> group (blocks 128 bytes
    /// apart), the others in row order.</summary>
    private readonly unsafe struct SingleRows(delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, nint, int*, nint, void> row1,
        byte* weights, int columns, int groupedRows, sbyte* activations, int* dots, int rowStart, int rowCount, int* sums)
    {
        /// <summary>Rows [from, to) for tokens [t0, t1).</summary>
        public void Run(int from, int to, int t0, int t1)
        {
            int rowBytes = columns / 4, blocks = columns / I2sLayout.BlockElements;
            for (int r = from; r < to; r++)
            {
                bool grouped = r < groupedRows;
                byte* row = weights + (long)(grouped ? r & ~3 : r) * rowBytes + (grouped ? (r & 3) * I2sLayout.BlockBytes : 0);
                nint stride = grouped ? 4 * I2sLayout.BlockBytes : I2sLayout.BlockBytes;
                for (int u = t0; u < t1; u++)
                {
                    row1(row, activations + (long)u * columns, blocks, sums, stride);
                    dots[u * rowCount + r - rowStart] = sums[0];
                }
            }
        }
    }

    /// <summary>4-row groups per call of the 4-token kernel (its staged dots: 4 KB on the stack): 256 rows,
    /// 160 KB of codes at 2560 columns, which stay in L2 while every token group goes through them.</summary>
    private const int Tokens4Chunk = 64;


    /// <summary>
    /// One mapped copy of the emitted functions, SysV calling convention (arguments in rdi, rsi, rdx, rcx,
    /// r8, r9). Built on first use, and only on a CPU that can run it. Calls skip the GC transition: the
    /// loops neither allocate nor block, and the longest call (a whole 6912-column matrix share in
    /// decode) streams a few MB, a fraction of a millisecond, which is all a garbage collection could
    /// have to wait for this thread.
    /// </summary>
    internal sealed unsafe class VnniKernels
    {
        /// <summary>(rows, rowBytes, q, blocks, dots, groups): groups of 4 rows × 1 token, dots stored in row order.</summary>
        public readonly delegate* unmanaged[SuppressGCTransition]<byte*, nint, sbyte*, nint, int*, nint, void> Rows4;

        /// <summary>(row, q, blocks, sums, blockStride): 1 row × 1 token, the dot to sums[0]; the row's blocks lie
        /// blockStride bytes apart (32 in row order, 128 inside a group of <see cref="I2sCodeOrder.FourRowBlocks"/>).</summary>
        public readonly delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, nint, int*, nint, void> Row1;

        /// <summary>(args): groups of 4 rows × 4 tokens, see <see cref="Tokens4Args"/>.</summary>
        public readonly delegate* unmanaged[SuppressGCTransition]<Tokens4Args*, void> Tokens4;

        /// <summary>"gfni" or "shift".</summary>
        public string Unpack { get; }

        /// <summary>The code order the 4-row kernels read (<see cref="I2sCodeOrder"/>).</summary>
        public I2sCodeOrder Order { get; }

        private static readonly Lazy<VnniKernels?> GfniKernels = new(() => X64Cpu.HasAvx512Vnni && X64Cpu.HasGfni ? Map(gfni: true, I2sCodeOrder.Rows) : null);
        private static readonly Lazy<VnniKernels?> ShiftKernels = new(() => X64Cpu.HasAvx512Vnni ? Map(gfni: false, I2sCodeOrder.Rows) : null);
        private static readonly Lazy<VnniKernels?> GfniBlockKernels = new(() => X64Cpu.HasAvx512Vnni && X64Cpu.HasGfni ? Map(gfni: true, I2sCodeOrder.FourRowBlocks) : null);
        private static readonly Lazy<VnniKernels?> ShiftBlockKernels = new(() => X64Cpu.HasAvx512Vnni ? Map(gfni: false, I2sCodeOrder.FourRowBlocks) : null);

        /// <summary>The GFNI kernels where the CPU has GFNI, else the shift kernels; null without VNNI. Zen 5 takes
        /// the shift kernels: its vgf2p8affineqb competes with vpdpbusd for the same pipes, its shifts do not.</summary>
        public static VnniKernels? Best => Preferred(I2sCodeOrder.Rows);

        /// <summary><see cref="Best"/> for codes in <see cref="I2sCodeOrder.FourRowBlocks"/> order.</summary>
        public static VnniKernels? BestForFourRowBlocks => Preferred(I2sCodeOrder.FourRowBlocks);

        private static VnniKernels? Preferred(I2sCodeOrder order) =>
            (X64Cpu.IsAmdZen5OrLater ? null : WithUnpack(gfni: true, order)) ?? WithUnpack(gfni: false, order);

        /// <summary>The kernels with GFNI (null unless the CPU has it) or shift unpacking, for codes in <paramref name="order"/>.</summary>
        public static VnniKernels? WithUnpack(bool gfni, I2sCodeOrder order = I2sCodeOrder.Rows) => (gfni, order) switch
        {
            (true, I2sCodeOrder.Rows) => GfniKernels.Value,
            (false, I2sCodeOrder.Rows) => ShiftKernels.Value,
            (true, _) => GfniBlockKernels.Value,
            _ => ShiftBlockKernels.Value,
        };

        private VnniKernels(byte* start, int rows4, int row1, int tokens4, string unpack, I2sCodeOrder order)
        {
            Tokens4 = (delegate* unmanaged[SuppressGCTransition]<Tokens4Args*, void>)(start + tokens4);
            Rows4 = (delegate* unmanaged[SuppressGCTransition]<byte*, nint, sbyte*, nint, int*, nint, void>)(start + rows4);
            Row1 = (delegate* unmanaged[SuppressGCTransition]<byte*, sbyte*, nint, int*, nint, void>)(start + row1);
            Unpack = unpack;
            Order = order;
        }

        private static VnniKernels? Map(bool gfni, I2sCodeOrder order)
        {
            byte[] code = EmitVnniKernels(gfni, order, out int rows4, out int row1, out int tokens4);
            byte* start = (byte*)ExecutableCode.TryLoad(code);
            return start == null ? null : new VnniKernels(start, rows4, row1, tokens4, gfni ? "gfni" : "shift", order);
        }
    }

    /// <summary>
    /// How the emitted loops turn a broadcast 32-byte block into its two 64-code vectors, the same two
    /// ways as the intrinsic kernels (<see cref="IAvx512Codes"/>): one vgf2p8affineqb per vector with the
    /// matrices in zmm30/31, or vpsrlvw by the per-half counts in zmm30/31 then vpandd with the 3s in zmm28.
    /// </summary>
    private sealed class EmittedUnpack(bool gfni, int first, int second, int threes)
    {
        private static readonly Zmm First = new(30), Second = new(31), Threes = new(28);

        public void LoadConstants(X64Emitter asm)
        {
            asm.Vmovdqu64(First, first);
            asm.Vmovdqu64(Second, second);
            if (!gfni) asm.Vmovdqu64(Threes, threes);
        }

        public void Unpack(X64Emitter asm, Zmm block, Zmm lo, Zmm hi)
        {
            if (gfni)
            {
                asm.Vgf2p8affineqb(lo, block, First, 0);
                asm.Vgf2p8affineqb(hi, block, Second, 0);
            }
            else
            {
                asm.Vpsrlvw(lo, block, First);
                asm.Vpandd(lo, lo, Threes);
                asm.Vpsrlvw(hi, block, Second);
                asm.Vpandd(hi, hi, Threes);
            }
        }
    }

    /// <summary>The three kernels in one block of code, with their entry offsets, then the constants:
    /// the unpacking's two vectors (affine matrices or shift counts, see <see cref="IAvx512Codes"/>) and
    /// its 3s, and the 4-row kernel's lane order.</summary>
    internal static byte[] EmitVnniKernels(bool gfni, I2sCodeOrder order, out int rows4, out int rows1, out int tokens4)
    {
        var asm = new X64Emitter();
        int first = asm.NewLabel(), second = asm.NewLabel(), threes = asm.NewLabel(), firstLanes = asm.NewLabel();
        var unpack = new EmittedUnpack(gfni, first, second, threes);
        int rows4Entry = asm.NewLabel(), rows1Entry = asm.NewLabel(), tokens4Entry = asm.NewLabel();
        asm.Bind(rows4Entry);
        EmitRows4(asm, unpack, order, firstLanes);
        asm.Align(16);
        asm.Bind(rows1Entry);
        EmitRow1(asm, unpack);
        asm.Align(16);
        asm.Bind(tokens4Entry);
        EmitRows4Tokens4(asm, unpack, order);

        Vector512<byte> firstConstant, secondConstant;
        if (gfni) AffineCodes.Constants(out firstConstant, out secondConstant);
        else ShiftedCodes.Constants(out firstConstant, out secondConstant);
        asm.Align(64);
        asm.Bind(first);
        asm.Data(BytesOf(firstConstant));
        asm.Bind(second);
        asm.Data(BytesOf(secondConstant));
        asm.Bind(threes);
        for (int i = 0; i < 64; i++) asm.Data([3]);
        asm.Bind(firstLanes);                             // vpermd indices: lanes 0, 4, 8, 12 first
        for (int i = 0; i < 16; i++) asm.Data(BitConverter.GetBytes(4 * (i % 4)));
        byte[] code = asm.ToArray();
        (rows4, rows1, tokens4) = (asm.OffsetOf(rows4Entry), asm.OffsetOf(rows1Entry), asm.OffsetOf(tokens4Entry));
        return code;
    }

    // Register plan of the single-token kernels: totals in zmm0–3, a row's broadcast block in zmm16, its
    // unpacked codes in zmm18/19, the token's 128 activations in zmm22/23 (q[0..63], q[64..127]), scratch
    // for the sums in zmm24/25, the unpacking's constants in zmm28, 30, 31.
    private static readonly Zmm ActsLo = new(22), ActsHi = new(23);

    /// <summary>What the 4-token kernel reads from the pointer it is given (rdi).</summary>
    [StructLayout(LayoutKind.Explicit)]
    internal unsafe struct Tokens4Args
    {
        public const int RowsAt = 0, RowBytesAt = 8, Q0At = 16, BlocksAt = 48, StagedAt = 56, GroupsAt = 64;
        /// <summary>The first row's codes.</summary>
        [FieldOffset(RowsAt)] public byte* Rows;
        [FieldOffset(RowBytesAt)] public nint RowBytes;
        /// <summary>The four tokens' activations (Q0 … Q3 side by side).</summary>
        [FieldOffset(Q0At)] public sbyte* Q0;
        [FieldOffset(Q0At + 8)] public sbyte* Q1;
        [FieldOffset(Q0At + 16)] public sbyte* Q2;
        [FieldOffset(Q0At + 24)] public sbyte* Q3;
        [FieldOffset(BlocksAt)] public nint Blocks;
        /// <summary>16 ints per group: token u's dots of the group's rows 0–3 at 4u … 4u + 3.</summary>
        [FieldOffset(StagedAt)] public int* Staged;
        [FieldOffset(GroupsAt)] public nint Groups;
    }

    /// <summary>
    /// Groups of 4 rows × 4 tokens: each block of a row is unpacked once and meets the four tokens'
    /// activations, held in zmm16–23 for the block; totals in zmm0–15 (zmm(4·row + token)), the block in
    /// zmm24 and its codes in zmm25/26. The sum tree leaves (row r, token u) in lane 4u + r, stored as one
    /// 64-byte vector per group. Prefetches as <see cref="EmitRows4"/>.
    /// </summary>
    private static void EmitRows4Tokens4(X64Emitter asm, EmittedUnpack unpack, I2sCodeOrder order)
    {
        Gpr args = Gpr.Rdi, rows = Gpr.R8, rowBytes = Gpr.Rsi, staged = Gpr.R9, groups = Gpr.R12, left = Gpr.Rbp, ahead = Gpr.Rax;
        Gpr[] row = [Gpr.R10, Gpr.R11, Gpr.R13, Gpr.R14];          // not r12: as a base it needs a SIB byte
        Gpr[] q = [Gpr.Rbx, Gpr.Rcx, Gpr.Rdx, Gpr.R15];
        Gpr[] borrowed = [Gpr.Rbx, Gpr.Rbp, Gpr.R12, Gpr.R13, Gpr.R14, Gpr.R15];   // callee-saved in the SysV ABI
        Zmm block = new(24), lo = new(25), hi = new(26);
        Zmm Total(int r, int u) => new(4 * r + u);
        Zmm Low(int u) => new(16 + 2 * u);
        Zmm High(int u) => new(17 + 2 * u);
        int group = asm.NewLabel(), loop = asm.NewLabel();

        foreach (Gpr r in borrowed) asm.Push(r);
        unpack.LoadConstants(asm);
        asm.Mov(rows, new Mem(args, Tokens4Args.RowsAt));
        asm.Mov(rowBytes, new Mem(args, Tokens4Args.RowBytesAt));
        asm.Mov(staged, new Mem(args, Tokens4Args.StagedAt));
        asm.Mov(groups, new Mem(args, Tokens4Args.GroupsAt));

        var rowBlocks = new GroupRows(asm, order, row, rowBytes);
        asm.Bind(group);
        rowBlocks.Start(rows, ahead);
        for (int u = 0; u < 4; u++) asm.Mov(q[u], new Mem(args, Tokens4Args.Q0At + 8 * u));
        asm.Mov(left, new Mem(args, Tokens4Args.BlocksAt));
        for (int i = 0; i < 16; i++) asm.Vpxord(new Zmm(i), new Zmm(i), new Zmm(i));

        asm.Bind(loop);
        asm.Prefetcht0(new Mem(ahead));
        asm.Prefetcht0(new Mem(ahead, 64));
        asm.Add(ahead, 4 * I2sLayout.BlockBytes);
        for (int u = 0; u < 4; u++)
        {
            asm.Vmovdqu64(Low(u), new Mem(q[u]));
            asm.Vmovdqu64(High(u), new Mem(q[u], 64));
            asm.Add(q[u], I2sLayout.BlockElements);
        }
        for (int r = 0; r < 4; r++)
        {
            asm.Vbroadcasti64x4(block, rowBlocks.Block(r));
            unpack.Unpack(asm, block, lo, hi);
            for (int u = 0; u < 4; u++)
            {
                asm.Vpdpbusd(Total(r, u), lo, Low(u));
                asm.Vpdpbusd(Total(r, u), hi, High(u));
            }
        }
        rowBlocks.Advance();
        asm.Dec(left);
        asm.Jnz(loop);

        // Input 4r + u lands in lane 4u + r (SumLane).
        asm.Vmovdqu64(new Mem(staged), EmitSumsInRegister(asm, 16));
        asm.Add(staged, 64);
        for (int i = 0; i < 4; i++) asm.Add(rows, rowBytes);
        asm.Dec(groups);
        asm.Jnz(group);

        for (int i = borrowed.Length - 1; i >= 0; i--) asm.Pop(borrowed[i]);
        asm.Vzeroupper();
        asm.Ret();
    }

    /// <summary>
    /// 1 row × 1 token: (row, q, blocks, sums, blockStride); the dot to sums[0]. For the rows left over
    /// after the 4-row groups, which real shapes (multiples of 64 rows per thread) never have.
    /// </summary>
    private static void EmitRow1(X64Emitter asm, EmittedUnpack unpack)
    {
        Gpr row = Gpr.Rdi, q = Gpr.Rsi, blocks = Gpr.Rdx, sums = Gpr.Rcx, blockStride = Gpr.R8;
        Zmm block = new(16), lo = new(18), hi = new(19);
        int loop = asm.NewLabel();
        unpack.LoadConstants(asm);
        asm.Vpxord(new Zmm(0), new Zmm(0), new Zmm(0));
        asm.Bind(loop);
        asm.Vbroadcasti64x4(block, new Mem(row));
        unpack.Unpack(asm, block, lo, hi);
        asm.Vmovdqu64(ActsLo, new Mem(q));
        asm.Vmovdqu64(ActsHi, new Mem(q, 64));
        asm.Vpdpbusd(new Zmm(0), lo, ActsLo);
        asm.Vpdpbusd(new Zmm(0), hi, ActsHi);
        asm.Add(row, blockStride);
        asm.Add(q, I2sLayout.BlockElements);
        asm.Dec(blocks);
        asm.Jnz(loop);
        EmitSums(asm, 1, sums);
        asm.Vzeroupper();
        asm.Ret();
    }

    /// <summary>
    /// Groups of 4 rows × 1 token: (rows, rowBytes, q, blocks, dots, groups); group g's 4 dots go to
    /// dots[4g..4g+3]. One call covers a whole row range, so the call and its bookkeeping are paid per
    /// range, not per 4 rows. The rows are 4 short interleaved streams, which the hardware prefetcher
    /// does not follow (as in <see cref="Avx512Rows4{TCodes}"/>), so each block prefetches
    /// 128 bytes starting two groups ahead: the rate the loop consumes them.
    /// </summary>
    private static void EmitRows4(X64Emitter asm, EmittedUnpack unpack, I2sCodeOrder order, int firstLanes)
    {
        Gpr rows = Gpr.Rdi, rowBytes = Gpr.Rsi, q = Gpr.Rdx, blocks = Gpr.Rcx, dots = Gpr.R8, groups = Gpr.R9;
        Gpr[] row = [Gpr.R10, Gpr.R11, Gpr.R13, Gpr.R14];         // not r12: as a base it needs a SIB byte
        Gpr ahead = Gpr.Rax, acts = Gpr.Rbx, left = Gpr.Rbp;
        Gpr[] borrowed = [Gpr.Rbx, Gpr.Rbp, Gpr.R13, Gpr.R14];   // callee-saved in the SysV ABI
        Zmm block = new(16), lo = new(18), hi = new(19), lanes = new(29);
        int group = asm.NewLabel(), loop = asm.NewLabel();

        foreach (Gpr r in borrowed) asm.Push(r);
        unpack.LoadConstants(asm);
        asm.Vmovdqu64(lanes, firstLanes);

        var rowBlocks = new GroupRows(asm, order, row, rowBytes);
        asm.Bind(group);
        rowBlocks.Start(rows, ahead);
        asm.Mov(acts, q);
        asm.Mov(left, blocks);
        for (int i = 0; i < 4; i++) asm.Vpxord(new Zmm(i), new Zmm(i), new Zmm(i));

        asm.Bind(loop);
        asm.Prefetcht0(new Mem(ahead));
        asm.Prefetcht0(new Mem(ahead, 64));
        asm.Add(ahead, 4 * I2sLayout.BlockBytes);
        asm.Vmovdqu64(ActsLo, new Mem(acts));
        asm.Vmovdqu64(ActsHi, new Mem(acts, 64));
        for (int i = 0; i < 4; i++)
        {
            asm.Vbroadcasti64x4(block, rowBlocks.Block(i));
            unpack.Unpack(asm, block, lo, hi);
            asm.Vpdpbusd(new Zmm(i), lo, ActsLo);
            asm.Vpdpbusd(new Zmm(i), hi, ActsHi);
        }
        rowBlocks.Advance();
        asm.Add(acts, I2sLayout.BlockElements);
        asm.Dec(left);
        asm.Jnz(loop);

        EmitSumsInRegister(asm, 4);                       // row i's dot in lane 4i of zmm0
        asm.Vpermd(new Zmm(0), lanes, new Zmm(0));        // lanes 0, 4, 8, 12 → 0, 1, 2, 3
        asm.Vmovdqu32Low128(new Mem(dots), new Zmm(0));
        asm.Add(dots, 16);
        for (int i = 0; i < 4; i++) asm.Add(rows, rowBytes);
        asm.Dec(groups);
        asm.Jnz(group);

        for (int i = borrowed.Length - 1; i >= 0; i--) asm.Pop(borrowed[i]);
        asm.Vzeroupper();
        asm.Ret();
    }

    /// <summary>
    /// How the 4-row kernels address a group's blocks. In row order each row has its own pointer, rowBytes
    /// apart, advancing one block per step; in <see cref="I2sCodeOrder.FourRowBlocks"/> order the group's four
    /// blocks of a step are adjacent, so one pointer (the first of <c>rows</c>) serves them and the group is a
    /// single sequential stream. Either way the group's codes are the 4·rowBytes bytes from its start, and the
    /// prefetch runs over the same bytes two groups ahead, the rate the loop consumes them.
    /// </summary>
    private sealed class GroupRows(X64Emitter asm, I2sCodeOrder order, Gpr[] rows, Gpr rowBytes)
    {
        public void Start(Gpr groupStart, Gpr ahead)
        {
            asm.Mov(rows[0], groupStart);
            if (order == I2sCodeOrder.Rows)
                for (int i = 1; i < 4; i++) { asm.Mov(rows[i], rows[i - 1]); asm.Add(rows[i], rowBytes); }
            asm.Mov(ahead, groupStart);
            for (int i = 0; i < 8; i++) asm.Add(ahead, rowBytes);
        }

        public Mem Block(int row) => order == I2sCodeOrder.Rows ? new Mem(rows[row]) : new Mem(rows[0], row * I2sLayout.BlockBytes);

        public void Advance()
        {
            if (order == I2sCodeOrder.Rows)
                for (int i = 0; i < 4; i++) asm.Add(rows[i], I2sLayout.BlockBytes);
            else
                asm.Add(rows[0], 4 * I2sLayout.BlockBytes);
        }
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
    private static void EmitSums(X64Emitter asm, int count, Gpr destination) =>
        asm.Vmovdqu64(new Mem(destination), EmitSumsInRegister(asm, count));

    /// <summary>The tree of <see cref="EmitSums"/>, leaving the sums in the returned register (zmm0).</summary>
    private static Zmm EmitSumsInRegister(X64Emitter asm, int count)
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
        return v.Single();
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
