using BitNet.Inference.Gguf;
using Names = BitNet.Inference.Model.GgufTensorNames;

namespace BitNet.Inference.Model;

/// <summary>The hyperparameters of a ternary model, read from GGUF metadata (spec §2.2; shared/oracle/archs/ARCHS.md §1).</summary>
public sealed record ModelConfig
{
    /// <summary>general.architecture: "bitnet-b1.58", "bitnet-25", "bitnet" or "llama".</summary>
    public required string Architecture { get; init; }
    /// <summary>The graph the architecture runs (activation, sub-norms, RoPE style, head).</summary>
    public GraphFamily Graph { get; init; } = GraphFamily.BitNet158;
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
    /// <summary>Hidden width of the gated feed-forward; 6912 for 2B4T.</summary>
    public required int FeedForwardLength { get; init; }
    /// <summary>RMSNorm epsilon (f32); 1e-5.</summary>
    public required float RmsNormEpsilon { get; init; }
    /// <summary>RoPE frequency base θ; 500000.</summary>
    public required float RopeFreqBase { get; init; }
    /// <summary>Dimensions RoPE rotates (n_rot); the head dimension except where <see cref="GraphFamily.RotatesWholeHead"/> is false.</summary>
    public required int RopeDimensionCount { get; init; }
    /// <summary>RoPE angles are multiplied by this: 1 / rope.scaling.factor for linear scaling, else 1.</summary>
    public float RopeFrequencyScale { get; init; } = 1f;

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
        GraphFamily graph = GraphFamily.ForArchitecture(arch)
            ?? throw new ModelFormatException(
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
            Graph = graph,
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
            RopeFrequencyScale = RopeScale(file, arch, Float),
        };
        // The token embedding and LM head [embd, vocab] are one span of F16 values, and a ternary matrix's
        // codes (a quarter byte per weight) one span of bytes: indexed with 32-bit counts, as .NET spans are.
        if ((long)embd * config.VocabSize > int.MaxValue)
            throw new ModelFormatException(
                $"the token embedding [{Names.EmbeddingLength(arch)} = {embd}, vocab_size = {config.VocabSize}] would have " +
                $"{(long)embd * config.VocabSize} elements; at most {int.MaxValue} are supported");
        if ((long)embd * config.FeedForwardLength / 4 > int.MaxValue)
            throw new ModelFormatException(
                $"the feed-forward matrices [{Names.EmbeddingLength(arch)} = {embd}, {Names.FeedForwardLength(arch)} = {config.FeedForwardLength}] " +
                $"would need {(long)embd * config.FeedForwardLength / 4} bytes of codes each; at most {int.MaxValue} are supported");
        if (embd % heads != 0)
            throw new ModelFormatException($"embedding length {embd} is not divisible by the head count {heads}");
        if (heads % kvHeads != 0)
            throw new ModelFormatException($"head count {heads} is not a multiple of the KV head count {kvHeads}");
        if (config.HeadDim % 2 != 0)
            throw new ModelFormatException($"head dimension {config.HeadDim} must be even for RoPE");
        // Q, K and V heads are embd / heads wide here (the buffers and the attention assume it).
        foreach (string key in new[] { Names.KeyLength(arch), Names.ValueLength(arch) })
            if (file.ContainsKey(key) && Positive(key, 1 << 16) != config.HeadDim)
                throw new ModelFormatException(
                    $"'{key}' = {file.Metadata[key]}, but only heads of embedding / head count = {config.HeadDim} are supported");
        if (graph.RotatesWholeHead ? config.RopeDimensionCount != config.HeadDim
                : config.RopeDimensionCount > config.HeadDim || config.RopeDimensionCount % 2 != 0)
            throw new ModelFormatException(
                $"'{Names.RopeDimensionCount(arch)}' = {config.RopeDimensionCount}, expected " +
                (graph.RotatesWholeHead ? "" : "an even count up to ") + $"the head dimension {config.HeadDim} (embedding {embd} / {heads} heads)");
        return config;
    }

    /// <summary>
    /// The RoPE frequency scale as llama.cpp derives it: 1 / rope.scaling.factor (or the older
    /// rope.scale_linear) for linear scaling, the default; 1 for type "none". YaRN and LongRoPE change
    /// the angles in other ways and are refused.
    /// </summary>
    private static float RopeScale(GgufFile file, string arch, Func<string, float, float, float, float> readFloat)
    {
        string type = file.TryGetString(Names.RopeScalingType(arch), out string t) ? t : "linear";
        if (type == "none") return 1f;
        if (type != "linear")
            throw new ModelFormatException($"'{Names.RopeScalingType(arch)}' = '{type}' is not supported (only 'linear' and 'none')");
        float factor = file.ContainsKey(Names.RopeScalingFactor(arch))
            ? readFloat(Names.RopeScalingFactor(arch), 0f, 0f, 1e6f)
            : readFloat(Names.RopeScaleLinear(arch), 0f, 0f, 1e6f);
        return factor == 0f ? 1f : 1f / factor;
    }
}
