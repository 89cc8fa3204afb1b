using System.Globalization;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;

namespace BitNet.Inference.Generation;

/// <summary>The KV cache an engine loads with: its positions, the context a generation may fill, and why that
/// context is smaller than the one the model would have by default (null when it is not).</summary>
public sealed record KvSize(long Tokens, int ContextLength, string? Note = null);

/// <summary>
/// How many positions the shared KV pool holds, and whether they fit the memory the process may use (a Lambda
/// function's memory size, else the container's or machine's limit as the runtime sees it). By default: every
/// parallel generation's whole context, capped by that limit less the weights (<see cref="WeightBytes"/>) and
/// some room for the rest of the process, and at least one whole context. Where not even that fits, a context
/// the model chose shrinks to the positions that do (at least <see cref="MinFallbackTokens"/>); a context or a
/// size set by hand must fit beside the weights, else the load is refused in one line saying how much fits.
/// </summary>
public static class KvBudget
{
    /// <summary>Memory kept for everything else (runtime, activation buffers, HTTP): 256 MiB.</summary>
    public const long Headroom = 256L << 20;

    /// <summary>The fewest positions a default context shrinks to: fewer hold no useful chat.</summary>
    public const int MinFallbackTokens = 256;

    /// <summary>
    /// The KV cache to load with: <paramref name="askedTokens"/> when set (checked against the limit), else the default.
    /// Throws an <see cref="ArgumentException"/> (a message without a parameter name) when the memory cannot hold it.
    /// </summary>
    /// <param name="contextGiven">The context was set by hand: it is kept or refused, never shrunk.</param>
    /// <param name="weightBytes">What the weights take of the limit (<see cref="WeightBytes"/>).</param>
    /// <param name="limit">The process's memory limit; null = unknown, nothing is checked.</param>
    public static KvSize Size(ModelConfig config, long askedTokens, int parallel, int context, bool contextGiven, long weightBytes, long? limit)
    {
        ArgumentNullException.ThrowIfNull(config);
        long blockBytes = KvCachePool.BytesPerToken(config) * KvCachePool.DefaultBlockTokens;
        if (askedTokens > 0)
        {
            if (limit is long bytes && Shortfall(Blocks(askedTokens, context) * blockBytes, weightBytes, bytes) is { } shortfall)
            {
                long fit = FittingTokens(config, weightBytes, bytes);
                string fits = fit >= context ? Invariant($"at most {fit} tokens fit") : Invariant($"not even one context of {context} tokens fits");
                throw new ArgumentException(Invariant($"a KV cache of {askedTokens} tokens needs {shortfall}; {fits}"));
            }
            return new KvSize(askedTokens, context);
        }

        long wanted = Math.Min((long)Math.Max(1, parallel) * context, KvCachePool.MaxTokens(config));
        if (limit is not long limitBytes)
            return new KvSize(Math.Max(wanted, context), context);
        long room = Math.Max(0, limitBytes - weightBytes - Headroom) / KvCachePool.BytesPerToken(config);
        if (room >= context)
            return new KvSize(Math.Max(Math.Min(wanted, room), context), context);

        if (contextGiven)
        {
            // As a size set by hand: one context is kept if it fits beside the weights at all.
            if (Shortfall(Blocks(context, context) * blockBytes, weightBytes, limitBytes) is { } shortfall)
                throw new ArgumentException(Invariant(
                    $"a context of {context} tokens needs a KV cache of {shortfall}; at most {FittingTokens(config, weightBytes, limitBytes)} tokens fit"));
            return new KvSize(context, context);
        }
        long fallback = room / KvCachePool.DefaultBlockTokens * KvCachePool.DefaultBlockTokens;
        string beside = Invariant($"beside {Size(weightBytes)} of weights and {Size(Headroom)} for the rest of the process within the {Size(limitBytes)} of memory this process may use");
        if (fallback < Math.Min(MinFallbackTokens, context))
            throw new ArgumentException(Invariant(
                $"not even a context of {Math.Min(MinFallbackTokens, context)} tokens fits {beside} (room for {room} KV cache positions)"));
        return new KvSize(fallback, (int)fallback, Invariant($"the context is {fallback} tokens, not {context}: no more KV cache fits {beside}"));
    }

    /// <summary>AWS_LAMBDA_FUNCTION_MEMORY_SIZE (MB) when set, else the runtime's view of the memory available (cgroup limit or physical memory).</summary>
    public static long? MemoryLimitBytes()
    {
        string? lambda = Environment.GetEnvironmentVariable("AWS_LAMBDA_FUNCTION_MEMORY_SIZE");
        if (long.TryParse(lambda, NumberStyles.None, CultureInfo.InvariantCulture, out long megabytes) && megabytes > 0)
            return megabytes << 20;
        long available = GC.GetGCMemoryInfo().TotalAvailableMemoryBytes;
        return available > 0 ? available : null;
    }

    /// <summary>
    /// What the weights take of the memory limit, beside the KV cache: the model file (a fair bound) when they are
    /// read into private memory; with <see cref="WeightStorage.Mapped"/>, the file less the tensors used in place
    /// from the mapping, plus the int8 head that q8 and screened build.
    /// </summary>
    public static long WeightBytes(GgufFile file, ModelConfig config, WeightStorage storage, LmHeadMode head)
    {
        ArgumentNullException.ThrowIfNull(file);
        ArgumentNullException.ThrowIfNull(config);
        if (storage != WeightStorage.Mapped)
            return file.FileSize;
        // Mapped pages are page cache, which the kernel drops and reads again (or charges to another process mapping
        // the file): they never get this process killed, so only what it holds privately counts.
        long inPlace = WeightResidency.StreamedTensors(file, config, LmHeadMode.F16).Sum(t => t.ByteSize);
        long int8Head = head == LmHeadMode.F16 ? 0 : (long)config.VocabSize * config.EmbeddingLength;
        return file.FileSize - inPlace + int8Head;
    }

    /// <summary>
    /// Null when <paramref name="kvBytes"/> of KV cache fit beside <paramref name="weightBytes"/> within
    /// <paramref name="limit"/>; else what they need: "1.9 GiB beside 70.7 MiB of weights, more than the 128.0 MiB
    /// of memory this process may use".
    /// </summary>
    public static string? Shortfall(long kvBytes, long weightBytes, long limit)
    {
        if (kvBytes + weightBytes <= limit)
            return null;
        string beside = weightBytes > 0 ? $" beside {Size(weightBytes)} of weights" : "";
        return $"{Size(kvBytes)}{beside}, more than the {Size(limit)} of memory this process may use";
    }

    /// <summary>The positions of the whole blocks that fit beside <paramref name="weightBytes"/> within <paramref name="limit"/>.</summary>
    public static long FittingTokens(ModelConfig config, long weightBytes, long limit)
    {
        long blockBytes = KvCachePool.BytesPerToken(config) * KvCachePool.DefaultBlockTokens;
        return Math.Max(0, limit - weightBytes) / blockBytes * KvCachePool.DefaultBlockTokens;
    }

    /// <summary>Blocks of the pool for <paramref name="tokens"/> positions, at least one whole context.</summary>
    public static int Blocks(long tokens, int contextLength, int blockTokens = KvCachePool.DefaultBlockTokens)
    {
        long positions = Math.Max(tokens, contextLength);
        return (int)Math.Min(int.MaxValue, (positions + blockTokens - 1) / blockTokens);
    }

    /// <summary>"214.6 GiB", "70.7 MiB".</summary>
    public static string Size(long bytes) => bytes >= 1L << 30
        ? Invariant($"{bytes / (double)(1L << 30):0.0} GiB")
        : Invariant($"{bytes / (double)(1L << 20):0.0} MiB");

    private static string Invariant(FormattableString text) => text.ToString(CultureInfo.InvariantCulture);
}
