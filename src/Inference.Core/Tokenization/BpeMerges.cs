namespace BitNet.Inference.Tokenization;

/// <summary>
/// The merge table of a byte-level BPE vocabulary, over integer symbols instead of strings.
/// Symbols 0..vocabSize-1 are the vocabulary tokens; a string that appears in a merge but is not a
/// token gets an extra symbol id after them, so merging never needs string concatenation and a
/// merge result that is not a token still merges further exactly as the string algorithm would.
/// </summary>
internal sealed class BpeMerges
{
    private readonly Dictionary<long, int> _rankOfPair;   // (left << 32 | right) → rank = index in the merges list
    private readonly int[] _resultOfRank;                  // rank → merged symbol
    private readonly List<string> _extraSymbols;           // symbol vocabSize + i → its text
    private readonly int _vocabSize;
    private readonly int[] _byteSymbols;                    // byte → symbol of its one-character byte-level text

    private BpeMerges(Dictionary<long, int> rankOfPair, int[] resultOfRank, List<string> extraSymbols, int vocabSize, int[] byteSymbols)
    {
        _byteSymbols = byteSymbols;
        _rankOfPair = rankOfPair;
        _resultOfRank = resultOfRank;
        _extraSymbols = extraSymbols;
        _vocabSize = vocabSize;
    }

    public int VocabSize => _vocabSize;

    /// <summary>The symbol a piece starts from for one input byte.</summary>
    public int ByteSymbol(byte b) => _byteSymbols[b];

    /// <summary>Text of a symbol that is not a vocabulary token (id ≥ vocab size).</summary>
    public string ExtraSymbolText(int symbol) => _extraSymbols[symbol - _vocabSize];

    /// <summary>
    /// Builds the table from "left right" merge strings (rank = index; the first occurrence of a
    /// pair wins). <paramref name="vocabulary"/> maps token text to id.
    /// </summary>
    public static BpeMerges Build(IReadOnlyList<string> merges, Dictionary<string, int> vocabulary, int vocabSize)
    {
        var lookup = vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        var extra = new List<string>();
        Dictionary<string, int>? extraIds = null;
        var rankOfPair = new Dictionary<long, int>(merges.Count, PairComparer.Instance);
        var resultOfRank = new int[merges.Count];
        Span<char> joined = stackalloc char[256];

        int SymbolOf(ReadOnlySpan<char> text)
        {
            if (lookup.TryGetValue(text, out int id)) return id;
            extraIds ??= new Dictionary<string, int>();
            string s = text.ToString();
            if (!extraIds.TryGetValue(s, out id))
            {
                id = vocabSize + extra.Count;
                extra.Add(s);
                extraIds.Add(s, id);
            }
            return id;
        }

        for (int rank = 0; rank < merges.Count; rank++)
        {
            string merge = merges[rank];
            // The separator is the first space after the first character (llama.cpp: find(' ', 1)).
            int space = merge.Length > 1 ? merge.IndexOf(' ', 1) : -1;
            if (space < 0)
                throw new TokenizerException($"merge {rank} ('{merge}') is not of the form 'left right'");
            ReadOnlySpan<char> left = merge.AsSpan(0, space), right = merge.AsSpan(space + 1);
            int l = SymbolOf(left), r = SymbolOf(right);
            long key = (long)l << 32 | (uint)r;
            if (!rankOfPair.TryAdd(key, rank))
            {
                resultOfRank[rank] = -1;
                continue;
            }
            int length = left.Length + right.Length;
            Span<char> buffer = length <= joined.Length ? joined[..length] : new char[length];
            left.CopyTo(buffer);
            right.CopyTo(buffer[left.Length..]);
            resultOfRank[rank] = SymbolOf(buffer);
        }
        var byteSymbols = new int[256];
        for (int b = 0; b < 256; b++)
        {
            joined[0] = ByteLevelEncoding.Encode((byte)b);
            byteSymbols[b] = SymbolOf(joined[..1]);
        }
        return new BpeMerges(rankOfPair, resultOfRank, extra, vocabSize, byteSymbols);
    }

    /// <summary>
    /// Merge the symbols in place (spec §6.3): repeatedly merge the adjacent pair with the lowest
    /// rank, the leftmost one on a tie, until no adjacent pair has a rank. Returns the new count.
    /// </summary>
    public int Merge(Span<int> symbols, Span<int> pairRanks)
    {
        int n = symbols.Length;
        for (int i = 0; i + 1 < n; i++)
            pairRanks[i] = RankOf(symbols[i], symbols[i + 1]);
        while (n > 1)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < n; i++)
            {
                if (pairRanks[i] < bestRank) { bestRank = pairRanks[i]; best = i; }
            }
            if (best < 0) break;
            symbols[best] = _resultOfRank[bestRank];
            // Remove symbol best+1 and the pair rank that started at it.
            symbols.Slice(best + 2, n - best - 2).CopyTo(symbols[(best + 1)..]);
            if (best + 1 < n - 1)
                pairRanks.Slice(best + 2, n - best - 3).CopyTo(pairRanks[(best + 1)..]);
            n--;
            if (best > 0) pairRanks[best - 1] = RankOf(symbols[best - 1], symbols[best]);
            if (best + 1 < n) pairRanks[best] = RankOf(symbols[best], symbols[best + 1]);
        }
        return n;
    }

    private int RankOf(int left, int right) =>
        _rankOfPair.TryGetValue((long)left << 32 | (uint)right, out int rank) ? rank : int.MaxValue;
}

/// <summary>
/// Hashes a (left, right) pair key well. long.GetHashCode is left ^ right, which for ids below
/// 2^17 folds 280k pairs onto a few thousand buckets and makes every lookup walk a long chain.
/// </summary>
internal sealed class PairComparer : IEqualityComparer<long>
{
    public static readonly PairComparer Instance = new();

    public bool Equals(long x, long y) => x == y;

    public int GetHashCode(long key) => (int)(((ulong)key * 0x9E3779B97F4A7C15UL) >> 32);
}

/// <summary>The tokenizer data in a model file is missing or inconsistent.</summary>
public sealed class TokenizerException(string message) : Exception(message);
