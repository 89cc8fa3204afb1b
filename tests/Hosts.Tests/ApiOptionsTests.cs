using BitNet.Inference.Api;
using BitNet.Inference.Hub;

namespace BitNet.Hosts.Tests;

public sealed class ApiOptionsTests
{
    private static ApiOptions Parse(params (string Name, string Value)[] variables) =>
        ApiOptions.FromEnvironment(new DictionaryEnvironment(variables.ToDictionary(v => v.Name, v => (string?)v.Value), "/home/u"));

    [Fact]
    public void Unset_variables_keep_the_documented_defaults()
    {
        ApiOptions options = Parse();
        Assert.Null(options.ModelPath);
        Assert.Equal(4096, options.ContextLength);
        Assert.Equal(32, options.QueueDepth);
        Assert.Equal(TimeSpan.FromSeconds(10), options.QueueKeepAlive);
        Assert.Equal(512, options.DefaultMaxTokens);
        Assert.Null(options.LmHead);
        Assert.Equal("screened", options.EffectiveLmHead);
        Assert.Equal("auto", options.Weights);
        Assert.Equal(KeepWarmTouch.First, options.KeepWarmTouch);
        Assert.Equal(1 << 20, options.MaxRequestBytes);
        Assert.False(options.LambdaStreaming);
        Assert.Empty(options.CorsOrigins);
        Assert.Equal("127.0.0.1", options.Host);
        Assert.Equal(8080, options.Port);
    }

    [Fact]
    public void Every_variable_is_read()
    {
        ApiOptions options = Parse(
            (EnvVars.Model, "/m.gguf"), (EnvVars.ModelId, "bitnet"), (EnvVars.Threads, "3"), (EnvVars.ContextLength, "2048"),
            (EnvVars.LmHead, "Q8"), (EnvVars.PreTokenizer, "default"), (EnvVars.PrefetchModel, "false"), (EnvVars.QueueDepth, "0"),
            (EnvVars.ApiKey, "k"), (EnvVars.DefaultMaxTokens, "64"), (EnvVars.RequestTimeoutSeconds, "30"),
            (EnvVars.MaxRequestBytes, "4096"), (EnvVars.CorsOrigins, "https://a.example, https://b.example"),
            (EnvVars.KeepWarmTouch, "always"), (EnvVars.Host, "0.0.0.0"), (EnvVars.Port, "9000"),
            (EnvVars.ShutdownTimeoutSeconds, "5"), (EnvVars.LambdaStreaming, "true"), (EnvVars.LambdaDeadlineMarginMs, "250"),
            (EnvVars.Weights, "Mapped"), (EnvVars.QueueKeepAliveSeconds, "25"));
        Assert.Equal(new ApiOptions
        {
            ModelPath = "/m.gguf", ModelId = "bitnet", Threads = 3, ContextLength = 2048, LmHead = "q8", Weights = "mapped", PreTokenizer = "default",
            PrefetchModel = false, QueueDepth = 0, QueueKeepAlive = TimeSpan.FromSeconds(25), ApiKey = "k", DefaultMaxTokens = 64, RequestTimeout = TimeSpan.FromSeconds(30),
            MaxRequestBytes = 4096, CorsOrigins = options.CorsOrigins, KeepWarmTouch = KeepWarmTouch.Always, Host = "0.0.0.0", Port = 9000,
            ShutdownTimeout = TimeSpan.FromSeconds(5), LambdaStreaming = true, LambdaDeadlineMargin = TimeSpan.FromMilliseconds(250),
        }, options);
        Assert.Equal(["https://a.example", "https://b.example"], options.CorsOrigins);
    }

    [Theory]
    [InlineData("f16")]
    [InlineData("q8")]
    [InlineData(" Screened ")]
    public void Every_lm_head_mode_is_accepted_and_maps_to_the_engine_mode(string value)
    {
        ApiOptions options = Parse((EnvVars.LmHead, value));
        Assert.Equal(value.Trim().ToLowerInvariant(), options.LmHead);
        Assert.Equal(value.Trim().ToLowerInvariant(), BitNet.Inference.Model.LmHeadModes.Name(BitNet.Inference.Model.LmHeadModes.Parse(options.EffectiveLmHead)));
    }

    [Theory]
    [InlineData("auto")]
    [InlineData("memory")]
    [InlineData(" MAPPED")]
    [InlineData("Move")]
    public void Every_weight_storage_is_accepted_and_maps_to_the_engine_storage(string value)
    {
        ApiOptions options = Parse((EnvVars.Weights, value));
        Assert.Equal(value.Trim().ToLowerInvariant(), options.Weights);
        Assert.Equal(value.Trim().ToLowerInvariant(), BitNet.Inference.Model.WeightStorages.Name(BitNet.Inference.Model.WeightStorages.Parse(options.Weights)));
    }

    [Theory]
    [InlineData(EnvVars.Threads, "many", "an integer")]
    [InlineData(EnvVars.Threads, "0", "from 1")]
    [InlineData(EnvVars.QueueDepth, "-1", "from 0")]
    [InlineData(EnvVars.QueueKeepAliveSeconds, "0", "from 1 to 3600")]
    [InlineData(EnvVars.LmHead, "f32", "f16, q8, screened")]
    [InlineData(EnvVars.Weights, "disk", "auto, memory, mapped, move")]
    [InlineData(EnvVars.KeepWarmTouch, "sometimes", "first, always, never")]
    [InlineData(EnvVars.LambdaStreaming, "maybe", "true or false")]
    [InlineData(EnvVars.Port, "70000", "to 65535")]
    [InlineData(EnvVars.PreTokenizer, "gpt2", "llama3, default")]
    public void A_bad_value_throws_naming_the_variable_and_what_it_accepts(string name, string value, string hint)
    {
        var ex = Assert.Throws<ConfigurationException>(() => Parse((name, value)));
        Assert.Contains(name, ex.Message);
        Assert.Contains(value, ex.Message);
        Assert.Contains(hint, ex.Message);
    }
}

public sealed class BatchingOptionsTests
{
    private static ApiOptions Parse(params (string Name, string Value)[] variables) =>
        ApiOptions.FromEnvironment(new DictionaryEnvironment(variables.ToDictionary(v => v.Name, v => (string?)v.Value), "/home/u"));

    [Fact]
    public void Batching_variables_are_read_and_unset_ones_leave_the_host_default()
    {
        ApiOptions unset = Parse();
        Assert.Equal(0, unset.Parallel);
        Assert.Equal(ApiOptions.DefaultParallel, unset.EffectiveParallel);
        Assert.Equal(0, unset.KvCacheTokens);
        Assert.Equal(64, unset.PromptTokensPerStep);

        ApiOptions set = Parse((EnvVars.Parallel, "6"), (EnvVars.KvCacheTokens, "20000"), (EnvVars.PromptTokensPerStep, "32"));
        Assert.Equal(6, set.EffectiveParallel);
        Assert.Equal(20000, set.KvCacheTokens);
        Assert.Equal(32, set.PromptTokensPerStep);
    }

    [Theory]
    [InlineData(EnvVars.Parallel, "0")]
    [InlineData(EnvVars.Parallel, "many")]
    [InlineData(EnvVars.KvCacheTokens, "8")]
    [InlineData(EnvVars.KvCacheTokens, "2147483647")]
    [InlineData(EnvVars.KvCacheTokens, "2147483000")]
    [InlineData(EnvVars.PromptTokensPerStep, "2")]
    public void A_bad_batching_value_names_its_variable(string name, string value)
    {
        var error = Assert.Throws<ConfigurationException>(() => Parse((name, value)));
        Assert.StartsWith($"{name}='{value}' is not valid: expected an integer from ", error.Message);
    }
}
