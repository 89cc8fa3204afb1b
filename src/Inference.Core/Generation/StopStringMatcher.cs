using System.Text;

namespace BitNet.Inference.Generation;

/// <summary>
/// Holds generated text back while it could still become a stop string, so that a stop string is
/// never emitted, not even its first half. Feed each newly decoded piece of text to
/// <see cref="Push"/>; it returns what is now safe to emit and whether a stop string completed.
/// </summary>
internal sealed class StopStringMatcher
{
    private readonly string[] _stops;
    private readonly StringBuilder _pending = new();

    public StopStringMatcher(IReadOnlyList<string> stops)
    {
        ArgumentNullException.ThrowIfNull(stops);
        _stops = stops.Where(s => !string.IsNullOrEmpty(s)).Distinct().ToArray();
    }

    /// <summary>The stop string that completed (the one starting first, the first listed on a tie), else null.</summary>
    public string? Matched { get; private set; }

    /// <summary>Text held back because it is a prefix of some stop string.</summary>
    public string Pending => _pending.ToString();

    /// <summary>
    /// Add <paramref name="text"/>. Returns the text that may be emitted now. When a stop string
    /// is complete, <paramref name="stopped"/> is true and the result is the text before it
    /// (the stop string and anything after it are dropped).
    /// </summary>
    public string Push(string text, out bool stopped)
    {
        stopped = false;
        if (_stops.Length == 0) return text;
        _pending.Append(text);
        if (_pending.Length == 0) return "";
        string pending = _pending.ToString();

        int stopAt = -1;
        string? matched = null;
        foreach (string stop in _stops)
        {
            int i = pending.IndexOf(stop, StringComparison.Ordinal);
            if (i >= 0 && (stopAt < 0 || i < stopAt)) (stopAt, matched) = (i, stop);
        }
        if (stopAt >= 0)
        {
            stopped = true;
            Matched = matched;
            _pending.Clear();
            return pending[..stopAt];
        }

        // Hold back the longest tail that is a proper prefix of some stop string.
        int keep = 0;
        foreach (string stop in _stops)
        {
            for (int length = Math.Min(stop.Length - 1, pending.Length); length > keep; length--)
            {
                if (pending.AsSpan(pending.Length - length).SequenceEqual(stop.AsSpan(0, length)))
                {
                    keep = length;
                    break;
                }
            }
        }
        _pending.Clear();
        _pending.Append(pending, pending.Length - keep, keep);
        return pending[..^keep];
    }

    /// <summary>The generation ended without a stop string: whatever was held back can go out.</summary>
    public string Flush()
    {
        string rest = _pending.ToString();
        _pending.Clear();
        return rest;
    }
}
