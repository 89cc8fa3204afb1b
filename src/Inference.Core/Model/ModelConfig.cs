using BitNet.Inference.Gguf;
using Names = BitNet.Inference.Model.GgufTensorNames;

namespace BitNet.Inference.Model;

/// <summary>The hyperparameters of a BitNet b1.58 model, read from GGUF metadata (spec §2.2).</summary>
public sealed record ModelConfig
{
    /// <summary>general.architecture: "bitnet-b1.58" or "bitnet-25" (same graph).</summary>
    public required string Architecture { get; init; }
    /// <summary>general.name, or the file name when absent.</summary>
    public required string Name { get; init; }
    /// <summary>Rows of the token embedding (= LM head outputs); 128256 for 2B4T.</summary>
    public required int VocabSize { get; init; }
    /// <summary>Trained context length; 4096 for 2B4T.</summary>
    public required int ContextLength { get; init; }
    /// <summary>Width of the residual stream, n_embd; 2560 for 2B4T.</summary>
    public required int EmbeddingLength { get; init; }
    /// <summary>Transformer blocks; 30 for 2B4T.</summary>
    public required int LayerCount { get; init; }
    /// <summary>Query heads; 20 for 2B4T.</summary>
    public required int HeadCount { get; init; }
    /// <summary>Key/value heads (grouped-query attention); 5 for 2B4T.</summary>
    public required int KvHeadCount { get; init; }
    /// <summary>Hidden width of the gated ReLU² feed-forward; 6912 for 2B4T.</summary>
    public required int FeedForwardLength { get; init; }
    /// <summary>RMSNorm epsilon (f32); 1e-5.</summary>
    public required float RmsNormEpsilon { get; init; }
    /// <summary>RoPE frequency base θ; 500000.</summary>
    public required float RopeFreqBase { get; init; }
    /// <summary>Dimensions RoPE rotates (NEOX style); must equal HeadDim for this architecture.</summary>
    public required int RopeDimensionCount { get; init; }

    /// <summary>Per-head width: EmbeddingLength / HeadCount (128 for 2B4T).</summary>
    public int HeadDim => EmbeddingLength / HeadCount;
    /// <summary>Query heads sharing one KV head (4 for 2B4T).</summary>
    public int GroupSize => HeadCount / KvHeadCount;
    /// <summary>Width of K and V per token: KvHeadCount · HeadDim (640 for 2B4T).</summary>
    public int KvDim => KvHeadCount * HeadDim;

    /// <summary>Read and check the hyperparameters; throws <see cref="ModelFormatException"/> with the offending key.</summary>
    public static ModelConfig FromGguf(GgufFile file)
    {
        if (!file.TryGetString(Names.Architecture, out string arch))
            throw new ModelFormatException($"{System.IO.Path.GetFileName(file.Path)}: metadata key '{Names.Architecture}' is missing or not a string");
        if (!Names.SupportedArchitectures.Contains(arch))
            throw new ModelFormatException(
                $"{System.IO.Path.GetFileName(file.Path)}: unsupported architecture '{arch}' (supported: {string.Join(", ", Names.SupportedArchitectures)})");

        int Positive(string key, int max)
        {
            if (!file.ContainsKey(key)) throw new ModelFormatException($"metadata key '{key}' is missing");
            if (!file.TryGetInteger(key, out long v)) throw new ModelFormatException($"metadata key '{key}' is {file.Metadata[key].TypeName}, expected an integer");
            if (v < 1 || v > max) throw new ModelFormatException($"metadata key '{key}' = {v} is out of range (1..{max})");
            return (int)v;
        }
        float Float(string key, float fallback, float min, float max)
        {
            if (!file.ContainsKey(key)) return fallback;
            if (!file.TryGetFloat(key, out float v)) throw new ModelFormatException($"metadata key '{key}' is {file.Metadata[key].TypeName}, expected a float");
            if (!(v >= min && v <= max)) throw new ModelFormatException($"metadata key '{key}' = {v} is out of range ({min}..{max})");
            return v;
        }

        int embd = Positive(Names.EmbeddingLength(arch), 1 << 16);
        int heads = Positive(Names.HeadCount(arch), 1024);
        int kvHeads = file.ContainsKey(Names.HeadCountKv(arch)) ? Positive(Names.HeadCountKv(arch), 1024) : heads;
        var config = new ModelConfig
        {
            Architecture = arch,
            Name = file.TryGetString(Names.Name, out string name) ? name : System.IO.Path.GetFileNameWithoutExtension(file.Path),
            // The vocabulary size key is optional in llama.cpp (it counts the token list); the embedding decides.
            VocabSize = file.ContainsKey(Names.VocabSize(arch)) ? Positive(Names.VocabSize(arch), 1 << 24)
                : file.TryGetTensor(Names.TokenEmbedding, out var embedding) && embedding.Shape.Length == 2 && embedding.Shape[1] <= 1 << 24 ? (int)embedding.Shape[1]
                : throw new ModelFormatException($"metadata key '{Names.VocabSize(arch)}' is missing and there is no 2-D '{Names.TokenEmbedding}' to count the vocabulary"),
            ContextLength = Positive(Names.ContextLength(arch), 1 << 24),
            EmbeddingLength = embd,
            LayerCount = Positive(Names.BlockCount(arch), 1024),
            HeadCount = heads,
            KvHeadCount = kvHeads,
            FeedForwardLength = Positive(Names.FeedForwardLength(arch), 1 << 20),
            RmsNormEpsilon = Float(Names.RmsEpsilon(arch), 1e-5f, 0f, 1f),
            RopeFreqBase = Float(Names.RopeFreqBase(arch), 10000f, 1f, 1e12f),
            RopeDimensionCount = file.ContainsKey(Names.RopeDimensionCount(arch)) ? Positive(Names.RopeDimensionCount(arch), 1 << 16) : embd / heads,
        };
        if (embd % heads != 0)
            throw new ModelFormatException($"embedding length {embd} is not divisible by the head count {heads}");
        if (heads % kvHeads != 0)
            throw new ModelFormatException($"head count {heads} is not a multiple of the KV head count {kvHeads}");
        if (config.HeadDim % 2 != 0)
            throw new ModelFormatException($"head dimension {config.HeadDim} must be even for RoPE");
        if (config.RopeDimensionCount != config.HeadDim)
            throw new ModelFormatException(
                $"'{Names.RopeDimensionCount(arch)}' = {config.RopeDimensionCount}, expected the head dimension {config.HeadDim} (embedding {embd} / {heads} heads)");
        return config;
    }
}
