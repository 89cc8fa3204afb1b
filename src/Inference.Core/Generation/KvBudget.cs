using System.Globalization;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;

namespace BitNet.Inference.Generation;

/// <summary>
/// How many positions the shared KV pool holds by default: every parallel generation's whole context,
/// capped by the memory the process may use (a Lambda function's memory size, else the container's or
/// machine's limit as the runtime sees it) less the model and some room for the rest of the process,
/// and never less than one whole context (a lone generation can always use all of it).
/// </summary>
public static class KvBudget
{
    /// <summary>Memory kept for everything else (runtime, activation buffers, HTTP): 256 MiB.</summary>
    public const long Headroom = 256L << 20;

    /// <param name="modelBytes">Memory the model itself keeps resident (its file size is a fair bound).</param>
    /// <param name="memoryLimitBytes">The process's memory limit; null = <see cref="MemoryLimitBytes"/>.</param>
    public static long DefaultTokens(ModelConfig config, int parallel, int contextLength, long modelBytes, long? memoryLimitBytes = null)
    {
        ArgumentNullException.ThrowIfNull(config);
        long wanted = (long)Math.Max(1, parallel) * contextLength;
        long? limit = memoryLimitBytes ?? MemoryLimitBytes();
        if (limit is long bytes)
        {
            long room = bytes - modelBytes - Headroom;
            wanted = Math.Min(wanted, Math.Max(0, room) / KvCachePool.BytesPerToken(config));
        }
        return Math.Max(wanted, contextLength);
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
    internal static long WeightBytes(GgufFile file, ModelConfig config, WeightStorage storage, LmHeadMode head)
    {
        if (storage != WeightStorage.Mapped)
            return file.FileSize;
        // Mapped pages are page cache, which the kernel drops and reads again (or charges to another process mapping
        // the file): they never get this process killed, so only what it holds privately counts.
        long inPlace = WeightResidency.StreamedTensors(file, config, LmHeadMode.F16).Sum(t => t.ByteSize);
        long int8Head = head == LmHeadMode.F16 ? 0 : (long)config.VocabSize * config.EmbeddingLength;
        return file.FileSize - inPlace + int8Head;
    }

    /// <summary>Blocks of the pool for <paramref name="tokens"/> positions, at least one whole context.</summary>
    public static int Blocks(long tokens, int contextLength, int blockTokens = KvCachePool.DefaultBlockTokens)
    {
        long positions = Math.Max(tokens, contextLength);
        return (int)Math.Min(int.MaxValue, (positions + blockTokens - 1) / blockTokens);
    }
}
