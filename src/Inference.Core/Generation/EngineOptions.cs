using BitNet.Inference.Model;

namespace BitNet.Inference.Generation;

/// <summary>How <see cref="BitNetEngine.Load"/> opens a model.</summary>
public sealed record EngineOptions
{
    /// <summary>Path of the GGUF file.</summary>
    public required string ModelPath { get; init; }
    /// <summary>Matmul worker threads; 0 = one per core.</summary>
    public int Threads { get; init; }
    /// <summary>KV cache positions; 0 = min(the model's trained context, 4096).</summary>
    public int ContextLength { get; init; }
    public LmHeadMode LmHead { get; init; } = LmHeadMode.F16;
    /// <summary>Streamed weights copied into private memory, used through the file mapping, or (default) chosen at load.</summary>
    public WeightStorage Storage { get; init; } = WeightStorage.Auto;
    /// <summary>"llama3", "default" or "falcon3"; null = the file's `tokenizer.ggml.pre`, llama3 when it has none.</summary>
    public string? PreTokenizer { get; init; }
    /// <summary>Chat template name (bitnet, llama3, falcon3, falcon_e); null = the file's (<see cref="ChatTemplate.Choose"/>).</summary>
    public string? ChatTemplate { get; init; }
    /// <summary>Name served as the model id; null = the file name without extension.</summary>
    public string? ModelId { get; init; }
    /// <summary>Kernel family ("scalar" forces the reference kernel); null = the best for this CPU.</summary>
    public string? Kernel { get; init; }
    /// <summary>
    /// Share the KV blocks of prompt prefixes between generations: a prompt that starts with whole blocks
    /// of a prompt evaluated before (a system prompt, a repeated request, the earlier turns of a chat)
    /// evaluates only the rest. Blocks stay cached after their generation until the space is needed.
    /// </summary>
    public bool ReusePromptPrefix { get; init; } = true;
    /// <summary>Most generations decoding together in one batch; more wait. At least 1.</summary>
    public int Parallel { get; init; } = 1;
    /// <summary>KV cache positions shared by all generations; 0 = the default of <see cref="KvBudget.Size"/> (Parallel
    /// × context, capped by the memory the process may use). Never less than one whole context. A size whose bytes
    /// and the weights' exceed that memory is refused at load.</summary>
    public long KvCacheTokens { get; init; }
    /// <summary>Prompt tokens evaluated per batch step, beside the decoding generations' tokens (at least 3).</summary>
    public int PromptTokensPerStep { get; init; } = 64;
    /// <summary>Tests only: the memory limit the KV cache is sized by and checked against; null = <see cref="KvBudget.MemoryLimitBytes"/>.</summary>
    internal long? MemoryLimitBytes { get; init; }
}
