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
    /// Keep the KV cache between generations and evaluate only the part of a new prompt after the
    /// longest prefix it shares with the previous prompt + output (chat turns, shared system prompts).
    /// </summary>
    public bool ReusePromptPrefix { get; init; } = true;
}
