using BitNet.Inference.Kernels;
using BitNet.Inference.Model;

// In the Kernels namespace so that the ISA fallbacks (scripts/test-isa.sh) and the ARM64 run under qemu
// check every set of value loops against the scalar order.
namespace BitNet.Inference.Tests.Kernels;

public class AttentionOrderTests
{
    private const float Big = 16777216f;   // 2^24: adding 1 to it rounds back to it, adding 2 does not

    private static float ValueSum(int partials, int positions, params (int Position, float Value)[] terms)
    {
        var p = new float[positions];
        var v = new float[positions];
        foreach (var (position, value) in terms) { p[position] = 1f; v[position] = value; }
        return AttentionOrder.ValueDot(p, v, partials);
    }

    [Fact]
    public void Decode_value_sum_adds_positions_8_apart_after_their_own_partials()
    {
        // Partials 0, 8 and 24: the tree adds (P0 + P16) + (P8 + P24), so the two ones meet first.
        Assert.Equal(Big + 2, ValueSum(AttentionOrder.DecodePartials, 32, (0, Big), (8, 1f), (24, 1f)));
        // The partials go round every 32 positions: 32, 40 and 56 land in partials 0, 8 and 24 too.
        Assert.Equal(Big + 2, ValueSum(AttentionOrder.DecodePartials, 60, (32, Big), (40, 1f), (56, 1f)));
        // Lanes 1 and 3 of the reduced register meet only at the last add, after each met the big lane's pair.
        Assert.Equal(Big, ValueSum(AttentionOrder.DecodePartials, 32, (0, Big), (1, 1f), (3, 1f)));
    }

    [Fact]
    public void Prompt_value_sum_adds_lanes_by_the_horizontal_sum_tree()
    {
        // ((l4 + l0) + (l6 + l2)) + ((l5 + l1) + (l7 + l3)): lanes 1 and 3 meet before the big lane.
        Assert.Equal(Big + 2, ValueSum(AttentionOrder.PromptPartials, 8, (0, Big), (1, 1f), (3, 1f)));
        // Lanes 1 and 5 are paired first as well.
        Assert.Equal(Big + 2, ValueSum(AttentionOrder.PromptPartials, 8, (0, Big), (1, 1f), (5, 1f)));
        // Positions 0, 8 and 16 share lane 0, summed in position order.
        Assert.Equal(Big, ValueSum(AttentionOrder.PromptPartials, 24, (0, Big), (8, 1f), (16, 1f)));
    }

    [Fact]
    public void Value_sum_refuses_a_partial_count_no_build_uses()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => AttentionOrder.ValueDot(new float[4], new float[4], 16));
        Assert.Throws<ArgumentOutOfRangeException>(() => AttentionOrder.CombinePartialRows(new float[64], 16, 4, new float[4]));
    }

    [Fact]
    public void Soft_max_uses_the_polynomial_exp_and_sums_groups_of_eight_in_float_then_in_double()
    {
        var rng = new Random(7);
        var scores = new float[11];
        for (int i = 0; i < scores.Length; i++) scores[i] = (float)(rng.NextDouble() * 20 - 10);
        float max = scores.Max();
        var e = scores.Select(x => VectorMath.PolynomialExp(x - max)).ToArray();
        float first = ((e[4] + e[0]) + (e[6] + e[2])) + ((e[5] + e[1]) + (e[7] + e[3]));
        float second = (e[8] + e[10]) + e[9];   // the last group's missing lanes add zeros
        float inverse = (float)(1.0 / ((double)first + second));

        AttentionOrder.SoftMax(scores);

        for (int i = 0; i < scores.Length; i++) Assert.Equal(e[i] * inverse, scores[i]);
        Assert.Equal(1.0, scores.Sum(x => (double)x), 1e-6);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    [InlineData(13)]
    [InlineData(150)]
    [InlineData(1001)]
    public void Soft_max_of_any_length_equals_the_scalar_order_bit_for_bit(int n)
    {
        var rng = new Random(n);
        var scores = new float[n];
        for (int i = 0; i < n; i++) scores[i] = (float)(rng.NextDouble() * 40 - 30) * (i % 11 == 5 ? 20 : 1);   // some far below the max
        AssertSoftMaxInScalarOrder(scores);
    }

    [Fact]
    public void Soft_max_sums_each_group_in_the_trees_order()
    {
        // Per group one weight of 1 and seven of e^−15.6 … e^−17.5 (a fifth to a whole ulp of 1): the
        // tree, pairs of halves added in turn, and a left-to-right sum give three different floats.
        float[] scores = [0f, -16.4f, -15.6f, -16.7f, -17.1f, -16.7f, -17.4f, -17.1f,
            0f, -15.9f, -17f, -15.8f, -16.2f, -17.3f, -17.5f, -17.5f, -3f];
        AssertSoftMaxInScalarOrder(scores);
    }

    /// <summary>SoftMax against its definition spelled out: the polynomial exp, SumOfEight per group
    /// (missing lanes zero), the group sums in double.</summary>
    private static void AssertSoftMaxInScalarOrder(float[] scores)
    {
        int n = scores.Length;
        float max = scores.Max();
        var e = scores.Select(x => VectorMath.PolynomialExp(x - max)).ToArray();
        double sum = 0;
        var group = new float[8];
        for (int i = 0; i < n; i += 8)
        {
            for (int r = 0; r < 8; r++) group[r] = i + r < n ? e[i + r] : 0f;
            sum += AttentionOrder.SumOfEight(group);
        }
        float inverse = (float)(1.0 / sum);

        AttentionOrder.SoftMax(scores);

        for (int i = 0; i < n; i++)
            Assert.True(BitConverter.SingleToInt32Bits(e[i] * inverse) == BitConverter.SingleToInt32Bits(scores[i]),
                $"position {i}: scalar order {e[i] * inverse:R}, soft-max {scores[i]:R}");
    }

    [Theory]
    [InlineData(AttentionOrder.DecodePartials)]
    [InlineData(AttentionOrder.PromptPartials)]
    public void Combining_partial_rows_equals_combining_each_element(int partials)
    {
        const int width = 37;   // not a multiple of any vector width
        var rng = new Random(partials);
        var rows = new float[partials * width];
        for (int i = 0; i < rows.Length; i++) rows[i] = (float)(rng.NextDouble() * 2 - 1) * (i % 5 == 0 ? 1e6f : 1f);
        var expected = new float[width];
        var lanes = new float[partials];
        for (int i = 0; i < width; i++)
        {
            for (int m = 0; m < partials; m++) lanes[m] = rows[m * width + i];
            expected[i] = partials == AttentionOrder.DecodePartials ? AttentionOrder.CombineDecodePartials(lanes) : AttentionOrder.SumOfEight(lanes);
        }
        var output = new float[width];
        AttentionOrder.CombinePartialRows(rows, partials, width, output);
        Assert.Equal(expected, output);
    }

    public static TheoryData<string, int, int, int> ValueLoopCases()
    {
        var data = new TheoryData<string, int, int, int>();
        foreach (string loops in new[] { "General", "Fused128", "Fused256" })
            foreach (int partials in new[] { AttentionOrder.DecodePartials, AttentionOrder.PromptPartials })
            {
                data.Add(loops, partials, 1, 128);
                data.Add(loops, partials, 7, 128);      // fewer positions than partials: the empty ones add zeros
                data.Add(loops, partials, 33, 128);
                data.Add(loops, partials, 200, 128);
                data.Add(loops, partials, 600, 128);    // tiles of 256 positions in the fused loops: two whole, one part
                data.Add(loops, partials, 300, 72);     // and with an odd 8 dimensions
                data.Add(loops, partials, 77, 72);      // the loops take 16 dimensions at a time: 72 leaves an odd 8
                data.Add(loops, partials, 45, 8);
            }
        // The 512-bit loop takes 64 dimensions at a time (head_dim a multiple of 64).
        foreach (int partials in new[] { AttentionOrder.DecodePartials, AttentionOrder.PromptPartials })
        {
            data.Add("Fused512", partials, 1, 128);
            data.Add("Fused512", partials, 7, 128);
            data.Add("Fused512", partials, 33, 128);
            data.Add("Fused512", partials, 200, 128);
            data.Add("Fused512", partials, 600, 128);    // tiles of 256 positions: two whole, one part
            data.Add("Fused512", partials, 77, 64);
            data.Add("Fused512", partials, 45, 192);
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(ValueLoopCases))]
    public void Every_value_loop_sums_in_the_scalar_order_bit_for_bit(string loopsName, int partials, int positions, int headDim)
    {
        var loops = Enum.Parse<Attention.Loops>(loopsName);
        const int heads = 4;
        if (!Attention.CanUse(loops, heads, headDim))
            Assert.Skip($"{loops} is not available on this machine");
        var rng = new Random(positions * 131 + headDim + partials);
        // Rows scattered as in a paged cache: each position's row at its own offset, out of order.
        int stride = headDim + 8;
        var order = Enumerable.Range(0, positions).OrderBy(_ => rng.Next()).ToArray();
        var offsets = order.Select(slot => slot * stride).ToArray();
        var values = new Half[positions * stride];
        for (int i = 0; i < values.Length; i++) values[i] = (Half)((rng.NextDouble() * 2 - 1) * (i % 7 == 0 ? 100 : 1));
        values[offsets[0] + 3] = BitConverter.UInt16BitsToHalf(0x0001);   // a subnormal half must widen exactly too
        var p = new float[heads * positions];
        for (int i = 0; i < p.Length; i++) p[i] = (float)(Half)rng.NextDouble();
        var scaled = p.Select(x => x * F16.ScaledValueFactor).ToArray();

        var ours = new float[heads * headDim];
        Attention.SumValues(loops, scaled, values, offsets, heads, headDim, positions, partials,
            new float[AttentionOrder.DecodePartials * heads * headDim], ours);

        var column = new float[positions];
        for (int h = 0; h < heads; h++)
            for (int d = 0; d < headDim; d++)
            {
                for (int j = 0; j < positions; j++) column[j] = (float)values[offsets[j] + d];
                float expected = AttentionOrder.ValueDot(p.AsSpan(h * positions, positions), column, partials);
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(ours[h * headDim + d]),
                    $"head {h}, dimension {d}: scalar order {expected:R}, {loops} {ours[h * headDim + d]:R}");
            }
    }

    [Fact]
    public void Value_loops_refuse_a_row_outside_the_cache()
    {
        var values = new Half[4 * 8];
        var ex = Assert.Throws<ArgumentException>(() => Attention.SumValues(Attention.Loops.General, new float[4], values, [8 * 4 - 4], 4, 8, 1,
            AttentionOrder.PromptPartials, new float[AttentionOrder.DecodePartials * 32], new float[32]));
        Assert.Contains("outside the cache", ex.Message);
    }
}
