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
    public unsafe void Several_tokens_through_the_head_give_each_tokens_single_row_logits_bit_for_bit(int tokens, int rows, int columns, bool int8)
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
            if (int8) matmul.EnableQuantizedHead(w, rows, columns, releaseReadPages: false, exactRows: null);
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

    [Theory]
    [InlineData(1, 2560)]
    [InlineData(4, 2560)]
    [InlineData(5, 100)]    // columns not a multiple of 32 nor of 8
    [InlineData(8, 72)]
    public void The_avx2_several_token_f16_kernel_equals_the_single_token_kernel_bit_for_bit(int tokens, int columns)
    {
        if (!System.Runtime.Intrinsics.X86.Avx2.IsSupported || !System.Runtime.Intrinsics.X86.Fma.IsSupported)
            Assert.Skip("needs AVX2 and FMA");
        const int rows = 37, stride = 41;
        var rng = new Random(tokens * 1000 + columns);
        var matrix = new Half[rows * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (Half)(rng.NextDouble() * 4 - 2);
        matrix[3] = BitConverter.UInt16BitsToHalf(0x0001);   // subnormal
        matrix[5] = BitConverter.UInt16BitsToHalf(0x7C00);   // infinity
        var x = new float[tokens * columns];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 8 - 4);
        if (tokens > 2) x[2 * columns + 1] = 70000f;          // a token the kernels cannot scale: the reference path
        var together = new float[(tokens - 1) * stride + rows - 3];
        BitNet.Inference.Kernels.F16.DotRowsTokensAvx2(matrix, columns, x, tokens, 3, rows - 3, together, stride);
        for (int t = 0; t < tokens; t++)
        {
            var alone = new float[rows - 3];
            BitNet.Inference.Kernels.F16.DotRowsAvx2(matrix, columns, x.AsSpan(t * columns, columns), 3, rows - 3, alone);
            for (int r = 0; r < alone.Length; r++)
                Assert.True(BitConverter.SingleToInt32Bits(alone[r]) == BitConverter.SingleToInt32Bits(together[t * stride + r]),
                    $"token {t}, row {r}: {alone[r]} alone, {together[t * stride + r]} together");
        }
    }
}
