namespace BitNet.Inference.Model;

/// <summary>The feed-forward gate's activation: f = act(Wgate·g) ⊙ (Wup·g).</summary>
public enum FeedForwardActivation
{
    /// <summary>relu(z)² (build_bitnet_158).</summary>
    SquaredRelu,
    /// <summary>silu(z) = z / (1 + e^−z) (build_llama, build_bitnet).</summary>
    Silu,
}

/// <summary>Which elements of a head RoPE rotates together.</summary>
public enum RopeStyle
{
    /// <summary>ggml's NEOX mode: element i with element i + n_rot/2.</summary>
    Neox,
    /// <summary>ggml's normal mode: adjacent pairs (2i, 2i + 1).</summary>
    AdjacentPairs,
}

/// <summary>What an architecture does with a separate <c>output.weight</c>.</summary>
public enum UntiedHead
{
    /// <summary>Used as the LM head when present, else the token embedding is.</summary>
    UsedWhenPresent,
    /// <summary>The architecture has no such tensor: a file that carries one is refused.</summary>
    Refused,
}

/// <summary>
/// One of bitnet.cpp's graph builders, as the data that tells them apart (shared/oracle/archs/ARCHS.md):
/// the layer loop is the same for all of them. The matmuls, attention, norms and KV cache are decided
/// by the tensor types, not by the architecture.
/// </summary>
public sealed record GraphFamily
{
    /// <summary>The builder's name in bitnet.cpp's llama.cpp: build_bitnet_158, build_bitnet, build_llama.</summary>
    public required string Name { get; init; }
    public required FeedForwardActivation Activation { get; init; }
    /// <summary>attn_sub_norm before Wo and ffn_sub_norm before Wdown.</summary>
    public required bool SubNorms { get; init; }
    public required RopeStyle Rope { get; init; }
    public required UntiedHead Head { get; init; }
    /// <summary>Optional bq, bk, bv, bo added to the attention projections.</summary>
    public bool AttentionBiases { get; init; }
    /// <summary>Optional ffn_gate/up/down biases.</summary>
    public bool FeedForwardBiases { get; init; }
    /// <summary>Optional one-element <c>*.scale</c> tensor multiplying each projection's output.</summary>
    public bool MatrixScales { get; init; }
    /// <summary>Optional rope_freqs [n_rot/2]: each pair's angle is divided by its factor.</summary>
    public bool RopeFrequencyFactors { get; init; }
    /// <summary>llama.cpp checks rope.dimension_count = head dim for every family but build_bitnet.</summary>
    public bool RotatesWholeHead { get; init; } = true;

    /// <summary>bitnet-b1.58 and bitnet-25: ReLU², sub-norms, NEOX RoPE (spec §5). bitnet.cpp ignores an
    /// output.weight in these files; we use it when present (our converter writes one for untied checkpoints).</summary>
    public static GraphFamily BitNet158 { get; } = new()
    {
        Name = "build_bitnet_158", Activation = FeedForwardActivation.SquaredRelu, SubNorms = true, Rope = RopeStyle.Neox,
        Head = UntiedHead.UsedWhenPresent, AttentionBiases = true, RopeFrequencyFactors = true,
    };

    /// <summary>bitnet (2024 conversions of bitnet_b1_58-large/-3B): build_bitnet_158 with SiLU, optional
    /// per-matrix scales, always the tied head.</summary>
    public static GraphFamily BitNet { get; } = new()
    {
        Name = "build_bitnet", Activation = FeedForwardActivation.Silu, SubNorms = true, Rope = RopeStyle.Neox,
        Head = UntiedHead.Refused, MatrixScales = true, RotatesWholeHead = false,
    };

    /// <summary>llama (Llama3-8B-1.58, Falcon3 1.58-bit, Falcon-E): no sub-norms, SiLU, adjacent-pair RoPE.</summary>
    public static GraphFamily Llama { get; } = new()
    {
        Name = "build_llama", Activation = FeedForwardActivation.Silu, SubNorms = false, Rope = RopeStyle.AdjacentPairs,
        Head = UntiedHead.UsedWhenPresent, AttentionBiases = true, FeedForwardBiases = true, RopeFrequencyFactors = true,
    };

    /// <summary>general.architecture → family; null for an architecture this engine does not run.</summary>
    public static GraphFamily? ForArchitecture(string architecture) => architecture switch
    {
        "bitnet-b1.58" or "bitnet-25" => BitNet158,
        "bitnet" => BitNet,
        "llama" => Llama,
        _ => null,
    };
}
