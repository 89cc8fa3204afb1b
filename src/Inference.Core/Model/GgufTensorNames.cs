namespace BitNet.Inference.Model;

/// <summary>
/// The GGUF metadata keys and tensor names of the ternary architectures (spec §2.1, §2.3; shared/oracle/archs/ARCHS.md).
/// The only place these strings live.
/// </summary>
public static class GgufTensorNames
{
    // ---- metadata keys ----
    public const string Architecture = "general.architecture";
    public const string Name = "general.name";
    public const string FileType = "general.file_type";
    public const string QuantizationVersion = "general.quantization_version";

    /// <summary>The architectures the engine runs (<see cref="GraphFamily.ForArchitecture"/>).</summary>
    public static readonly IReadOnlyList<string> SupportedArchitectures = ["bitnet-b1.58", "bitnet-25", "bitnet", "llama"];

    public static string VocabSize(string arch) => $"{arch}.vocab_size";
    public static string ContextLength(string arch) => $"{arch}.context_length";
    public static string EmbeddingLength(string arch) => $"{arch}.embedding_length";
    public static string BlockCount(string arch) => $"{arch}.block_count";
    public static string FeedForwardLength(string arch) => $"{arch}.feed_forward_length";
    public static string RopeDimensionCount(string arch) => $"{arch}.rope.dimension_count";
    public static string HeadCount(string arch) => $"{arch}.attention.head_count";
    public static string HeadCountKv(string arch) => $"{arch}.attention.head_count_kv";
    public static string RmsEpsilon(string arch) => $"{arch}.attention.layer_norm_rms_epsilon";
    public static string RopeFreqBase(string arch) => $"{arch}.rope.freq_base";
    public static string RopeScalingType(string arch) => $"{arch}.rope.scaling.type";
    public static string RopeScalingFactor(string arch) => $"{arch}.rope.scaling.factor";
    public static string RopeScaleLinear(string arch) => $"{arch}.rope.scale_linear";
    public static string KeyLength(string arch) => $"{arch}.attention.key_length";
    public static string ValueLength(string arch) => $"{arch}.attention.value_length";

    public const string TokenizerModel = "tokenizer.ggml.model";
    public const string TokenizerPre = "tokenizer.ggml.pre";
    public const string Tokens = "tokenizer.ggml.tokens";
    public const string Scores = "tokenizer.ggml.scores";
    public const string TokenTypes = "tokenizer.ggml.token_type";
    public const string Merges = "tokenizer.ggml.merges";
    public const string BosTokenId = "tokenizer.ggml.bos_token_id";
    public const string EosTokenId = "tokenizer.ggml.eos_token_id";
    public const string PaddingTokenId = "tokenizer.ggml.padding_token_id";
    public const string AddBosToken = "tokenizer.ggml.add_bos_token";
    public const string ChatTemplate = "tokenizer.chat_template";

    // ---- tensors ----
    public const string TokenEmbedding = "token_embd.weight";
    public const string OutputNorm = "output_norm.weight";
    /// <summary>Absent in the published 2B4T file: the LM head is tied to <see cref="TokenEmbedding"/>.</summary>
    public const string Output = "output.weight";

    public static string AttentionNorm(int layer) => $"blk.{layer}.attn_norm.weight";
    public static string AttentionQ(int layer) => $"blk.{layer}.attn_q.weight";
    public static string AttentionK(int layer) => $"blk.{layer}.attn_k.weight";
    public static string AttentionV(int layer) => $"blk.{layer}.attn_v.weight";
    public static string AttentionSubNorm(int layer) => $"blk.{layer}.attn_sub_norm.weight";
    public static string AttentionOutput(int layer) => $"blk.{layer}.attn_output.weight";
    public static string FfnNorm(int layer) => $"blk.{layer}.ffn_norm.weight";
    public static string FfnGate(int layer) => $"blk.{layer}.ffn_gate.weight";
    public static string FfnUp(int layer) => $"blk.{layer}.ffn_up.weight";
    public static string FfnSubNorm(int layer) => $"blk.{layer}.ffn_sub_norm.weight";
    public static string FfnDown(int layer) => $"blk.{layer}.ffn_down.weight";
    /// <summary>The layer of a "blk.N." tensor, or null for a tensor outside the blocks.</summary>
    public static int? LayerOf(string tensor)
    {
        if (!tensor.StartsWith("blk.", StringComparison.Ordinal)) return null;
        int end = tensor.IndexOf('.', 4);
        return end > 4 && int.TryParse(tensor.AsSpan(4, end - 4), System.Globalization.NumberStyles.None,
            System.Globalization.CultureInfo.InvariantCulture, out int layer) ? layer : null;
    }

    /// <summary>Optional rope_freqs [n_rot/2] (llama 3.1-style frequency factors), shared by every layer.</summary>
    public const string RopeFrequencies = "rope_freqs.weight";

    /// <summary>A matrix's optional bias: blk.N.attn_q.weight → blk.N.attn_q.bias.</summary>
    public static string Bias(string matrix) => matrix[..^".weight".Length] + ".bias";
    /// <summary>A matrix's optional one-element output scale (the bitnet architecture): blk.N.attn_q.weight → blk.N.attn_q.scale.</summary>
    public static string Scale(string matrix) => matrix[..^".weight".Length] + ".scale";

    /// <summary>A block's seven ternary matrices: q, k, v, output, gate, up, down.</summary>
    public static IEnumerable<string> LayerMatrices(int layer) =>
        [AttentionQ(layer), AttentionK(layer), AttentionV(layer), AttentionOutput(layer), FfnGate(layer), FfnUp(layer), FfnDown(layer)];
}
