using BitNet.Inference.Kernels;
using BitNet.Inference.Model;

// In the Kernels namespace so that the ISA fallbacks (scripts/test-isa.sh) and the ARM64 run check
// the tiled multi-token head with every kernel set.
namespace BitNet.Inference.Tests.Kernels;

public class MultiTokenHeadTests
{
    [Theory]
    [InlineData(2, 1000, 2560, false)]
    [InlineData(5, 1037, 128, false)]   // rows not a multiple of the tile or the piece
    [InlineData(8, 3000, 72, true)]
    [InlineData(3, 517, 256, true)]
    public unsafe void Several_tokens_through_the_head_give_each_tokens_single_row_logits_bit_for_bit(int tokens, int rows, int columns, bool quantized)
    {
        var rng = new Random(rows + columns);
        var weights = new Half[rows * columns];
        for (int i = 0; i < weights.Length; i++) weights[i] = (Half)(rng.NextDouble() * 2 - 1);
        var x = new float[tokens * columns];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 6 - 3);
        x[1] = float.NaN;   // one token whose input is not finite takes the kernels' fallback path
        if (tokens > 1) x[columns] = 1e30f;

        using var matmul = new MatMul(threads: 2);
        fixed (Half* w = weights)
        {
            if (quantized) matmul.EnableQuantizedHead(w, rows, columns, releaseReadPages: false, exactRows: null);
            var together = new float[tokens * rows];
            matmul.LmHead(w, rows, columns, x, tokens, together);
            for (int t = 0; t < tokens; t++)
            {
                var alone = new float[rows];
                matmul.LmHead(w, rows, columns, x.AsSpan(t * columns, columns), 1, alone);
                for (int v = 0; v < rows; v++)
                    Assert.True(BitConverter.SingleToInt32Bits(alone[v]) == BitConverter.SingleToInt32Bits(together[t * rows + v]),
                        $"{matmul.KernelName}: token {t}, row {v}: {alone[v]} alone, {together[t * rows + v]} together");
            }
        }
    }

    public static TheoryData<string, int, int> SeveralTokenKernels()
    {
        var data = new TheoryData<string, int, int>();
        foreach (string kernel in new[] { "avx2", "avx512", "vector128" })
            foreach ((int tokens, int columns) in new[] { (1, 2560), (4, 2560), (5, 100), (8, 72), (9, 1003), (11, 1536), (6, 2600), (3, 24), (2, 1312) })
                data.Add(kernel, tokens, columns);
        return data;
    }

    [Theory]
    [MemberData(nameof(SeveralTokenKernels))]
    public void The_several_token_f16_kernels_equal_their_single_token_kernel_bit_for_bit(string kernel, int tokens, int columns)
    {
        if (kernel != "vector128" && (!System.Runtime.Intrinsics.X86.Avx2.IsSupported || !System.Runtime.Intrinsics.X86.Fma.IsSupported))
            Assert.Skip("needs AVX2 and FMA");
        (F16DotRowsTokensKernel together, F16DotRowsKernel alone) = kernel switch
        {
            "avx2" => ((F16DotRowsTokensKernel)F16.DotRowsTokensAvx2, (F16DotRowsKernel)F16.DotRowsAvx2),
            // Without AVX-512F this is the AVX2 kernel, which must give the same results.
            "avx512" => (F16.DotRowsTokensAvx512, F16.DotRowsAvx2),
            _ => (F16.DotRowsTokensVector128, F16.DotRowsVector128),
        };
        // Rows 2 … 36: two full tiles of 16 and a partial one of 3, whose last row has no partner in a row pair.
        const int rows = 37, first = 2, stride = 41;
        var rng = new Random(tokens * 1000 + columns);
        var matrix = new Half[rows * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (Half)(rng.NextDouble() * 4 - 2);
        matrix[first * columns + 3] = BitConverter.UInt16BitsToHalf(0x0001);   // subnormal
        matrix[first * columns + 5] = BitConverter.UInt16BitsToHalf(0x7C00);   // infinity
        var x = new float[tokens * columns];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 8 - 4);
        if (tokens > 2) x[2 * columns + 1] = 70000f;          // a token the kernels cannot scale: the reference path
        if (tokens > 6) x[6 * columns + columns - 1] = float.NaN;
        var results = new float[(tokens - 1) * stride + rows - first];
        together(matrix, columns, x, tokens, first, rows - first, results, stride);
        // The emitted pair loops (32-column steps) widen halves exactly, so the row holding the infinity sums to what
        // the reference gives (non-finite), where the shift widening of the other kernels makes it a large finite value.
        bool exactWidening = kernel == "avx512" && F16.Avx512PairLoops.Instance is not null && columns >= 32;
        for (int t = 0; t < tokens; t++)
        {
            var single = new float[rows - first];
            alone(matrix, columns, x.AsSpan(t * columns, columns), first, rows - first, single);
            if (exactWidening)
            {
                F16.DotRowsScalar(matrix, columns, x.AsSpan(t * columns, columns), first, 1, single);
                Assert.False(float.IsFinite(single[0]), $"token {t}: the reference row with an infinity is {single[0]}");
            }
            for (int r = 0; r < single.Length; r++)
                Assert.True(BitConverter.SingleToInt32Bits(single[r]) == BitConverter.SingleToInt32Bits(results[t * stride + r]),
                    $"{kernel}, token {t}, row {r}: {single[r]} alone, {results[t * stride + r]} together");
        }
    }

    [Theory]
    [InlineData("avx2")]
    [InlineData("avx512")]
    [InlineData("vector128")]
    public void When_no_token_can_be_scaled_every_one_takes_the_reference_path(string kernel)
    {
        if (kernel != "vector128" && (!System.Runtime.Intrinsics.X86.Avx2.IsSupported || !System.Runtime.Intrinsics.X86.Fma.IsSupported))
            Assert.Skip("needs AVX2 and FMA");
        F16DotRowsTokensKernel together = kernel switch
        {
            "avx2" => F16.DotRowsTokensAvx2,
            "avx512" => F16.DotRowsTokensAvx512,
            _ => F16.DotRowsTokensVector128,
        };
        const int tokens = 5, rows = 19, columns = 96;
        var rng = new Random(7);
        var matrix = new Half[rows * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (Half)(rng.NextDouble() * 4 - 2);
        var x = new float[tokens * columns];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 8 - 4);
        for (int t = 0; t < tokens; t++) x[t * columns + t] = t % 2 == 0 ? 70000f : float.NaN;
        var results = new float[tokens * rows];
        results.AsSpan().Fill(12345f);
        together(matrix, columns, x, tokens, 0, rows, results, rows);
        for (int t = 0; t < tokens; t++)
        {
            var reference = new float[rows];
            F16.DotRowsScalar(matrix, columns, x.AsSpan(t * columns, columns), 0, rows, reference);
            Assert.Equal(reference.Select(BitConverter.SingleToInt32Bits), results.AsSpan(t * rows, rows).ToArray().Select(BitConverter.SingleToInt32Bits));
        }
    }

    [Fact]
    public void The_exact_widening_one_token_head_equals_the_shift_widening_one_bit_for_bit_subnormal_weights_included()
    {
        if (!BitNet.Inference.Kernels.X64.X64Cpu.HasAvx512F)
            Assert.Skip("the emitted pair loops need AVX-512F (absent here, or switched off in the runtime)");
        // A head's spread (0.05·N(0,1)) gives about 0.1 % subnormal halves; more are set by hand.
        const int rows = 21, columns = 2560;
        var rng = new Random(2024);
        var matrix = new Half[rows * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (Half)(0.05 * (rng.NextDouble() + rng.NextDouble() + rng.NextDouble() - 1.5));
        for (int i = 7; i < matrix.Length; i += 97) matrix[i] = BitConverter.UInt16BitsToHalf((ushort)(rng.Next(1, 0x400) | (i % 2 << 15)));
        var x = new float[columns];
        for (int i = 0; i < columns; i++) x[i] = (float)(Half)(rng.NextDouble() * 6 - 3);
        var shifted = new float[rows - 3];
        var exact = new float[rows - 3];
        F16.DotRowsAvx2(matrix, columns, x, 3, rows - 3, shifted);
        F16.DotRowsExactWidening(matrix, columns, x, 3, rows - 3, exact);
        Assert.Equal(shifted.Select(BitConverter.SingleToInt32Bits), exact.Select(BitConverter.SingleToInt32Bits));
    }

    [Fact]
    public void The_avx512_several_token_head_runs_the_emitted_pair_loops_wherever_the_cpu_has_avx512f()
    {
        // The bit-for-bit tests above compare DotRowsTokensAvx512 with the single-token kernel; this one
        // makes sure that on an AVX-512F machine they compared the emitted loops, not the AVX2 fallback.
        if (!BitNet.Inference.Kernels.X64.X64Cpu.HasAvx512F)
            Assert.Skip("the emitted pair loops need AVX-512F (absent here, or switched off in the runtime)");
        Assert.NotNull(F16.Avx512PairLoops.Instance);
        byte[] code = F16.Avx512PairLoops.Emit(out int[] offsets);
        Assert.Equal(F16.Avx512PairLoops.MaxTokens, offsets.Length);
        Assert.All(offsets, offset => Assert.InRange(offset, 0, code.Length - 1));
    }

    [Fact]
    public void The_several_token_f16_kernels_stay_within_the_f16_tolerance_of_the_scalar_spec()
    {
        const int rows = 20, columns = 2560, tokens = 6;
        var rng = new Random(7);
        var matrix = new Half[rows * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (Half)(rng.NextDouble() * 0.1 - 0.05);
        var x = new float[tokens * columns];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(Half)(rng.NextDouble() * 2 - 1);
        var kernels = new List<F16DotRowsTokensKernel> { F16.DotRowsTokensVector128 };
        if (System.Runtime.Intrinsics.X86.Avx2.IsSupported && System.Runtime.Intrinsics.X86.Fma.IsSupported)
            kernels.AddRange([F16.DotRowsTokensAvx2, F16.DotRowsTokensAvx512]);
        foreach (F16DotRowsTokensKernel kernel in kernels)
        {
            var results = new float[tokens * rows];
            kernel(matrix, columns, x, tokens, 0, rows, results, rows);
            for (int t = 0; t < tokens; t++)
            {
                var reference = new float[rows];
                F16.DotRowsScalar(matrix, columns, x.AsSpan(t * columns, columns), 0, rows, reference);
                for (int r = 0; r < rows; r++)
                    Assert.True(Math.Abs(reference[r] - results[t * rows + r]) <= 1e-4f,
                        $"{kernel.Method.Name}, token {t}, row {r}: {results[t * rows + r]}, scalar {reference[r]}");
            }
        }
    }
}
