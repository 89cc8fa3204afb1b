using BitNet.Inference.Model;

// In the Kernels namespace so that the ISA fallbacks (scripts/test-isa.sh) and the ARM64 run under qemu
// check the paged reads with every set of attention loops.
namespace BitNet.Inference.Tests.Kernels;

public class PagedAttentionTests
{
    private static ModelConfig Config(int headDim) => new()
    {
        Architecture = "bitnet-b1.58", Name = "paged-attention-test", VocabSize = 16, ContextLength = 512,
        EmbeddingLength = 8 * headDim, LayerCount = 2, HeadCount = 8, KvHeadCount = 2, FeedForwardLength = 256,
        RmsNormEpsilon = 1e-5f, RopeFreqBase = 10000, RopeDimensionCount = headDim,
    };

    public static TheoryData<int, int, bool, int, string> Cases()
    {
        var data = new TheoryData<int, int, bool, int, string>();
        foreach (string loops in new[] { "General", "Fused128", "Fused256" })
        {
            data.Add(1, 32, false, 128, loops);
            data.Add(33, 32, true, 128, loops);      // one position into the second block
            data.Add(200, 32, false, 128, loops);
            data.Add(200, 16, true, 72, loops);      // an odd 8 dimensions, blocks shorter than the value loop's 64
            data.Add(130, 128, false, 128, loops);   // blocks longer than the value loop's 64
            data.Add(9, 3, false, 8, loops);         // an odd block size: pairs of positions split across blocks
        }
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Attention_over_scattered_blocks_equals_the_contiguous_cache_bit_for_bit(int positions, int blockTokens, bool roundProbabilities, int headDim, string loopsName)
    {
        var loops = Enum.Parse<Attention.Loops>(loopsName);
        ModelConfig c = Config(headDim);
        if (!Attention.CanUse(loops, c.GroupSize, c.HeadDim))
            Assert.Skip($"{loops} is not available on this machine");
        var rng = new Random(positions * 31 + blockTokens);
        int blocksNeeded = (positions + blockTokens - 1) / blockTokens;
        var pool = new KvCachePool(c, blocksNeeded * 2 + 3, blockTokens);
        // The sequence's blocks out of order in the pool, with other blocks between them.
        var blocks = Enumerable.Range(0, pool.BlockCount).OrderBy(_ => rng.Next()).Take(blocksNeeded).ToArray();
        const int layer = 1;

        var q = new float[c.EmbeddingLength];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 4 - 2);
        var keys = new Half[positions * c.KvDim];      // position-major [position][kv_dim]
        var values = new Half[positions * c.KvDim];
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = (Half)(rng.NextDouble() * 2 - 1);
            values[i] = (Half)(rng.NextDouble() * 2 - 1);
        }
        for (int i = 0; i < pool.Keys[layer].Length; i++) pool.Keys[layer][i] = pool.Values[layer][i] = (Half)1000f;   // other blocks hold noise
        for (int p = 0; p < positions; p++)
            for (int h = 0; h < c.KvHeadCount; h++)
            {
                int at = pool.Offset(blocks[p / blockTokens], h) + p % blockTokens * headDim;
                keys.AsSpan(p * c.KvDim + h * headDim, headDim).CopyTo(pool.Keys[layer].AsSpan(at, headDim));
                values.AsSpan(p * c.KvDim + h * headDim, headDim).CopyTo(pool.Values[layer].AsSpan(at, headDim));
            }

        for (int group = 0; group < c.KvHeadCount; group++)
        {
            var contiguous = new float[c.EmbeddingLength];
            var paged = new float[c.EmbeddingLength];
            Attention.ComputeGroup(c, q, keys, values, positions - 1, group, contiguous, roundProbabilities, 0, loops);
            Attention.ComputeGroupPaged(c, q, pool, layer, blocks, positions - 1, group, paged, roundProbabilities, 0, loops);
            Assert.Equal(contiguous, paged);
        }
    }
}
