using BitNet.Inference.Model;

namespace BitNet.Inference.Tests.Model;

public class AttentionKernelTests
{
    private static ModelConfig Config(int heads, int kvHeads, int embd) => new()
    {
        Architecture = "bitnet-b1.58", Name = "attention-test", VocabSize = 16, ContextLength = 512,
        EmbeddingLength = embd, LayerCount = 1, HeadCount = heads, KvHeadCount = kvHeads, FeedForwardLength = 256,
        RmsNormEpsilon = 1e-5f, RopeFreqBase = 10000, RopeDimensionCount = embd / heads,
    };

    [Theory]
    [InlineData(1, false, 128)]
    [InlineData(37, false, 128)]
    [InlineData(300, false, 128)]
    [InlineData(300, true, 128)]
    [InlineData(37, false, 72)]    // the loops take 16 dimensions at a time: 72 leaves an odd 8
    [InlineData(2, false, 8)]
    public void Fused_four_head_group_matches_the_general_loops(int positions, bool roundProbabilities, int headDim)
    {
        // 2B4T's shape: 4 query heads per KV head, head_dim 128 (and narrower heads).
        ModelConfig c = Config(heads: 8, kvHeads: 2, embd: 8 * headDim);
        Assert.True(Attention.FourHeadsFused(c.GroupSize, c.HeadDim), "this machine should take the fused path (Vector256 accelerated)");
        var rng = new Random(positions);
        var q = new float[c.EmbeddingLength];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 4 - 2);
        var keys = new Half[positions * c.KvDim];
        var values = new Half[positions * c.KvDim];
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = (Half)(rng.NextDouble() * 2 - 1);
            values[i] = (Half)(rng.NextDouble() * 2 - 1);
        }
        keys[3] = BitConverter.UInt16BitsToHalf(0x0001);   // a subnormal half must widen exactly too

        for (int group = 0; group < c.KvHeadCount; group++)
        {
            var general = new float[c.EmbeddingLength];
            var fused = new float[c.EmbeddingLength];
            Attention.ComputeGroup(c, q, keys, values, positions - 1, group, general, roundProbabilities, 0, fused: false);
            Attention.ComputeGroup(c, q, keys, values, positions - 1, group, fused, roundProbabilities, 0, fused: true);
            // The score sums run in a different lane order, so results agree to float rounding, not bits.
            for (int i = 0; i < general.Length; i++)
                Assert.True(Math.Abs(general[i] - fused[i]) <= 1e-5f * (1 + Math.Abs(general[i])),
                    $"group {group}, element {i}: general {general[i]}, fused {fused[i]}");
            // Heads outside the group are left alone.
            int firstHead = group * c.GroupSize;
            for (int i = 0; i < fused.Length; i++)
                if (i / c.HeadDim < firstHead || i / c.HeadDim >= firstHead + c.GroupSize) Assert.Equal(0f, fused[i]);
        }
    }
}
