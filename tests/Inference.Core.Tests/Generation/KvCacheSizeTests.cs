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
