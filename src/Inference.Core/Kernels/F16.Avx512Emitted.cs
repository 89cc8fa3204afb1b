using System.Runtime.InteropServices;
using BitNet.Inference.Kernels.X64;

namespace BitNet.Inference.Kernels;

public static partial class F16
{
    /// <summary>
    /// The row-pair loop of <see cref="DotRowsTokensAvx512"/> as machine code emitted at first use, one
    /// variant per token count 1 … 4, for the reason the VNNI kernels are emitted: a Native AOT binary built
    /// for x86-64-v3 has every Avx512 intrinsic compiled out, yet runs code we emit wherever the CPU has
    /// AVX-512F (<see cref="X64Cpu.HasAvx512F"/>), so the batched head of the AOT server gets 512-bit FMAs.
    /// Per 32 columns: each row's halves widened exactly (vcvtph2ps), each token's two input vectors
    /// (unscaled) loaded once for both rows, and every (row, token) pair of 512-bit accumulators taking one
    /// vfmadd231ps each, in column order. w · x is the same real number as the C# kernels' (w · 2^−112) ·
    /// (x · 2^112), so the sums are theirs bit for bit; but the shift widening turns subnormal halves
    /// (about 0.1 % of a head's weights) into subnormal floats, which cost Intel cores a microcode assist
    /// per FMA, where vcvtph2ps gives normal floats. Non-finite halves stay non-finite here, as in
    /// <see cref="DotRowsScalar"/>, where the shift widening makes them large finite values.
    /// </summary>
    internal sealed unsafe class Avx512PairLoops
    {
        public const int MaxTokens = 4;
        private readonly nint[] _entries;

        private Avx512PairLoops(nint[] entries) => _entries = entries;

        private static readonly Lazy<Avx512PairLoops?> Loops = new(() => X64Cpu.HasAvx512F ? Map() : null);

        /// <summary>The loops, or null where the CPU, the OS or the runtime (DOTNET_EnableAVX512=0) rules them out.</summary>
        public static Avx512PairLoops? Instance => Loops.Value;

        /// <summary>Runs the loop for <paramref name="tokens"/> tokens (1 … <see cref="MaxTokens"/>).</summary>
        public void Run(int tokens, Args* args) =>
            ((delegate* unmanaged[SuppressGCTransition]<Args*, void>)_entries[tokens - 1])(args);

        private static Avx512PairLoops? Map()
        {
            byte[] code = Emit(out int[] offsets);
            return ExecutableCode.TryLoadEntries(code, offsets) is { } entries ? new Avx512PairLoops(entries) : null;
        }

        /// <summary>What a loop reads from the pointer it is given (rdi).</summary>
        [StructLayout(LayoutKind.Explicit)]
        internal struct Args
        {
            public const int RowAt = 0, RowBytesAt = 8, XAt = 16, StepsAt = 48, AccAt = 56, AheadAt = 72, AheadStepAt = 80;
            /// <summary>The first row of the pair at the block's first column; the second is RowBytes on.</summary>
            [FieldOffset(RowAt)] public short* Row;
            [FieldOffset(RowBytesAt)] public nint RowBytes;
            /// <summary>Token u's inputs (not scaled) at the block's first column: X0 … X3 side by side.</summary>
            [FieldOffset(XAt)] public float* X0;
            [FieldOffset(XAt + 8)] public float* X1;
            [FieldOffset(XAt + 16)] public float* X2;
            [FieldOffset(XAt + 24)] public float* X3;
            /// <summary>32-column steps in the block (at least 1).</summary>
            [FieldOffset(StepsAt)] public nint Steps;
            /// <summary>Each row's accumulators: token u's two 512-bit ones at 128·u and 128·u + 64 bytes.</summary>
            [FieldOffset(AccAt)] public float* Acc0;
            [FieldOffset(AccAt + 8)] public float* Acc1;
            /// <summary>Two lines prefetched per step, from here on (<see cref="PrefetchTarget"/>), advancing <see cref="AheadStep"/> bytes a step.</summary>
            [FieldOffset(AheadAt)] public byte* Ahead;
            [FieldOffset(AheadStepAt)] public nint AheadStep;
        }

        internal static byte[] Emit(out int[] offsets)
        {
            var asm = new X64Emitter();
            offsets = new int[MaxTokens];
            for (int tokens = 1; tokens <= MaxTokens; tokens++)
            {
                asm.Align(16);
                offsets[tokens - 1] = asm.Length;
                EmitLoop(asm, tokens);
            }
            return asm.ToArray();
        }

        // Registers: only caller-saved ones (no push or pop). Accumulator (row r, token u, half h) in
        // zmm(8r + 2u + h); the two rows' widened halves in zmm16–19, a token's inputs in zmm20/21.
        // r11 counts the steps in the loop and holds each row's accumulator address before and after it.
        private static void EmitLoop(X64Emitter asm, int tokens)
        {
            Gpr args = Gpr.Rdi, first = Gpr.Rsi, second = Gpr.Rdx, steps = Gpr.R11, ahead = Gpr.Rax;
            Gpr[] x = [Gpr.Rcx, Gpr.R8, Gpr.R9, Gpr.R10];
            Zmm Total(int r, int u, int h) => new(8 * r + 2 * u + h);
            Zmm firstLow = new(16), firstHigh = new(17), secondLow = new(18), secondHigh = new(19);
            Zmm inputLow = new(20), inputHigh = new(21);
            int loop = asm.NewLabel();

            asm.Mov(first, new Mem(args, Args.RowAt));
            asm.Mov(second, new Mem(args, Args.RowBytesAt));
            asm.Add(second, first);
            for (int u = 0; u < tokens; u++) asm.Mov(x[u], new Mem(args, Args.XAt + 8 * u));
            for (int r = 0; r < 2; r++)
            {
                asm.Mov(steps, new Mem(args, Args.AccAt + 8 * r));
                for (int u = 0; u < tokens; u++)
                    for (int h = 0; h < 2; h++) asm.Vmovdqu64(Total(r, u, h), new Mem(steps, 128 * u + 64 * h));
            }
            asm.Mov(ahead, new Mem(args, Args.AheadAt));
            asm.Mov(steps, new Mem(args, Args.StepsAt));

            asm.Bind(loop);
            asm.Prefetcht0(new Mem(ahead));
            asm.Prefetcht0(new Mem(ahead, 64));
            asm.Add(ahead, new Mem(args, Args.AheadStepAt));
            Widen(firstLow, new Mem(first));
            Widen(firstHigh, new Mem(first, 32));
            Widen(secondLow, new Mem(second));
            Widen(secondHigh, new Mem(second, 32));
            for (int u = 0; u < tokens; u++)
            {
                asm.Vmovdqu64(inputLow, new Mem(x[u]));
                asm.Vmovdqu64(inputHigh, new Mem(x[u], 64));
                asm.Vfmadd231ps(Total(0, u, 0), firstLow, inputLow);
                asm.Vfmadd231ps(Total(0, u, 1), firstHigh, inputHigh);
                asm.Vfmadd231ps(Total(1, u, 0), secondLow, inputLow);
                asm.Vfmadd231ps(Total(1, u, 1), secondHigh, inputHigh);
                asm.Add(x[u], 128);
            }
            asm.Add(first, 64);
            asm.Add(second, 64);
            asm.Dec(steps);
            asm.Jnz(loop);

            for (int r = 0; r < 2; r++)
            {
                asm.Mov(steps, new Mem(args, Args.AccAt + 8 * r));
                for (int u = 0; u < tokens; u++)
                    for (int h = 0; h < 2; h++) asm.Vmovdqu64(new Mem(steps, 128 * u + 64 * h), Total(r, u, h));
            }
            asm.Vzeroupper();
            asm.Ret();

            void Widen(Zmm into, Mem halves) => asm.Vcvtph2ps(into, halves);
        }
    }
}
