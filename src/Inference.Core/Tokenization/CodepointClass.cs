using System.Globalization;
using System.Text;

namespace BitNet.Inference.Tokenization;

/// <summary>
/// The character classes the pre-tokenizers look at, as llama.cpp's unicode tables define them:
/// letter = L*, number = N*, punctuation = P*, whitespace = the Unicode White_Space property
/// (which is exactly what <see cref="Rune.IsWhiteSpace"/> tests). Marks (M*) are none of these.
/// </summary>
[Flags]
internal enum CodepointClass : byte
{
    None = 0,
    Letter = 1,
    Number = 2,
    Whitespace = 4,
    Punctuation = 8,
    /// <summary>Set for every real code point, so "no flags at all" means "past the end" (llama.cpp's OUT_OF_RANGE).</summary>
    Present = 16,
}

/// <summary>A piece of text decoded once into code points and their classes, for the splitters.</summary>
internal sealed class CodepointText
{
    public readonly int[] Codepoints;
    public readonly CodepointClass[] Classes;
    public readonly int Length;

    /// <summary>The code points of a string, through its UTF-8 (a lone surrogate becomes U+FFFD, as the tokenizer sees it).</summary>
    public CodepointText(ReadOnlySpan<char> text) : this(Encoding.UTF8.GetBytes(text.ToArray()))
    {
    }

    /// <summary>The code points of UTF-8 text (an invalid sequence decodes to U+FFFD).</summary>
    public CodepointText(ReadOnlySpan<byte> utf8)
    {
        Codepoints = new int[utf8.Length];
        Classes = new CodepointClass[utf8.Length];
        int n = 0;
        while (!utf8.IsEmpty)
        {
            Rune.DecodeFromUtf8(utf8, out Rune rune, out int used);
            Codepoints[n] = rune.Value;
            Classes[n] = Classify(rune);
            n++;
            utf8 = utf8[used..];
        }
        Length = n;
    }

    /// <summary>Class of position i, or None past the end of [.., end).</summary>
    public CodepointClass At(int i, int end) => i < end ? Classes[i] : CodepointClass.None;

    /// <summary>Code point at i, or -1 past the end of [.., end).</summary>
    public int CodepointAt(int i, int end) => i < end ? Codepoints[i] : -1;

    public static CodepointClass Classify(Rune rune)
    {
        var result = CodepointClass.Present;
        if (Rune.IsWhiteSpace(rune))
            result |= CodepointClass.Whitespace;
        switch (Rune.GetUnicodeCategory(rune))
        {
            case UnicodeCategory.UppercaseLetter:
            case UnicodeCategory.LowercaseLetter:
            case UnicodeCategory.TitlecaseLetter:
            case UnicodeCategory.ModifierLetter:
            case UnicodeCategory.OtherLetter:
                result |= CodepointClass.Letter;
                break;
            case UnicodeCategory.DecimalDigitNumber:
            case UnicodeCategory.LetterNumber:
            case UnicodeCategory.OtherNumber:
                result |= CodepointClass.Number;
                break;
            case UnicodeCategory.ConnectorPunctuation:
            case UnicodeCategory.DashPunctuation:
            case UnicodeCategory.OpenPunctuation:
            case UnicodeCategory.ClosePunctuation:
            case UnicodeCategory.InitialQuotePunctuation:
            case UnicodeCategory.FinalQuotePunctuation:
            case UnicodeCategory.OtherPunctuation:
                result |= CodepointClass.Punctuation;
                break;
        }
        return result;
    }
}
