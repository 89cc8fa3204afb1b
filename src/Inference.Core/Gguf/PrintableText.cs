using System.Globalization;
using System.Text;

namespace BitNet.Inference.Gguf;

/// <summary>
/// Text from a model file made safe to print: a name with ESC or BEL in it must not drive the
/// terminal that shows the error. Control characters (C0, DEL, C1), bidirectional overrides and
/// lone surrogates become visible escapes (\x1B, \u202E); everything else is kept.
/// </summary>
public static class PrintableText
{
    /// <summary>The longest error message made from text of a model file (<see cref="EscapeMessage"/>).</summary>
    public const int MaxMessageChars = 1000;

    /// <summary>
    /// <see cref="Escape"/> for an error message, which quotes names and strings from the file: one
    /// longer than <see cref="MaxMessageChars"/> (a 100 kB architecture name, a merge of a megabyte)
    /// keeps its start and its end, where the offset is, and says how much of the middle it left out.
    /// </summary>
    public static string EscapeMessage(string message)
    {
        string escaped = Escape(message);
        if (escaped.Length <= MaxMessageChars) return escaped;
        int head = MaxMessageChars * 2 / 3, tail = MaxMessageChars / 4;
        if (char.IsLowSurrogate(escaped[head])) head--;                        // keep pairs whole
        if (char.IsLowSurrogate(escaped[escaped.Length - tail])) tail--;
        return string.Concat(escaped.AsSpan(0, head),
            $"… ({(escaped.Length - head - tail).ToString(CultureInfo.InvariantCulture)} characters left out) …",
            escaped.AsSpan(escaped.Length - tail));
    }

    public static string Escape(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        int first = 0;
        while (first < text.Length && !NeedsEscape(text, first)) first++;
        if (first == text.Length)
            return text;

        var builder = new StringBuilder(text.Length + 16).Append(text, 0, first);
        for (int i = first; i < text.Length; i++)
        {
            char c = text[i];
            if (char.IsHighSurrogate(c) && i + 1 < text.Length && char.IsLowSurrogate(text[i + 1]))
            {
                builder.Append(c).Append(text[++i]);
                continue;
            }
            if (!NeedsEscape(text, i))
                builder.Append(c);
            else if (c < 0x100)
                builder.Append(CultureInfo.InvariantCulture, $"\\x{(int)c:X2}");
            else
                builder.Append(CultureInfo.InvariantCulture, $"\\u{(int)c:X4}");
        }
        return builder.ToString();
    }

    private static bool NeedsEscape(string text, int i)
    {
        char c = text[i];
        if (char.IsHighSurrogate(c))
            return i + 1 >= text.Length || !char.IsLowSurrogate(text[i + 1]);
        if (char.IsLowSurrogate(c))
            return i == 0 || !char.IsHighSurrogate(text[i - 1]);
        return c < 0x20 || c is >= '\u007F' and <= '\u009F'
            || c is '\u200E' or '\u200F' or >= '\u202A' and <= '\u202E' or >= '\u2066' and <= '\u2069';
    }
}
