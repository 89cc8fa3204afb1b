using System.Buffers;
using System.Text;
using System.Text.Unicode;
using BitNet.Inference.Api.Json;
using BitNet.Inference.Generation;
using BitNet.Inference.Sampling;

namespace BitNet.Inference.Api;

/// <summary>
/// Writes the engine's per-token log-probabilities (<see cref="GenerationUpdate.Logprobs"/>) in the
/// API's two forms: chat's list of {token, logprob, bytes, top_logprobs} and the legacy completions'
/// parallel lists with text offsets. Token texts are looked up once each. Chat's choices share one;
/// the offsets run on from a completion choice's own text, so each of those has its own.
/// </summary>
internal sealed class LogprobsWriter(ITextGenerator generator, int textStart)
{
    private readonly Dictionary<int, (string Text, int[] Bytes, byte[] Raw)> _tokens = [];
    private readonly byte[] _open = new byte[3]; // the first bytes of a character whose last has not come yet
    private int _openCount;
    private int _chars = textStart;

    private (string Text, int[] Bytes, byte[] Raw) Token(int id)
    {
        if (_tokens.TryGetValue(id, out var known)) return known;
        byte[] bytes = generator.TokenBytes(id);
        // A token holding part of a character reads as U+FFFD in the text; bytes stay exact.
        var entry = (Encoding.UTF8.GetString(bytes), Array.ConvertAll(bytes, b => (int)b), bytes);
        _tokens[id] = entry;
        return entry;
    }

    /// <summary>Chat's form for <paramref name="tokens"/>.</summary>
    public ChatLogprobs Chat(IReadOnlyList<TokenLogprobs> tokens)
    {
        var content = new ChatTokenLogprob[tokens.Count];
        for (int i = 0; i < content.Length; i++) content[i] = Chat(tokens[i]);
        return new ChatLogprobs(content, null);
    }

    private ChatTokenLogprob Chat(TokenLogprobs logprobs)
    {
        var (text, bytes, _) = Token(logprobs.Chosen.Token);
        var top = new ChatTopLogprob[logprobs.Top.Count];
        for (int i = 0; i < top.Length; i++)
        {
            var (altText, altBytes, _) = Token(logprobs.Top[i].Token);
            top[i] = new ChatTopLogprob(altText, logprobs.Top[i].Logprob, altBytes);
        }
        return new ChatTokenLogprob(text, logprobs.Chosen.Logprob, bytes, top);
    }

    /// <summary>Legacy form for <paramref name="tokens"/>; offsets continue from the tokens written before.</summary>
    public CompletionLogprobs Completion(IReadOnlyList<TokenLogprobs> tokens)
    {
        var texts = new List<string>(tokens.Count);
        var logprobs = new List<float>(tokens.Count);
        var tops = new List<Dictionary<string, float>>(tokens.Count);
        var offsets = new List<int>(tokens.Count);
        foreach (TokenLogprobs token in tokens)
        {
            var (text, _, raw) = Token(token.Chosen.Token);
            texts.Add(text);
            logprobs.Add(token.Chosen.Logprob);
            var top = new Dictionary<string, float>(token.Top.Count);
            foreach (TokenLogprob alternative in token.Top)
                top.TryAdd(Token(alternative.Token).Text, alternative.Logprob);   // two tokens may read alike; the likelier is kept
            tops.Add(top);
            offsets.Add(Advance(raw));
        }
        return new CompletionLogprobs(texts, logprobs, tops, offsets);
    }

    /// <summary>The offset of the token with bytes <paramref name="raw"/> (the characters of the text before it), and the
    /// text taken on past it. A character spread over tokens starts at its first token; first bytes that the next token
    /// does not continue are a U+FFFD of the text before that token.</summary>
    private int Advance(byte[] raw)
    {
        int length = _openCount + raw.Length;
        Span<byte> bytes = length <= 256 ? stackalloc byte[length] : new byte[length];
        Span<char> chars = length <= 256 ? stackalloc char[length] : new char[length];
        _open.AsSpan(0, _openCount).CopyTo(bytes);
        raw.CopyTo(bytes[_openCount..]);
        int offset = _chars;
        if (_openCount > 0 && raw.Length > 0 &&
            Utf8.ToUtf16(bytes[..(_openCount + 1)], chars, out _, out _, replaceInvalidSequences: false, isFinalBlock: false) == OperationStatus.InvalidData)
            offset++;
        Utf8.ToUtf16(bytes, chars, out int read, out int written, replaceInvalidSequences: true, isFinalBlock: false);
        _chars += written;
        _openCount = length - read;
        bytes[read..].CopyTo(_open);
        return offset;
    }
}
