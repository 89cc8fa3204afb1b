namespace BitNet.Inference.Tokenization;

/// <summary>GGUF `tokenizer.ggml.token_type` values (llama.cpp's llama_token_type).</summary>
public enum TokenType
{
    Undefined = 0,
    Normal = 1,
    Unknown = 2,
    /// <summary>Special tokens such as &lt;|begin_of_text|&gt; and &lt;|eot_id|&gt;.</summary>
    Control = 3,
    UserDefined = 4,
    Unused = 5,
    Byte = 6,
}
