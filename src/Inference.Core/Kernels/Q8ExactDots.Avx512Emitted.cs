using System.Runtime.InteropServices;
using BitNet.Inference.Kernels.X64;

namespace BitNet.Inference.Kernels;

internal static partial class Q8ExactDots
{
    /// <summary>
    /// <see cref="RowsTokensAvx512"/> with its row loop as emitted machine code where the CPU has AVX512-VNNI:
    /// per 32 columns one vpmovsxbw widens the row's weights, and each token takes one vpdpwssd (the pmaddwd and
    /// the add in one instruction). The loop steps 64 columns; the columns past a multiple of 64 are added by
    /// <see cref="TokenPass.Finish"/>. Emitted for the reason the ternary VNNI kernels are: the Native AOT
    /// server images are built for x86-64-v3, which compiles every Avx512 intrinsic out. Elsewhere it runs
    /// <see cref="RowsTokensAvx512"/>.
    /// </summary>
    public static unsafe void RowsTokensAvx512Vnni(ReadOnlySpan<sbyte> matrix, int columns, ReadOnlySpan<short> x, int tokens, int rowStart, int rowCount,
        Span<long> dst, int dstStride)
    {
        if (VnniRowLoops.Instance is not { } loops || tokens == 1)
        {
            RowsTokensAvx512(matrix, columns, x, tokens, rowStart, rowCount, dst, dstStride);
            return;
        }
        Validate(matrix, columns, x, rowStart, rowCount, dst);
        ValidateTokens(columns, x, tokens, rowCount, dst, dstStride);
        int vec = columns & ~63;
        // Each row's lanes for one flush block, reduced here in int64 into the rows' totals.
        int* lanes = stackalloc int[RowsPerCall * MaxTokensPerPass * 16];
        long* totals = stackalloc long[RowsPerCall * MaxTokensPerPass];
        fixed (sbyte* m = matrix)
        fixed (short* xs = x)
        fixed (long* d = dst)
        {
            for (int t0 = 0; t0 < tokens; t0 += MaxTokensPerPass)
            {
                int n = Math.Min(MaxTokensPerPass, tokens - t0);
                short* xt = xs + (long)t0 * columns;
                var pass = new TokenPass(m, columns, xt, n, d + (long)t0 * dstStride, dstStride);
                for (int r0 = 0; r0 < rowCount; r0 += RowsPerCall)
                {
                    int rows = Math.Min(RowsPerCall, rowCount - r0);
                    sbyte* w = m + (long)(rowStart + r0) * columns;
                    new Span<long>(totals, RowsPerCall * MaxTokensPerPass).Clear();
                    for (int k0 = 0; k0 < vec; k0 += StepsPerFlush * 32)
                    {
                        var args = new VnniRowLoops.Args
                        {
                            Row = w + k0, RowBytes = columns, Rows = rows, Steps = (Math.Min(vec, k0 + StepsPerFlush * 32) - k0) / 64,
                            X0 = xt + k0, X1 = xt + columns + k0, X2 = xt + 2 * columns + k0, X3 = xt + 3 * columns + k0, Lanes = lanes,
                        };
                        loops.Run(n, &args);
                        for (int r = 0; r < rows; r++)
                            for (int t = 0; t < n; t++)
                                totals[r * MaxTokensPerPass + t] += LaneSum(lanes + (r * MaxTokensPerPass + t) * 16);
                    }
                    for (int r = 0; r < rows; r++)
                        pass.Finish(w + (long)r * columns, vec, r0 + r, totals + r * MaxTokensPerPass);
                }
            }
        }
    }

    /// <summary>Rows per call of an emitted loop: their lanes (16 KB for four tokens) stay in L1 for the reduction.</summary>
    private const int RowsPerCall = 16;

    // 16 int32 lanes summed in int64, as two 256-bit halves (a build for x86-64-v3 has no 512-bit C# vectors).
    private static unsafe long LaneSum(int* lanes) =>
        SumWide(System.Runtime.Intrinsics.Vector256.Load(lanes)) + SumWide(System.Runtime.Intrinsics.Vector256.Load(lanes + 8));

    /// <summary>The emitted row loops, one per token count 1 … <see cref="MaxTokensPerPass"/>.</summary>
    internal sealed unsafe class VnniRowLoops
    {
        private readonly nint[] _entries;

        private VnniRowLoops(nint[] entries) => _entries = entries;

        private static readonly Lazy<VnniRowLoops?> Loops = new(() => X64Cpu.HasAvx512Vnni ? Map() : null);

        /// <summary>The loops, or null where the CPU, the OS or the runtime rules them out.</summary>
        public static VnniRowLoops? Instance => Loops.Value;

        public void Run(int tokens, Args* args) =>
            ((delegate* unmanaged[SuppressGCTransition]<Args*, void>)_entries[tokens - 1])(args);

        private static VnniRowLoops? Map()
        {
            byte[] code = Emit(out int[] offsets);
            return ExecutableCode.TryLoadEntries(code, offsets) is { } entries ? new VnniRowLoops(entries) : null;
        }

        /// <summary>What a loop reads from the pointer it is given (rdi).</summary>
        [StructLayout(LayoutKind.Explicit)]
        internal struct Args
        {
            public const int RowAt = 0, RowBytesAt = 8, RowsAt = 16, StepsAt = 24, XAt = 32, LanesAt = 64;
            /// <summary>The first row at the block's first column; the next ones RowBytes apart.</summary>
            [FieldOffset(RowAt)] public sbyte* Row;
            [FieldOffset(RowBytesAt)] public nint RowBytes;
            [FieldOffset(RowsAt)] public nint Rows;
            /// <summary>64-column steps per row (1 … <see cref="StepsPerFlush"/> / 2: each int32 lane then takes at most
            /// StepsPerFlush pairs of products, as in the other kernels, so none overflows).</summary>
            [FieldOffset(StepsAt)] public nint Steps;
            /// <summary>Token u's int16 inputs at the block's first column.</summary>
            [FieldOffset(XAt)] public short* X0;
            [FieldOffset(XAt + 8)] public short* X1;
            [FieldOffset(XAt + 16)] public short* X2;
            [FieldOffset(XAt + 24)] public short* X3;
            /// <summary>Row r, token u's 16 int32 lanes at Lanes + 64·(r·<see cref="MaxTokensPerPass"/> + u) bytes.</summary>
            [FieldOffset(LanesAt)] public int* Lanes;
        }

        internal static byte[] Emit(out int[] offsets)
        {
            var asm = new X64Emitter();
            offsets = new int[MaxTokensPerPass];
            for (int tokens = 1; tokens <= MaxTokensPerPass; tokens++)
            {
                asm.Align(16);
                offsets[tokens - 1] = asm.Length;
                EmitLoop(asm, tokens);
            }
            return asm.ToArray();
        }

        // Registers: rbx is callee-saved (pushed and popped); the rest are caller-saved. Token u's accumulators
        // in zmm(u) (even steps) and zmm(4 + u) (odd steps): one chain per token would wait out vpdpwssd's latency
        // every step. The widened weights in zmm8, a token's inputs in zmm9.
        private static void EmitLoop(X64Emitter asm, int tokens)
        {
            Gpr args = Gpr.Rdi, row = Gpr.Rsi, rows = Gpr.Rdx, lanes = Gpr.Rcx, steps = Gpr.R8, w = Gpr.R9;
            Gpr[] x = [Gpr.R10, Gpr.R11, Gpr.Rax, Gpr.Rbx];
            Zmm weights = new(8), input = new(9);
            int rowLoop = asm.NewLabel(), stepLoop = asm.NewLabel();

            asm.Push(Gpr.Rbx);
            asm.Mov(row, new Mem(args, Args.RowAt));
            asm.Mov(rows, new Mem(args, Args.RowsAt));
            asm.Mov(lanes, new Mem(args, Args.LanesAt));

            asm.Bind(rowLoop);
            for (int u = 0; u < tokens; u++)
            {
                asm.Vpxord(new Zmm(u), new Zmm(u), new Zmm(u));
                asm.Vpxord(new Zmm(4 + u), new Zmm(4 + u), new Zmm(4 + u));
            }
            asm.Mov(w, row);
            for (int u = 0; u < tokens; u++) asm.Mov(x[u], new Mem(args, Args.XAt + 8 * u));
            asm.Mov(steps, new Mem(args, Args.StepsAt));

            asm.Bind(stepLoop);
            for (int half = 0; half < 2; half++)
            {
                asm.Vpmovsxbw(weights, new Mem(w, 32 * half));
                for (int u = 0; u < tokens; u++)
                {
                    asm.Vmovdqu64(input, new Mem(x[u], 64 * half));
                    asm.Vpdpwssd(new Zmm(4 * half + u), weights, input);
                }
            }
            for (int u = 0; u < tokens; u++) asm.Add(x[u], 128);
            asm.Add(w, 64);
            asm.Dec(steps);
            asm.Jnz(stepLoop);

            for (int u = 0; u < tokens; u++)
            {
                asm.Vpaddd(new Zmm(u), new Zmm(u), new Zmm(4 + u));
                asm.Vmovdqu64(new Mem(lanes, 64 * u), new Zmm(u));
            }
            asm.Add(lanes, 64 * MaxTokensPerPass);
            asm.Add(row, new Mem(args, Args.RowBytesAt));
            asm.Dec(rows);
            asm.Jnz(rowLoop);

            asm.Pop(Gpr.Rbx);
            asm.Vzeroupper();
            asm.Ret();
        }
    }
}
