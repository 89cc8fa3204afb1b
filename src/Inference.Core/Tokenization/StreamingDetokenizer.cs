using System.Text;

namespace BitNet.Inference.Tokenization;

/// <summary>
/// Turns a stream of tokens into text without ever emitting half a UTF-8 character: a token that
/// ends inside a multi-byte character (byte-level BPE splits emoji and CJK across tokens) leaves
/// its first bytes pending until the rest arrives. Invalid bytes become U+FFFD.
/// </summary>
internal sealed class StreamingDetokenizer
{
    private readonly Tokenizer _tokenizer;
    private readonly bool _renderSpecial;
    private readonly Decoder _decoder = new UTF8Encoding(false, false).GetDecoder();
    private char[] _chars = new char[64];

    public StreamingDetokenizer(Tokenizer tokenizer, bool renderSpecial = false)
    {
        _tokenizer = tokenizer;
        _renderSpecial = renderSpecial;
    }

    /// <summary>The text completed by this token; empty while a character is still incomplete.</summary>
    public string Push(int token) => Push(_tokenizer.TokenBytes(token, _renderSpecial), flush: false);

    /// <summary>End of stream: any incomplete character left becomes U+FFFD.</summary>
    public string Flush() => Push([], flush: true);

    private string Push(ReadOnlySpan<byte> bytes, bool flush)
    {
        int needed = _decoder.GetCharCount(bytes, flush);
        if (needed > _chars.Length) _chars = new char[Math.Max(needed, _chars.Length * 2)];
        int count = _decoder.GetChars(bytes, _chars, flush);
        return count == 0 ? "" : new string(_chars, 0, count);
    }
}
