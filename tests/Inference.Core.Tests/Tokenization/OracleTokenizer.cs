using BitNet.Inference.Gguf;
using BitNet.Inference.Tokenization;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Tokenization;

/// <summary>The oracle model's tokenizer (the real Llama-3 vocabulary), loaded once per pre-tokenizer.</summary>
internal static class OracleTokenizer
{
    private static readonly Lazy<Tokenizer> LazyLlama3 = new(() => Load(PreTokenizerKind.Llama3));
    private static readonly Lazy<Tokenizer> LazyDefault = new(() => Load(PreTokenizerKind.Default));

    public static Tokenizer Llama3 => LazyLlama3.Value;
    public static Tokenizer Default => LazyDefault.Value;
    public static Tokenizer For(PreTokenizerKind kind) => kind == PreTokenizerKind.Llama3 ? Llama3 : Default;

    public static Tokenizer Load(PreTokenizerKind? kind)
    {
        using var file = GgufFile.Open(SharedData.OracleModelPath);
        return Tokenizer.FromGguf(file, kind);
    }
}
