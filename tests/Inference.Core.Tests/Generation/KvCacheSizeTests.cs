using BitNet.Inference.Generation;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Generation;

/// <summary>
/// A KV cache larger than the model's pool can hold, or than the memory the process may use beside the
/// weights, is refused at load with a message saying how many positions fit, which hosts show as it is:
/// one line, no .NET parameter name, no "Actual value was".
/// </summary>
public class KvCacheSizeTests
{
    private const int Context = 64, BlockTokens = KvCachePool.DefaultBlockTokens;
    /// <summary>The memory limit the tests give the engine: room for 16 MiB of KV cache beside the whole model file.</summary>
    private static readonly long Limit = new FileInfo(SharedData.OracleModelPath).Length + (16L << 20);

    private static long MaxTokens()
    {
        using var file = GgufFile.Open(SharedData.OracleModelPath);
        return KvCachePool.MaxTokens(ModelConfig.FromGguf(file));
    }

    private static long BlockBytes()
    {
        using var file = GgufFile.Open(SharedData.OracleModelPath);
        return KvCachePool.BytesPerToken(ModelConfig.FromGguf(file)) * BlockTokens;
    }

    /// <summary>Whole blocks that fit beside <paramref name="weights"/> bytes within <see cref="Limit"/>, as positions.</summary>
    private static long Fitting(long weights) => (Limit - weights) / BlockBytes() * BlockTokens;

    private static BitNetEngine Load(long kvTokens, WeightStorage storage = WeightStorage.Auto) => BitNetEngine.Load(new EngineOptions
    {
        ModelPath = SharedData.OracleModelPath, Threads = 1, ContextLength = Context, KvCacheTokens = kvTokens, Storage = storage,
        MemoryLimitBytes = Limit,
    });

    [Fact]
    public void A_kv_cache_beyond_the_memory_left_beside_the_weights_is_refused_in_one_line_saying_how_much_fits()
    {
        long fit = Fitting(new FileInfo(SharedData.OracleModelPath).Length);
        long tokens = fit + BlockTokens;   // one block too many
        var refused = Assert.Throws<ArgumentException>(() => Load(tokens));
        Assert.Equal($"a KV cache of {tokens} tokens needs 16.1 MiB beside 70.7 MiB of weights, " +
            $"more than the 86.7 MiB of memory this process may use; at most {fit} tokens fit", refused.Message);
        Assert.Null(refused.ParamName);
        Assert.DoesNotContain('\n', refused.Message);

        using var engine = Load(fit);   // the most that fits loads
        Assert.Equal(fit, (long)engine.KvCache.BlockCount * engine.KvCache.BlockTokens);
    }

    [Fact]
    public void A_size_within_what_the_model_holds_but_far_beyond_the_memory_is_refused()
    {
        long tokens = MaxTokens();   // 32 GiB of this model's KV cache
        var refused = Assert.Throws<ArgumentException>(() => Load(tokens));
        Assert.StartsWith($"a KV cache of {tokens} tokens needs 32.0 GiB beside 70.7 MiB of weights, more than the 86.7 MiB", refused.Message);
    }

    [Fact]
    public void Mapped_weights_count_only_what_the_process_holds_privately()
    {
        using var file = GgufFile.Open(SharedData.OracleModelPath);
        var config = ModelConfig.FromGguf(file);
        long privateBytes = KvBudget.WeightBytes(file, config, WeightStorage.Mapped, LmHeadMode.F16);
        // The file less the I2_S matrices and the F16 head it uses in place (the tokenizer's strings, norms), and the int8 head q8 builds.
        Assert.InRange(privateBytes, 1, file.FileSize - config.VocabSize * config.EmbeddingLength * 2L);
        Assert.Equal(privateBytes + config.VocabSize * (long)config.EmbeddingLength, KvBudget.WeightBytes(file, config, WeightStorage.Mapped, LmHeadMode.Q8));
        Assert.Equal(file.FileSize, KvBudget.WeightBytes(file, config, WeightStorage.Memory, LmHeadMode.F16));
        Assert.Equal(file.FileSize, KvBudget.WeightBytes(file, config, WeightStorage.Auto, LmHeadMode.Screened));

        // The same size loads with the weights mapped and is refused with them in memory.
        long tokens = Fitting(privateBytes);
        using (var mapped = Load(tokens, WeightStorage.Mapped))
            Assert.Equal(tokens, (long)mapped.KvCache.BlockCount * mapped.KvCache.BlockTokens);
        Assert.Throws<ArgumentException>(() => Load(tokens, WeightStorage.Memory));
    }

    [Fact]
    public void The_default_size_still_loads_however_little_memory_is_left()
    {
        using (var engine = Load(0))   // no room after the model and the headroom: one whole context
            Assert.Equal(Context, engine.KvCache.BlockCount * engine.KvCache.BlockTokens);
        using var unlimited = BitNetEngine.Load(new EngineOptions { ModelPath = SharedData.OracleModelPath, Threads = 1, ContextLength = Context });
        Assert.True(unlimited.KvCache.BlockCount * unlimited.KvCache.BlockTokens >= Context);
    }

    private static long PerToken()
    {
        using var file = GgufFile.Open(SharedData.OracleModelPath);
        return KvCachePool.BytesPerToken(ModelConfig.FromGguf(file));
    }

    private static long MappedWeightBytes()
    {
        using var file = GgufFile.Open(SharedData.OracleModelPath);
        return KvBudget.WeightBytes(file, ModelConfig.FromGguf(file), WeightStorage.Mapped, LmHeadMode.F16);
    }

    /// <summary>The model's own context (4096), the default's <paramref name="parallel"/> generations, within <paramref name="limit"/>.</summary>
    private static BitNetEngine LoadDefault(long limit, WeightStorage storage = WeightStorage.Auto, int contextLength = 0, int parallel = 1) =>
        BitNetEngine.Load(new EngineOptions
        {
            ModelPath = SharedData.OracleModelPath, Threads = 1, ContextLength = contextLength, Parallel = parallel, Storage = storage,
            MemoryLimitBytes = limit,
        });

    [Fact]
    public void The_default_size_counts_mapped_weights_as_the_explicit_check_does()
    {
        // Room, beside what mapped weights hold privately and the headroom, for 4 of the 8 contexts asked for.
        long limit = MappedWeightBytes() + KvBudget.Headroom + 4 * Context * PerToken();
        using (var mapped = LoadDefault(limit, WeightStorage.Mapped, Context, parallel: 8))
            Assert.Equal(4 * Context, mapped.KvCache.BlockCount * mapped.KvCache.BlockTokens);
        // In private memory the whole file counts: no room beyond the one context that fits beside it.
        using var inMemory = LoadDefault(limit, WeightStorage.Memory, Context, parallel: 8);
        Assert.Equal(Context, inMemory.KvCache.BlockCount * inMemory.KvCache.BlockTokens);
    }

    [Fact]
    public void A_default_context_that_does_not_fit_shrinks_to_the_positions_that_do_and_says_so()
    {
        long fileBytes = new FileInfo(SharedData.OracleModelPath).Length;
        using var engine = LoadDefault(fileBytes + KvBudget.Headroom + 1000 * PerToken());
        Assert.Equal(992, engine.ContextLength);   // whole blocks of 32
        Assert.Equal(992, engine.KvCache.BlockCount * engine.KvCache.BlockTokens);
        Assert.Equal(992, engine.Model.ContextLength);
        Assert.StartsWith("the context is 992 tokens, not 4096: no more KV cache fits beside 70.7 MiB of weights and 256.0 MiB for the rest of the process within the ",
            engine.Model.KvCacheNote);

        using var roomy = LoadDefault(fileBytes + KvBudget.Headroom + 4096 * PerToken());
        Assert.Equal(4096, roomy.ContextLength);
        Assert.Null(roomy.Model.KvCacheNote);
    }

    [Fact]
    public void A_default_context_is_refused_in_one_line_when_not_even_the_smallest_fits()
    {
        long limit = new FileInfo(SharedData.OracleModelPath).Length + KvBudget.Headroom + 200 * PerToken();
        var refused = Assert.Throws<ArgumentException>(() => LoadDefault(limit));
        Assert.Equal("not even a context of 256 tokens fits beside 70.7 MiB of weights and 256.0 MiB for the rest of the process " +
            "within the 327.1 MiB of memory this process may use (room for 200 KV cache positions)", refused.Message);
        Assert.Null(refused.ParamName);
    }

    [Fact]
    public void A_context_set_by_hand_that_does_not_fit_beside_the_weights_is_refused_saying_how_many_tokens_fit()
    {
        long limit = new FileInfo(SharedData.OracleModelPath).Length + 1000 * PerToken();
        var refused = Assert.Throws<ArgumentException>(() => LoadDefault(limit, contextLength: 2048));
        Assert.Equal("a context of 2048 tokens needs a KV cache of 4.0 MiB beside 70.7 MiB of weights, " +
            "more than the 72.6 MiB of memory this process may use; at most 992 tokens fit", refused.Message);
    }

    public static TheoryData<long> TooLarge => [MaxTokens() + 1, int.MaxValue, 2_147_483_000];

    [Theory]
    [MemberData(nameof(TooLarge))]
    public void A_kv_cache_beyond_what_the_model_holds_is_refused_with_the_most_it_holds(long tokens)
    {
        var refused = Assert.Throws<ArgumentException>(() => BitNetEngine.Load(new EngineOptions
        {
            ModelPath = SharedData.OracleModelPath, Threads = 1, ContextLength = 64, KvCacheTokens = tokens,
        }));
        Assert.StartsWith($"a KV cache of {tokens} tokens is more than this model allows: at most {MaxTokens()} (", refused.Message);
        Assert.DoesNotContain("(Parameter", refused.Message);
        Assert.DoesNotContain("Actual value", refused.Message);
        Assert.Null(refused.ParamName);
    }
}
