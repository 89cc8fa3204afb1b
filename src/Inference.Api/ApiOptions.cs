using System.Globalization;
using BitNet.Inference.Hub;

namespace BitNet.Inference.Api;

/// <summary>What a keep-warm ping does besides answering (see <see cref="EnvVars.KeepWarmTouch"/>).</summary>
public enum KeepWarmTouch { First, Always, Never }

/// <summary>A setting has a value that cannot be used; the message names the variable and what it accepts.</summary>
public sealed class ConfigurationException(string message) : Exception(message);

/// <summary>
/// Settings shared by every host, parsed from the variables in <see cref="EnvVars"/>. Hosts may
/// override single values from their command line with a <c>with</c> expression.
/// </summary>
public sealed record ApiOptions
{
    /// <summary>The GGUF file; null means "the default model" (resolved when loading).</summary>
    public string? ModelPath { get; init; }
    /// <summary>Served model id; null means the file name without extension.</summary>
    public string? ModelId { get; init; }
    public int Threads { get; init; } = Environment.ProcessorCount;
    public int ContextLength { get; init; } = 4096;

    /// <summary>The context lengths a server takes (BITNET_CONTEXT_LENGTH, serve --ctx-size).</summary>
    public const int MinContextLength = 16, MaxContextLength = 1 << 20;
    /// <summary>The most generations decoding together (BITNET_PARALLEL, serve --parallel).</summary>
    public const int MaxParallel = 256;
    /// <summary>The KV cache sizes that may be asked for (BITNET_KV_CACHE_TOKENS, serve --kv-cache-tokens): at most every
    /// generation's whole context at the largest parallel and context, 2^28 positions. A model may hold fewer
    /// (<see cref="Model.KvCachePool.MaxTokens"/>, 3.3 million for 2B4T), which the engine reports when it loads.</summary>
    public const int MinKvCacheTokens = 16, MaxKvCacheTokens = MaxParallel * MaxContextLength;
    /// <summary>The prompt tokens per batch step a server takes (BITNET_PROMPT_TOKENS_PER_STEP, serve --prompt-tokens-per-step).</summary>
    public const int MinPromptTokensPerStep = 3, MaxPromptTokensPerStep = 4096;
    /// <summary>"f16", "q8" or "screened" (see <see cref="Model.LmHeadMode"/>); null = the host's default
    /// (<see cref="DefaultLmHead"/>, "f16" on Lambda).</summary>
    public string? LmHead { get; init; }
    /// <summary>"auto" (default), "memory" (streamed weights copied into private memory), "mapped" (used through the file mapping) or "move" (mapped, then moved into memory in the background).</summary>
    public string Weights { get; init; } = "auto";
    /// <summary>"llama3", "default" or "falcon3"; null = the file's own.</summary>
    public string? PreTokenizer { get; init; }
    /// <summary>"bitnet", "llama3", "falcon3" or "falcon_e"; null = the file's own.</summary>
    public string? ChatTemplate { get; init; }
    public bool PrefetchModel { get; init; } = true;
    public int QueueDepth { get; init; } = 32;
    /// <summary>How often a streamed request waiting for its first token gets an SSE comment (<see cref="EnvVars.QueueKeepAliveSeconds"/>).</summary>
    public TimeSpan QueueKeepAlive { get; init; } = TimeSpan.FromSeconds(DefaultQueueKeepAliveSeconds);
    /// <summary>Below the idle limits of the usual proxies and load balancers (nginx and AWS ALB 60 s, Azure Application
    /// Gateway 20 s), at the cost of a 27-byte write per waiting stream.</summary>
    public const int DefaultQueueKeepAliveSeconds = 10;
    /// <summary>Most generations decoding together; 0 = the host's default (<see cref="DefaultParallel"/>, 1 on Lambda).</summary>
    public int Parallel { get; init; }
    /// <summary>KV cache positions shared by all generations; 0 = derived from the memory limit (see <see cref="EnvVars.KvCacheTokens"/>).</summary>
    public long KvCacheTokens { get; init; }
    /// <summary>Prompt tokens per batch step (<see cref="EnvVars.PromptTokensPerStep"/>).</summary>
    public int PromptTokensPerStep { get; init; } = 64;
    public string? ApiKey { get; init; }
    public int DefaultMaxTokens { get; init; } = 512;
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromSeconds(DefaultRequestTimeoutSeconds);
    /// <summary>The deadline of a request, queue wait included, when <see cref="EnvVars.RequestTimeoutSeconds"/> is not set.</summary>
    public const int DefaultRequestTimeoutSeconds = 300;
    public long MaxRequestBytes { get; init; } = 1 << 20;
    public IReadOnlyList<string> CorsOrigins { get; init; } = [];
    public KeepWarmTouch KeepWarmTouch { get; init; } = KeepWarmTouch.First;
    public string Host { get; init; } = "127.0.0.1";
    public int Port { get; init; } = 8080;
    public TimeSpan ShutdownTimeout { get; init; } = TimeSpan.FromSeconds(30);
    /// <summary>Refuse a "model" that names another model (404 model_not_found) instead of answering with the loaded one.</summary>
    public bool StrictModel { get; init; }
    public bool LambdaStreaming { get; init; }
    public TimeSpan LambdaDeadlineMargin { get; init; } = TimeSpan.FromMilliseconds(1000);

    /// <summary>Generations decoding together on the server, `bitnet serve` and Azure when not set. On 2 threads
    /// with 2B4T, 4 streams gave 1.2–1.5× one stream's tokens/s (docs/performance.md), and 4 contexts of KV
    /// cache fit a 4 GB host beside the model; 8 was no better reliably.</summary>
    public const int DefaultParallel = 4;

    /// <summary>The LM head of the server, `bitnet serve` and Azure when not set: the screened head chooses the f16
    /// head's tokens and batches across sequences (one int8 pass bounds every sequence's logits), for about 0.4 s
    /// more at load. Lambda, where a cold start waits for the load and one event runs at a time, keeps f16.</summary>
    public const string DefaultLmHead = "screened";

    /// <summary><see cref="LmHead"/>, or <see cref="DefaultLmHead"/> when it is null.</summary>
    public string EffectiveLmHead => LmHead ?? DefaultLmHead;

    /// <summary><see cref="Parallel"/>, or <see cref="DefaultParallel"/> when it is 0.</summary>
    public int EffectiveParallel => Parallel > 0 ? Parallel : DefaultParallel;

    /// <summary>Reads every variable of <see cref="EnvVars"/>; unset ones keep their defaults.
    /// Throws <see cref="ConfigurationException"/> naming the variable on a bad value.</summary>
    public static ApiOptions FromEnvironment(IEnvironment? environment = null)
    {
        IEnvironment env = environment ?? ProcessEnvironment.Instance;
        var defaults = new ApiOptions();
        return new ApiOptions
        {
            ModelPath = env.GetVariable(EnvVars.Model),
            ModelId = env.GetVariable(EnvVars.ModelId),
            Threads = Int(env, EnvVars.Threads, defaults.Threads, min: 1, max: 1024),
            ContextLength = Int(env, EnvVars.ContextLength, defaults.ContextLength, min: MinContextLength, max: MaxContextLength),
            LmHead = env.GetVariable(EnvVars.LmHead) is null ? null : OneOf(env, EnvVars.LmHead, DefaultLmHead, [.. Model.LmHeadModes.Names]),
            Weights = OneOf(env, EnvVars.Weights, defaults.Weights, [.. Model.WeightStorages.Names]),
            PreTokenizer = env.GetVariable(EnvVars.PreTokenizer) is null ? null : OneOf(env, EnvVars.PreTokenizer, "llama3", "llama3", "default", "falcon3"),
            ChatTemplate = env.GetVariable(EnvVars.ChatTemplate) is null ? null
                : OneOf(env, EnvVars.ChatTemplate, "bitnet", [.. Generation.ChatTemplate.Known.Select(t => t.Name)]),
            PrefetchModel = Bool(env, EnvVars.PrefetchModel, defaults.PrefetchModel),
            QueueDepth = Int(env, EnvVars.QueueDepth, defaults.QueueDepth, min: 0, max: 100_000),
            QueueKeepAlive = TimeSpan.FromSeconds(Int(env, EnvVars.QueueKeepAliveSeconds, DefaultQueueKeepAliveSeconds, min: 1, max: 3600)),
            Parallel = Int(env, EnvVars.Parallel, defaults.Parallel, min: 1, max: MaxParallel),
            KvCacheTokens = Int(env, EnvVars.KvCacheTokens, 0, min: MinKvCacheTokens, max: MaxKvCacheTokens),
            PromptTokensPerStep = Int(env, EnvVars.PromptTokensPerStep, defaults.PromptTokensPerStep, min: MinPromptTokensPerStep, max: MaxPromptTokensPerStep),
            ApiKey = env.GetVariable(EnvVars.ApiKey),
            StrictModel = Bool(env, EnvVars.StrictModel, defaults.StrictModel),
            DefaultMaxTokens = Int(env, EnvVars.DefaultMaxTokens, defaults.DefaultMaxTokens, min: 1, max: 1 << 20),
            RequestTimeout = TimeSpan.FromSeconds(Int(env, EnvVars.RequestTimeoutSeconds, DefaultRequestTimeoutSeconds, min: 1, max: 86_400)),
            MaxRequestBytes = Int(env, EnvVars.MaxRequestBytes, (int)defaults.MaxRequestBytes, min: 1024, max: int.MaxValue),
            CorsOrigins = List(env, EnvVars.CorsOrigins),
            KeepWarmTouch = OneOf(env, EnvVars.KeepWarmTouch, "first", "first", "always", "never") switch
            {
                "always" => KeepWarmTouch.Always,
                "never" => KeepWarmTouch.Never,
                _ => KeepWarmTouch.First,
            },
            Host = env.GetVariable(EnvVars.Host) ?? defaults.Host,
            Port = Int(env, EnvVars.Port, defaults.Port, min: 0, max: 65535),
            ShutdownTimeout = TimeSpan.FromSeconds(Int(env, EnvVars.ShutdownTimeoutSeconds, 30, min: 0, max: 3600)),
            LambdaStreaming = Bool(env, EnvVars.LambdaStreaming, defaults.LambdaStreaming),
            LambdaDeadlineMargin = TimeSpan.FromMilliseconds(Int(env, EnvVars.LambdaDeadlineMarginMs, 1000, min: 0, max: 60_000)),
        };
    }

    /// <summary>The served model id for a model file.</summary>
    public string ResolveModelId(string modelPath) =>
        ModelId ?? Path.GetFileNameWithoutExtension(modelPath);

    private static int Int(IEnvironment env, string name, int fallback, int min, int max)
    {
        string? text = env.GetVariable(name);
        if (text is null)
            return fallback;
        if (!int.TryParse(text.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int value) || value < min || value > max)
            throw new ConfigurationException($"{name}='{text}' is not valid: expected an integer from {min} to {max}");
        return value;
    }

    private static bool Bool(IEnvironment env, string name, bool fallback)
    {
        string? text = env.GetVariable(name);
        return text?.Trim().ToLowerInvariant() switch
        {
            null => fallback,
            "1" or "true" or "yes" or "on" => true,
            "0" or "false" or "no" or "off" => false,
            _ => throw new ConfigurationException($"{name}='{text}' is not valid: expected true or false"),
        };
    }

    private static string OneOf(IEnvironment env, string name, string fallback, params string[] allowed)
    {
        string? text = env.GetVariable(name);
        if (text is null)
            return fallback;
        string value = text.Trim().ToLowerInvariant();
        if (Array.IndexOf(allowed, value) < 0)
            throw new ConfigurationException($"{name}='{text}' is not valid: expected one of {string.Join(", ", allowed)}");
        return value;
    }

    private static string[] List(IEnvironment env, string name) =>
        env.GetVariable(name)?.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? [];
}
