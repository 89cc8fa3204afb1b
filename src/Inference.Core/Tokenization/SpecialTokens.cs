using System.Buffers;

namespace BitNet.Inference.Tokenization;

/// <summary>
/// The tokens that encoding recognises inside raw text, llama.cpp's special-token cache: every token
/// of type CONTROL, USER_DEFINED or UNKNOWN with a non-empty text. And the partition of a text
/// around them (llama.cpp tokenizer_st_partition).
/// </summary>
internal sealed class SpecialTokens
{
    private readonly Utf8Table _vocabulary;
    private readonly TokenType[] _types;
    private readonly int[] _ids;                 // by id; in partition order (longest text first, then by id) when _textsRepeat
    private readonly int[] _lengths;             // the distinct lengths of their texts, longest first
    private readonly SearchValues<byte> _firstBytes;
    private readonly bool _textsRepeat;          // some text is in the vocabulary twice

    public SpecialTokens(Utf8Table vocabulary, TokenType[] types)
    {
        _vocabulary = vocabulary;
        _types = types;
        int count = 0, longest = 0;
        for (int id = 0; id < types.Length; id++)
            if (IsSpecial(id)) count++;
        _ids = new int[count];
        Span<bool> startsAText = stackalloc bool[256];
        for (int id = 0, n = 0; id < types.Length; id++)
        {
            if (!IsSpecial(id)) continue;
            _ids[n++] = id;
            ReadOnlySpan<byte> text = vocabulary.Text(id);
            startsAText[text[0]] = true;
            longest = Math.Max(longest, text.Length);
        }
        var hasLength = new bool[longest + 1];
        foreach (int id in _ids) hasLength[vocabulary.Text(id).Length] = true;
        _lengths = [.. Enumerable.Range(0, longest + 1).Where(length => hasLength[length]).Reverse()];
        var firstBytes = new List<byte>();
        for (int b = 0; b < 256; b++)
            if (startsAText[b]) firstBytes.Add((byte)b);
        _firstBytes = SearchValues.Create([.. firstBytes]);
        _textsRepeat = vocabulary.RepeatedTexts > 0;
        if (_textsRepeat) SortForPartition(_ids);
    }

    private bool IsSpecial(int id) =>
        _types[id] is TokenType.Control or TokenType.UserDefined or TokenType.Unknown && _vocabulary.Text(id).Length > 0;

    /// <summary>
    /// Cut <paramref name="text"/> at the special tokens' texts: each token in turn, longest text
    /// first, cuts every raw fragment left so far at its occurrences, left to right. Returns
    /// (start, length, −1) for raw text and (start, length, id) for a special token.
    /// </summary>
    public List<(int Start, int Length, int Id)> Partition(ReadOnlySpan<byte> text)
    {
        var fragments = new List<(int Start, int Length, int Id)> { (0, text.Length, -1) };
        if (text.IsEmpty || _ids.Length == 0) return fragments;
        // Only tokens whose text occurs in the whole text can cut a fragment of it, and finding those
        // is one hash lookup per (position where some special text starts, special text length), where
        // trying every token is a search of the text per token: 128k of them in a `bitnet dummy` model.
        // With repeated texts the lookup names one of the equal tokens, maybe not the one llama.cpp
        // would use, so such a vocabulary is searched token by token.
        int[] candidates = _textsRepeat ? _ids : Occurring(text);
        var next = new List<(int, int, int)>();
        foreach (int id in candidates)
        {
            ReadOnlySpan<byte> special = _vocabulary.Text(id);
            if (special.Length > text.Length || text.IndexOf(special) < 0)
                continue;
            next.Clear();
            foreach (var fragment in fragments)
            {
                if (fragment.Id >= 0) { next.Add(fragment); continue; }
                int position = fragment.Start, end = fragment.Start + fragment.Length;
                while (position < end)
                {
                    int found = text[position..end].IndexOf(special);
                    if (found < 0) break;
                    found += position;
                    if (found > position) next.Add((position, found - position, -1));
                    next.Add((found, special.Length, id));
                    position = found + special.Length;
                }
                if (position < end) next.Add((position, end - position, -1));
            }
            (fragments, next) = (next, fragments);
        }
        return fragments;
    }

    /// <summary>The special tokens whose text occurs in <paramref name="text"/>, in partition order (texts unique in the vocabulary).</summary>
    private int[] Occurring(ReadOnlySpan<byte> text)
    {
        List<int>? found = null;
        for (int start = text.IndexOfAny(_firstBytes); start >= 0;)
        {
            foreach (int length in _lengths)
            {
                if (length > text.Length - start) continue;
                int id = _vocabulary.Find(text.Slice(start, length));
                if (id >= 0 && IsSpecial(id) && !(found ??= []).Contains(id)) found.Add(id);
            }
            int after = text[(start + 1)..].IndexOfAny(_firstBytes);
            start = after < 0 ? -1 : start + 1 + after;
        }
        if (found is null) return [];
        int[] ids = [.. found];
        SortForPartition(ids);
        return ids;
    }

    private void SortForPartition(int[] ids)
    {
        // Longest text first (llama.cpp sorts by length in bytes); equal lengths by id so the order is deterministic.
        var keys = new long[ids.Length];
        for (int i = 0; i < ids.Length; i++)
            keys[i] = (long)(int.MaxValue - _vocabulary.Text(ids[i]).Length) << 32 | (uint)ids[i];
        Array.Sort(keys);
        for (int i = 0; i < ids.Length; i++) ids[i] = (int)keys[i];
    }
}
