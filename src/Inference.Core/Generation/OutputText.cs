using BitNet.Inference.Sampling;
using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Generation;

/// <summary>
/// A generation's text on its way out: each token's piece from the detokenizer through the stop matcher,
/// and, when they were asked for, each token's log-probabilities, held until the update that carries the
/// start of its text. A stop string drops the text from its start on, and with it the log-probabilities of
/// the tokens that text came from (a token is out once any of its text is).
/// </summary>
internal sealed class OutputText(Tokenizer tokenizer, IReadOnlyList<string> stops)
{
    private readonly StreamingDetokenizer _detokenizer = new(tokenizer);
    private readonly StopStringMatcher _stops = new(stops);
    /// <summary>Held log-probabilities, each with the count of characters decoded before its token's.</summary>
    private Queue<(TokenLogprobs Logprobs, long Start)>? _held;
    private long _decoded, _released;
    /// <summary>The generation ended without a stop string: every held token's log-probabilities may go.</summary>
    private bool _allReleased;

    /// <summary>The stop string that ended the generation, else null.</summary>
    public string? StopString => _stops.Matched;

    /// <summary>Add a sampled token (and its log-probabilities, if asked for). Returns the text that may go out
    /// now; when a stop string completed, <paramref name="stopped"/> is true and the text is what came before it.</summary>
    public string Push(int token, TokenLogprobs? logprobs, out bool stopped)
    {
        if (logprobs is not null)
            (_held ??= new()).Enqueue((logprobs, _decoded));
        return Release(_detokenizer.Push(token), out stopped);
    }

    /// <summary>The generation ended: what the detokenizer and the stop matcher still hold, unless it completes a
    /// stop string (then what comes before it). Without a stop, every held token's log-probabilities may go.</summary>
    public string Flush()
    {
        string tail = Release(_detokenizer.Flush(), out bool stopped);
        if (stopped) return tail;
        _allReleased = true;
        return tail + _stops.Flush();
    }

    /// <summary>The log-probabilities of the tokens whose text began to go out since the last call, in order;
    /// null when none (or none were asked for).</summary>
    public List<TokenLogprobs>? TakeLogprobs()
    {
        List<TokenLogprobs>? ready = null;
        while (_held is not null && _held.TryPeek(out var held) && (held.Start < _released || _allReleased))
        {
            (ready ??= []).Add(held.Logprobs);
            _held.Dequeue();
        }
        return ready;
    }

    private string Release(string piece, out bool stopped)
    {
        _decoded += piece.Length;
        string text = _stops.Push(piece, out stopped);
        _released += text.Length;
        return text;
    }
}
