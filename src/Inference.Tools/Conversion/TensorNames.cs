using System.Text.RegularExpressions;

namespace BitNet.Inference.Conversion;

/// <summary>
/// Hugging Face Llama-style tensor names → GGUF names (llama.cpp's table, plus BitNet's sub-norms).
/// Q and K are not permuted: bitnet.cpp's converter for BitNet writes them as they are (spec §10.2).
/// </summary>
public static partial class TensorNames
{
    private static readonly Dictionary<string, string> Global = new()
    {
        ["model.embed_tokens.weight"] = "token_embd.weight",
        ["model.norm.weight"] = "output_norm.weight",
        ["lm_head.weight"] = "output.weight",
    };

    private static readonly Dictionary<string, string> PerLayer = new()
    {
        ["input_layernorm.weight"] = "attn_norm.weight",
        ["self_attn.q_proj.weight"] = "attn_q.weight",
        ["self_attn.k_proj.weight"] = "attn_k.weight",
        ["self_attn.v_proj.weight"] = "attn_v.weight",
        ["self_attn.o_proj.weight"] = "attn_output.weight",
        ["self_attn.attn_sub_norm.weight"] = "attn_sub_norm.weight",
        ["post_attention_layernorm.weight"] = "ffn_norm.weight",
        ["mlp.gate_proj.weight"] = "ffn_gate.weight",
        ["mlp.up_proj.weight"] = "ffn_up.weight",
        ["mlp.down_proj.weight"] = "ffn_down.weight",
        ["mlp.ffn_sub_norm.weight"] = "ffn_sub_norm.weight",
    };

    /// <summary>The GGUF name, or null for a tensor GGUF has no place for (e.g. rotary caches).</summary>
    public static string? ToGguf(string huggingFaceName)
    {
        if (Global.TryGetValue(huggingFaceName, out string? global))
            return global;
        var match = LayerPattern().Match(huggingFaceName);
        if (match.Success && PerLayer.TryGetValue(match.Groups[2].Value, out string? suffix))
            return $"blk.{match.Groups[1].Value}.{suffix}";
        return null;
    }

    /// <summary>The projection weights BitNet trains ternary; everything else keeps full precision.</summary>
    public static bool IsTernaryWeight(string ggufName) => TernaryPattern().IsMatch(ggufName);

    [GeneratedRegex(@"^model\.layers\.(\d+)\.(.+)$")] private static partial Regex LayerPattern();
    [GeneratedRegex(@"^blk\.\d+\.(attn_q|attn_k|attn_v|attn_output|ffn_gate|ffn_up|ffn_down)\.weight$")] private static partial Regex TernaryPattern();
}
