namespace BitNet.Inference.Tokenization;

/// <summary>
/// The merge table of a byte-level BPE vocabulary: the "left right" texts of the merges, ranked by
/// their place in the list, and the merge loop over one piece of byte-level text (spec §6.3).
/// </summary>
/// <remarks>
/// Symbols are spans of the piece's byte-level text, as in llama.cpp: merging two neighbours only
/// moves a boundary, the rank of a pair is found by its text, and a merged text that is not a
/// token still merges further. So building the table is copying the merge texts once and hashing
/// them (Llama 3's 280k merges: a few milliseconds), with no vocabulary lookups at load.
/// </remarks>
internal sealed class BpeMerges
{
    private readonly Utf8Table _ranks;   // "left right" → rank (the first appearance of a pair)

    private BpeMerges(Utf8Table ranks) => _ranks = ranks;

    /// <summary>How many merges the list has (repeated pairs included).</summary>
    public int Count => _ranks.Count;

    /// <summary>The table of "left right" merge texts (rank = index; the first occurrence of a pair wins).</summary>
    public static BpeMerges Build(IReadOnlyList<string> merges)
    {
        var ranks = Utf8Table.Build(merges, Utf8Table.Duplicates.KeepFirst);
        for (int rank = 0; rank < ranks.Count; rank++)
        {
            // The separator is the first space after the first byte (llama.cpp: find(' ', 1)).
            ReadOnlySpan<byte> text = ranks.Text(rank);
            if (text.Length < 2 || text[1..].IndexOf((byte)' ') < 0)
                throw new TokenizerException($"merge {rank} ('{System.Text.Encoding.UTF8.GetString(text)}') is not of the form 'left right'");
        }
        return new BpeMerges(ranks);
    }

    /// <summary>
    /// Merge the symbols of <paramref name="text"/> in place: symbol i is
    /// text[starts[i] .. starts[i + 1]), for <paramref name="count"/> symbols (starts has count + 1
    /// entries). Repeatedly merges the adjacent pair with the lowest rank, the leftmost one on a tie,
    /// until no adjacent pair is a merge. Returns the new count. <paramref name="pairRanks"/> needs
    /// count − 1 entries, <paramref name="scratch"/> text.Length + 1 bytes.
    /// </summary>
    public int Merge(ReadOnlySpan<byte> text, Span<int> starts, int count, Span<int> pairRanks, Span<byte> scratch) =>
        count > RescanUpTo ? MergeThroughAHeap(text, starts, count, scratch) : MergeByRescanning(text, starts, count, pairRanks, scratch);

    /// <summary>The longest piece merged by rescanning its pairs after each merge: quadratic, but faster than a heap for words.</summary>
    internal const int RescanUpTo = 128;

    internal int MergeByRescanning(ReadOnlySpan<byte> text, Span<int> starts, int count, Span<int> pairRanks, Span<byte> scratch)
    {
        int n = count;
        for (int i = 0; i + 1 < n; i++)
            pairRanks[i] = RankOf(text, starts[i], starts[i + 1], starts[i + 2], scratch);
        while (n > 1)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < n; i++)
            {
                if (pairRanks[i] < bestRank) { bestRank = pairRanks[i]; best = i; }
            }
            if (best < 0) break;
            // Symbol best absorbs best + 1: drop the boundary between them and the pair rank that started at best + 1.
            starts.Slice(best + 2, n - best - 1).CopyTo(starts[(best + 1)..]);
            if (best + 1 < n - 1)
                pairRanks.Slice(best + 2, n - best - 3).CopyTo(pairRanks[(best + 1)..]);
            n--;
            if (best > 0) pairRanks[best - 1] = RankOf(text, starts[best - 1], starts[best], starts[best + 1], scratch);
            if (best + 1 < n) pairRanks[best] = RankOf(text, starts[best], starts[best + 1], starts[best + 2], scratch);
        }
        return n;
    }

    /// <summary>
    /// The same merges for a long piece (a prompt can be one word of a megabyte, which rescanning
    /// takes minutes over): the pairs wait in a heap ordered by (rank, position), as in llama.cpp,
    /// over a linked list of symbols. An entry whose symbols have since merged with others is stale
    /// and skipped: a symbol only ever grows to the right, so the pair is unchanged while its left
    /// symbol is alive, still followed by the right one, and the right one still ends where it did.
    /// </summary>
    internal int MergeThroughAHeap(ReadOnlySpan<byte> text, Span<int> starts, int count, Span<byte> scratch)
    {
        int end = starts[count];
        var start = new int[count];   // -1 once merged into its left neighbour
        var next = new int[count];    // count after the last symbol
        var prev = new int[count];    // -1 before the first
        for (int i = 0; i < count; i++)
        {
            start[i] = starts[i];
            next[i] = i + 1;
            prev[i] = i - 1;
        }
        var pairs = new PriorityQueue<(int Left, int Right, int RightEnd), (int Rank, int Position)>(count);
        for (int i = 0; i + 1 < count; i++)
            QueuePair(pairs, text, start, next, end, i, scratch);
        while (pairs.TryDequeue(out var pair, out _))
        {
            var (left, right, rightEnd) = pair;
            if (start[left] < 0 || next[left] != right || EndOf(start, next, end, right) != rightEnd)
                continue;
            int after = next[right];
            next[left] = after;
            if (after < count) prev[after] = left;
            start[right] = -1;
            if (prev[left] >= 0) QueuePair(pairs, text, start, next, end, prev[left], scratch);
            if (after < count) QueuePair(pairs, text, start, next, end, left, scratch);
        }
        int n = 0;
        for (int i = 0; i < count; i = next[i])
            starts[n++] = start[i];
        starts[n] = end;
        return n;
    }

    private static int EndOf(int[] start, int[] next, int end, int symbol) => next[symbol] < start.Length ? start[next[symbol]] : end;

    private void QueuePair(PriorityQueue<(int, int, int), (int, int)> pairs, ReadOnlySpan<byte> text, int[] start, int[] next, int end, int left, Span<byte> scratch)
    {
        int right = next[left], rightEnd = EndOf(start, next, end, right);
        int rank = RankOf(text, start[left], start[right], rightEnd, scratch);
        if (rank != int.MaxValue)
            pairs.Enqueue((left, right, rightEnd), (rank, start[left]));
    }

    /// <summary>The rank of the pair text[left .. middle) + text[middle .. end), or int.MaxValue when it is not a merge.</summary>
    private int RankOf(ReadOnlySpan<byte> text, int left, int middle, int end, Span<byte> scratch)
    {
        // The merge's text is "left right": byte-level text never holds a space (it is 'Ġ'), so the
        // first space in it is the separator, as when the list was read.
        int leftLength = middle - left, length = end - left + 1;
        text[left..middle].CopyTo(scratch);
        scratch[leftLength] = (byte)' ';
        text[middle..end].CopyTo(scratch[(leftLength + 1)..]);
        int rank = _ranks.Find(scratch[..length]);
        return rank >= 0 ? rank : int.MaxValue;
    }
}

/// <summary>The tokenizer data in a model file is missing or inconsistent.</summary>
public sealed class TokenizerException(string message) : Exception(Gguf.PrintableText.EscapeMessage(message));
