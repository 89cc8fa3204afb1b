using BitNet.Inference.Generation;
using BitNet.Inference.Model;

namespace BitNet.Inference.Tests.Model;

public class KvCachePoolTests
{
    private static readonly ModelConfig Config = new()
    {
        Architecture = "bitnet-b1.58", Name = "pool-test", VocabSize = 16, ContextLength = 256,
        EmbeddingLength = 64, LayerCount = 2, HeadCount = 4, KvHeadCount = 2, FeedForwardLength = 64,
        RmsNormEpsilon = 1e-5f, RopeFreqBase = 10000, RopeDimensionCount = 16,
    };

    private static int[] Tokens(int start, int count) => Enumerable.Range(start, count).ToArray();

    [Theory]
    [InlineData(8)]
    [InlineData(KvCachePool.DefaultBlockTokens)]
    public void The_most_tokens_a_pool_holds_are_the_whole_blocks_whose_layer_array_fits_and_one_block_more_is_refused(int blockTokens)
    {
        long max = KvCachePool.MaxTokens(Config, blockTokens);
        Assert.Equal(0, max % blockTokens);
        Assert.True(max * Config.KvDim <= Array.MaxLength);
        Assert.True((max + blockTokens) * Config.KvDim > Array.MaxLength);
        // Refused before anything is allocated.
        Assert.Throws<ArgumentOutOfRangeException>(() => new KvCachePool(Config, (int)(max / blockTokens) + 1, blockTokens));
    }

    [Fact]
    public void A_sequence_takes_blocks_as_it_grows_and_returns_them_when_cleared()
    {
        var pool = new KvCachePool(Config, blocks: 4, blockTokens: 8);
        var sequence = new KvSequence(pool, 32);
        Assert.True(sequence.TryReserve(1));
        Assert.Equal(1, pool.UsedBlocks);
        Assert.True(sequence.TryReserve(9));
        Assert.Equal(2, pool.UsedBlocks);
        sequence.Length = 9;
        sequence.Truncate(8);
        Assert.Equal(1, pool.UsedBlocks);
        sequence.Clear();
        Assert.Equal(0, pool.UsedBlocks);
        Assert.Equal(4, pool.FreeBlocks);
    }

    [Fact]
    public void Reserving_more_than_the_pool_holds_takes_nothing()
    {
        var pool = new KvCachePool(Config, blocks: 2, blockTokens: 8);
        var first = new KvSequence(pool, 64);
        var second = new KvSequence(pool, 64);
        Assert.True(first.TryReserve(8));
        Assert.False(second.TryReserve(16));
        Assert.Equal(0, second.BlockCount);
        Assert.Equal(1, pool.FreeBlocks);
    }

    [Fact]
    public void A_sequence_cannot_reserve_past_its_capacity()
    {
        var pool = new KvCachePool(Config, blocks: 8, blockTokens: 8);
        Assert.Throws<ContextLengthExceededException>(() => new KvSequence(pool, 10).TryReserve(11));
    }

    [Fact]
    public void A_registered_block_is_shared_with_a_reference_per_holder_and_cached_when_released()
    {
        var pool = new KvCachePool(Config, blocks: 3, blockTokens: 4);
        var owner = new KvSequence(pool, 16);
        Assert.True(owner.TryReserve(4));
        int block = owner.Block(0);
        ulong hash = KvCachePool.PrefixHash(0, Tokens(1, 4));
        pool.Register(block, 0, -1, Tokens(1, 4));

        Assert.Equal(block, pool.TryShare(hash, -1, Tokens(1, 4)));
        Assert.Equal(2, pool.References(block));
        Assert.Equal(-1, pool.TryShare(hash, -1, Tokens(2, 4)));          // other tokens under the same hash: no hit
        Assert.Equal(-1, pool.TryShare(hash, parent: 0, Tokens(1, 4)));   // another parent: no hit
        pool.Release(block);
        owner.Clear();
        Assert.Equal(1, pool.CachedBlocks);
        Assert.Equal(3, pool.FreeBlocks);
        Assert.Equal(block, pool.TryShare(hash, -1, Tokens(1, 4)));      // found again after its users left
        Assert.Equal(0, pool.CachedBlocks);
    }

    [Fact]
    public void Empty_blocks_are_taken_before_cached_prefixes_and_the_oldest_cached_one_goes_first()
    {
        var pool = new KvCachePool(Config, blocks: 3, blockTokens: 4);
        var a = new KvSequence(pool, 8);
        Assert.True(a.TryReserve(8));
        ulong h0 = KvCachePool.PrefixHash(0, Tokens(0, 4)), h1 = KvCachePool.PrefixHash(h0, Tokens(4, 4));
        int first = a.Block(0), second = a.Block(1);
        pool.Register(first, 0, -1, Tokens(0, 4));
        pool.Register(second, h0, first, Tokens(4, 4));
        a.Clear();   // the later block is released first, so it is the first to be reused
        Assert.Equal(2, pool.CachedBlocks);

        var b = new KvSequence(pool, 12);
        Assert.True(b.TryReserve(4));
        Assert.Equal(2, pool.CachedBlocks);                  // the empty block went first
        Assert.True(b.TryReserve(8));
        Assert.Equal(1, pool.CachedBlocks);
        Assert.Equal(second, b.Block(1));
        Assert.Equal(-1, pool.TryShare(h1, first, Tokens(4, 4)));   // its prefix was forgotten
        Assert.Equal(first, pool.TryShare(h0, -1, Tokens(0, 4)));   // the prefix's first block is still cached
    }

    [Fact]
    public void Registering_a_full_block_returns_its_prefix_hash_and_a_partial_one_returns_0()
    {
        var pool = new KvCachePool(Config, blocks: 3, blockTokens: 4);
        var owner = new KvSequence(pool, 12);
        Assert.True(owner.TryReserve(12));
        ulong h0 = KvCachePool.PrefixHash(0, Tokens(0, 4));
        Assert.Equal(h0, pool.Register(owner.Block(0), 0, -1, Tokens(0, 4)));
        Assert.Equal(h0, pool.Register(owner.Block(0), 0, -1, Tokens(0, 4)));   // registered again: the same hash
        Assert.Equal(0UL, pool.Register(owner.Block(1), h0, owner.Block(0), Tokens(4, 3)));
        ulong h1 = pool.Register(owner.Block(1), h0, owner.Block(0), Tokens(4, 4));   // the block filled up
        Assert.Equal(KvCachePool.PrefixHash(h0, Tokens(4, 4)), h1);
        Assert.Equal(owner.Block(1), pool.Find(h1, owner.Block(0), Tokens(4, 4)));
        Assert.Equal(KvCachePool.PrefixHash(h1, Tokens(8, 4)), pool.Register(owner.Block(2), h1, owner.Block(1), Tokens(8, 4)));
    }

    [Fact]
    public void The_first_positions_of_a_registered_block_are_found_by_their_longest_run_and_copied()
    {
        var pool = new KvCachePool(Config, blocks: 4, blockTokens: 4);
        var owner = new KvSequence(pool, 16);
        Assert.True(owner.TryReserve(6));
        int first = owner.Block(0), second = owner.Block(1);
        pool.Register(first, 0, -1, Tokens(0, 4));
        ulong h0 = KvCachePool.PrefixHash(0, Tokens(0, 4));
        pool.Register(second, h0, first, Tokens(4, 1));   // a prompt's last block, one position evaluated
        pool.Register(second, h0, first, Tokens(4, 2));   // the next chunk's position too
        for (int l = 0; l < Config.LayerCount; l++)
            for (int i = 0; i < pool.BlockTokens * Config.KvDim; i++)
            {
                pool.Keys[l][pool.Offset(second, 0) + i] = (Half)(l + 1 + i);
                pool.Values[l][pool.Offset(second, 0) + i] = (Half)(-l - 1 - i);
            }

        Assert.Equal(second, pool.LongestRun(h0, first, [4, 5, 9], pin: false, out int run));
        Assert.Equal(2, run);
        Assert.Equal(second, pool.LongestRun(h0, first, [4, 9], pin: false, out run));
        Assert.Equal(1, run);
        Assert.Equal(-1, pool.LongestRun(h0, first, [5, 4], pin: false, out run));       // no block begins with 5
        Assert.Equal(-1, pool.LongestRun(h0 ^ 1, first, [4, 5], pin: false, out run));   // after another prefix
        Assert.Equal(-1, pool.LongestRun(h0, -1, [4, 5], pin: false, out run));          // after another block
        Assert.Equal(first, pool.LongestRun(0, -1, [0, 1, 2, 3], pin: false, out run));  // a whole block's first positions too
        Assert.Equal(4, run);
        Assert.Equal(-1, pool.Find(KvCachePool.PrefixHash(h0, [4, 5, 6, 7]), first, [4, 5, 6, 7]));   // a partial block has no prefix hash

        Assert.Equal(second, pool.LongestRun(h0, first, [4, 5], pin: true, out run));
        Assert.Equal(2, pool.References(second));
        var copy = new KvSequence(pool, 16);
        Assert.True(copy.TryReserve(1));
        int target = copy.Block(0);
        pool.CopyPositions(second, target, run);
        pool.Release(second);
        Assert.Equal(1, pool.References(second));
        for (int l = 0; l < Config.LayerCount; l++)
            for (int h = 0; h < Config.KvHeadCount; h++)
            {
                var keys = pool.Keys[l].AsSpan(pool.Offset(target, h), pool.BlockTokens * Config.HeadDim);
                var values = pool.Values[l].AsSpan(pool.Offset(target, h), pool.BlockTokens * Config.HeadDim);
                Assert.True(keys[..(run * Config.HeadDim)].SequenceEqual(pool.Keys[l].AsSpan(pool.Offset(second, h), run * Config.HeadDim)));
                Assert.True(values[..(run * Config.HeadDim)].SequenceEqual(pool.Values[l].AsSpan(pool.Offset(second, h), run * Config.HeadDim)));
                Assert.All(keys[(run * Config.HeadDim)..].ToArray(), k => Assert.Equal((Half)0, k));
            }

        // Registered positions may grow, never change.
        Assert.Throws<InvalidOperationException>(() => pool.Register(second, h0, first, [4, 9]));
        Assert.Throws<InvalidOperationException>(() => pool.Register(second, h0, first, [4]));
    }

    [Fact]
    public void Memory_budgets_fit_the_limit_and_shrink_only_a_default_context()
    {
        long perToken = KvCachePool.BytesPerToken(Config);
        Assert.Equal(2L * 2 * Config.LayerCount * Config.KvDim, perToken);
        KvSize Default(int context, long weights, long limit, bool contextGiven = false) =>
            KvBudget.Size(Config, 0, 4, context, contextGiven, weights, limit);
        // Plenty of memory: every parallel sequence gets the whole context.
        Assert.Equal(new KvSize(4 * 256, 256), Default(256, 1000, 1L << 40));
        // Room for 300 positions after the weights and the headroom: 300, not 4 × 256.
        long limit = 1000 + KvBudget.Headroom + 300 * perToken;
        Assert.Equal(new KvSize(300, 256), Default(256, 1000, limit));
        // Not one default context of 1024: it shrinks to the whole blocks that fit, and says so.
        KvSize shrunk = Default(1024, 1000, limit);
        Assert.Equal((288, 288), (shrunk.Tokens, shrunk.ContextLength));
        Assert.StartsWith("the context is 288 tokens, not 1024: no more KV cache fits beside 0.0 MiB of weights and 256.0 MiB for the rest", shrunk.Note);
        // A context set by hand is kept while it fits beside the weights, the headroom aside, else refused.
        Assert.Equal(new KvSize(1024, 1024), Default(1024, 1000, 1000 + 1024 * perToken, contextGiven: true));
        var refused = Assert.Throws<ArgumentException>(() => Default(1024, 1000, 1000 + 1000 * perToken, contextGiven: true));
        Assert.Matches(@"^a context of 1024 tokens needs a KV cache of [\d.]+ MiB beside 0\.0 MiB of weights, more than the [\d.]+ MiB of memory this process may use; at most 992 tokens fit$", refused.Message);
        // Not even the floor: refused rather than a cache the process cannot hold.
        refused = Assert.Throws<ArgumentException>(() => Default(1024, 1000, 1000 + KvBudget.Headroom + 200 * perToken));
        Assert.StartsWith($"not even a context of {KvBudget.MinFallbackTokens} tokens fits beside", refused.Message);
        Assert.EndsWith("(room for 200 KV cache positions)", refused.Message);
        Assert.Equal(8, KvBudget.Blocks(250, 256, blockTokens: 32));
    }
}
