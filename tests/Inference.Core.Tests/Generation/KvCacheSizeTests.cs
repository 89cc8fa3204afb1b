using BitNet.Inference.Generation;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Generation;

/// <summary>
/// A KV cache larger than the model's pool can hold is refused at load with a message saying how many
/// positions it holds, which hosts show as it is: no .NET parameter name, no "Actual value was".
/// </summary>
public class KvCacheSizeTests
{
    private static long MaxTokens()
    {
        using var file = GgufFile.Open(SharedData.OracleModelPath);
        return KvCachePool.MaxTokens(ModelConfig.FromGguf(file));
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
