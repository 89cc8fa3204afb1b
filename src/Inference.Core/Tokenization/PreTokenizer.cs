namespace BitNet.Inference.Tokenization;

/// <summary>How text is cut into pieces before BPE merges run inside each piece.</summary>
public enum PreTokenizerKind
{
    /// <summary>
    /// The Llama-3 split regex, as Hugging Face tokenizers and llama.cpp's `llama-bpe` run it, with
    /// `ignore_merges` (a piece that is itself a vocabulary entry is taken whole). Our default.
    /// </summary>
    Llama3,

    /// <summary>
    /// llama.cpp's `default` (four successive splits): what bitnet.cpp uses for the published 2B4T
    /// file, which has no `tokenizer.ggml.pre` key. Use it for token-for-token parity with bitnet.cpp.
    /// </summary>
    Default,

    /// <summary>
    /// bitnet.cpp's `falcon3` and `falcon_e` (llama-vocab.cpp, LLAMA_VOCAB_PRE_TYPE_FALCON_3/_E): the
    /// default's punctuation runs and GPT-2 split, then every ASCII digit on its own (`[0-9]`).
    /// </summary>
    Falcon3,
}

/// <summary>A piece of pre-tokenized text: code point positions [Start, End).</summary>
internal readonly record struct Piece(int Start, int End);

/// <summary>
/// The two pre-tokenizers, written by hand over code points (no regex backtracking). Each rule
/// mirrors one alternative of the pattern it implements; the comments quote the alternative.
/// </summary>
internal static class PreTokenizer
{
    public static PreTokenizerKind Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "llama3" or "llama-bpe" or "llama-v3" => PreTokenizerKind.Llama3,
        "default" => PreTokenizerKind.Default,
        "falcon3" or "falcon_e" => PreTokenizerKind.Falcon3,
        _ => throw new ArgumentException($"unknown pre-tokenizer '{name}'; expected 'llama3', 'default' or 'falcon3'", nameof(name)),
    };

    public static string Name(PreTokenizerKind kind) => kind switch
    {
        PreTokenizerKind.Llama3 => "llama3",
        PreTokenizerKind.Falcon3 => "falcon3",
        _ => "default",
    };

    /// <summary>Split text[start, end) into pieces, appended to <paramref name="output"/>.</summary>
    public static void Split(PreTokenizerKind kind, CodepointText text, int start, int end, List<Piece> output)
    {
        if (kind == PreTokenizerKind.Llama3)
        {
            SplitLlama3(text, start, end, output);
            return;
        }
        // default and falcon3: each step splits only inside the pieces the step before produced.
        var a = new List<Piece>();
        var b = new List<Piece>();
        SplitPunctuationRuns(text, start, end, a);
        foreach (var p in a) SplitGpt2(text, p.Start, p.End, b);
        if (kind == PreTokenizerKind.Falcon3)
        {
            foreach (var p in b) SplitAsciiDigits(text, p.Start, p.End, output);
            return;
        }
        a.Clear();
        foreach (var p in b) SplitNumberRuns(text, p.Start, p.End, a);
        foreach (var p in a) SplitAsciiDigitTriples(text, p.Start, p.End, output);
    }

    private static bool IsNewline(int cp) => cp is '\r' or '\n';

    // (?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}
    // | ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+
    private static void SplitLlama3(CodepointText t, int start, int end, List<Piece> output)
    {
        int pos = start;
        while (pos < end)
        {
            int from = pos;
            int cp = t.Codepoints[pos];
            CodepointClass cls = t.Classes[pos];

            // Contractions, case-insensitive.
            if (cp == '\'' && pos + 1 < end)
            {
                int next = AsciiLower(t.Codepoints[pos + 1]);
                if (next is 's' or 't' or 'm' or 'd')
                {
                    output.Add(new Piece(from, pos += 2));
                    continue;
                }
                if (pos + 2 < end)
                {
                    int nextNext = AsciiLower(t.Codepoints[pos + 2]);
                    if (next == 'r' && nextNext == 'e' || next == 'v' && nextNext == 'e' || next == 'l' && nextNext == 'l')
                    {
                        output.Add(new Piece(from, pos += 3));
                        continue;
                    }
                }
            }

            // [^\r\n\p{L}\p{N}]?\p{L}+ : a letter run, possibly led by one other non-number character.
            if (!IsNewline(cp) && (cls & CodepointClass.Number) == 0
                && ((cls & CodepointClass.Letter) != 0 || (t.At(pos + 1, end) & CodepointClass.Letter) != 0))
            {
                pos++;
                while ((t.At(pos, end) & CodepointClass.Letter) != 0) pos++;
                output.Add(new Piece(from, pos));
                continue;
            }

            // \p{N}{1,3}
            if ((cls & CodepointClass.Number) != 0)
            {
                int count = 0;
                while (count < 3 && (t.At(pos, end) & CodepointClass.Number) != 0) { pos++; count++; }
                output.Add(new Piece(from, pos));
                continue;
            }

            //  ?[^\s\p{L}\p{N}]+[\r\n]*
            CodepointClass afterSpace = cp == ' ' ? t.At(pos + 1, end) : cls;
            if (IsOther(afterSpace))
            {
                if (cp == ' ') pos++;
                while (IsOther(t.At(pos, end))) pos++;
                while (IsNewline(t.CodepointAt(pos, end))) pos++;
                output.Add(new Piece(from, pos));
                continue;
            }

            // The whitespace alternatives all start from the whitespace run at pos.
            int runEnd = pos, lastNewlineEnd = -1;
            while ((t.At(runEnd, end) & CodepointClass.Whitespace) != 0)
            {
                if (IsNewline(t.Codepoints[runEnd])) lastNewlineEnd = runEnd + 1;
                runEnd++;
            }
            if (lastNewlineEnd > 0)                         // \s*[\r\n]+
                pos = lastNewlineEnd;
            else if (runEnd - pos > 1 && runEnd < end)      // \s+(?!\S): leave the last space for the next piece
                pos = runEnd - 1;
            else if (runEnd > pos)                          // \s+
                pos = runEnd;
            else
                pos++;                                      // nothing matched (cannot happen: every class is covered)
            output.Add(new Piece(from, pos));
        }
    }

    // 's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S), as llama.cpp's custom
    // GPT-2 splitter runs it: a lone whitespace that the pattern would skip becomes its own piece.
    private static void SplitGpt2(CodepointText t, int start, int end, List<Piece> output)
    {
        int pos = start;
        while (pos < end)
        {
            int from = pos;
            int cp = t.Codepoints[pos];

            // Contractions, lower case only.
            if (cp == '\'' && pos + 1 < end)
            {
                int next = t.Codepoints[pos + 1];
                if (next is 's' or 't' or 'm' or 'd')
                {
                    output.Add(new Piece(from, pos += 2));
                    continue;
                }
                if (pos + 2 < end)
                {
                    int nextNext = t.Codepoints[pos + 2];
                    if (next == 'r' && nextNext == 'e' || next == 'v' && nextNext == 'e' || next == 'l' && nextNext == 'l')
                    {
                        output.Add(new Piece(from, pos += 3));
                        continue;
                    }
                }
            }

            CodepointClass cls = cp == ' ' ? t.At(pos + 1, end) : t.Classes[pos];
            if ((cls & CodepointClass.Letter) != 0)          //  ?\p{L}+
            {
                if (cp == ' ') pos++;
                while ((t.At(pos, end) & CodepointClass.Letter) != 0) pos++;
                output.Add(new Piece(from, pos));
                continue;
            }
            if ((cls & CodepointClass.Number) != 0)          //  ?\p{N}+
            {
                if (cp == ' ') pos++;
                while ((t.At(pos, end) & CodepointClass.Number) != 0) pos++;
                output.Add(new Piece(from, pos));
                continue;
            }
            if (IsOther(cls))                                //  ?[^\s\p{L}\p{N}]+
            {
                if (cp == ' ') pos++;
                while (IsOther(t.At(pos, end))) pos++;
                output.Add(new Piece(from, pos));
                continue;
            }

            int runEnd = pos;
            while ((t.At(runEnd, end) & CodepointClass.Whitespace) != 0) runEnd++;
            if (runEnd - pos > 1 && runEnd < end)            // \s+(?!\S)
                pos = runEnd - 1;
            else if (runEnd > pos)                           // \s+
                pos = runEnd;
            else
                pos++;
            output.Add(new Piece(from, pos));
        }
    }

    /// <summary>Not whitespace, letter or number, and not past the end.</summary>
    private static bool IsOther(CodepointClass cls) =>
        cls != CodepointClass.None && (cls & (CodepointClass.Whitespace | CodepointClass.Letter | CodepointClass.Number)) == 0;

    private static int AsciiLower(int cp) => cp is >= 'A' and <= 'Z' ? cp + 32 : cp;

    // [\p{P}\$\+<=>\^~\|]+ : punctuation runs become pieces of their own; so do the stretches between.
    private static void SplitPunctuationRuns(CodepointText t, int start, int end, List<Piece> output) =>
        SplitRuns(t, start, end, output, static (t, i) =>
            (t.Classes[i] & CodepointClass.Punctuation) != 0 || t.Codepoints[i] is '$' or '+' or '<' or '=' or '>' or '^' or '~' or '|');

    // \p{N}+
    private static void SplitNumberRuns(CodepointText t, int start, int end, List<Piece> output) =>
        SplitRuns(t, start, end, output, static (t, i) => (t.Classes[i] & CodepointClass.Number) != 0);

    /// <param name="singles">Matches are one code point long: a run of them gives one piece each.</param>
    private static void SplitRuns(CodepointText t, int start, int end, List<Piece> output, Func<CodepointText, int, bool> inRun, bool singles = false)
    {
        int pos = start;
        while (pos < end)
        {
            int from = pos;
            bool run = inRun(t, pos);
            if (run && singles) pos++;
            else while (pos < end && inRun(t, pos) == run) pos++;
            output.Add(new Piece(from, pos));
        }
    }

    // [0-9][0-9][0-9] : leftmost non-overlapping matches; what lies between them stays a piece.
    private static void SplitAsciiDigitTriples(CodepointText t, int start, int end, List<Piece> output)
    {
        int pieceStart = start, pos = start;
        while (pos + 3 <= end)
        {
            if (IsAsciiDigit(t.Codepoints[pos]) && IsAsciiDigit(t.Codepoints[pos + 1]) && IsAsciiDigit(t.Codepoints[pos + 2]))
            {
                if (pos > pieceStart) output.Add(new Piece(pieceStart, pos));
                output.Add(new Piece(pos, pos + 3));
                pos += 3;
                pieceStart = pos;
            }
            else
            {
                pos++;
            }
        }
        if (end > pieceStart) output.Add(new Piece(pieceStart, end));
    }

    private static bool IsAsciiDigit(int cp) => cp is >= '0' and <= '9';

    // [0-9] : each ASCII digit becomes a piece; the stretches between them stay pieces.
    private static void SplitAsciiDigits(CodepointText t, int start, int end, List<Piece> output) =>
        SplitRuns(t, start, end, output, static (t, i) => IsAsciiDigit(t.Codepoints[i]), singles: true);
}
