using System.Numerics;
using System.Runtime.InteropServices;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Tokenization;

/// <summary>
/// The merge table of a byte-level BPE vocabulary, over integer symbols instead of strings.
/// Symbols 0..vocabSize-1 are the vocabulary tokens; a string that appears in a merge but is not a
/// token gets an extra symbol id after them, so merging never needs string concatenation and a
/// merge result that is not a token still merges further exactly as the string algorithm would.
/// </summary>
internal sealed class BpeMerges
{
    private readonly PairRanks _rankOfPair;                // (left, right) → rank = index in the merges list
    private readonly int[] _resultOfRank;                  // rank → merged symbol
    private readonly List<string> _extraSymbols;           // symbol vocabSize + i → its text
    private readonly int _vocabSize;
    private readonly int[] _byteSymbols;                    // byte → symbol of its one-character byte-level text

    private BpeMerges(PairRanks rankOfPair, int[] resultOfRank, List<string> extraSymbols, int vocabSize, int[] byteSymbols)
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
    /// <remarks>
    /// In two phases, because looking up Llama 3's 280k merges is most of a cold start's tokenizer
    /// (measured in the AOT binary: 130–170 ms of ~165 ms, three dictionary lookups per merge that
    /// mostly miss the caches). First, the vocabulary ids of every merge's left, right and joined text
    /// (−1 for a text that is not a token): read-only lookups, split between this thread and one
    /// more. Then, in rank order, what depends on order: extra symbols get ids in order of first
    /// appearance (left, right, then the joined text unless the pair is a repeat), and each pair
    /// keeps its first rank. The result is the same table as a single in-order pass.
    /// </remarks>
    public static BpeMerges Build(IReadOnlyList<string> merges, Dictionary<string, int> vocabulary, int vocabSize) =>
        Build(merges, vocabulary, vocabSize, ParallelLookupMerges);

    /// <summary><see cref="Build(IReadOnlyList{string}, Dictionary{string, int}, int)"/> with the list length from which the lookups are split in two (tests compare both ways).</summary>
    internal static unsafe BpeMerges Build(IReadOnlyList<string> merges, Dictionary<string, int> vocabulary, int vocabSize, int parallelFrom)
    {
        int count = merges.Count;
        // Per rank: the separator's index (−1: malformed), then the ids of left, right and joined. In
        // huge-page memory, for the reason PairRanks gives (4.5 MB for Llama 3), and freed on return.
        using var foundBlock = new HugePageBlock(4L * count * sizeof(int));
        var found = new Span<int>(foundBlock.Start, 4 * count);
        // A merge list still in the file is read as characters, without a string per merge.
        var utf8 = merges as Gguf.Utf8StringArray;
        ReadOnlySpan<char> MergeText(int rank, Span<char> buffer) => utf8 is null ? merges[rank] : utf8.Chars(rank, buffer);
        void Lookup(int from, int to)
        {
            var found = new Span<int>(foundBlock.Start, 4 * count);   // (a span cannot be captured)
            var lookup = vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
            Span<char> buffer = stackalloc char[256];
            Span<char> text = stackalloc char[256];
            for (int rank = from; rank < to; rank++)
            {
                ReadOnlySpan<char> merge = MergeText(rank, text);
                // The separator is the first space after the first character (llama.cpp: find(' ', 1)).
                int space = merge.Length > 1 && merge[1..].IndexOf(' ') is int after and >= 0 ? after + 1 : -1;
                found[4 * rank] = space;
                if (space < 0) continue;
                ReadOnlySpan<char> left = merge[..space], right = merge[(space + 1)..];
                found[4 * rank + 1] = lookup.TryGetValue(left, out int l) ? l : -1;
                found[4 * rank + 2] = lookup.TryGetValue(right, out int r) ? r : -1;
                int length = left.Length + right.Length;
                Span<char> joined = length <= buffer.Length ? buffer[..length] : new char[length];
                left.CopyTo(joined);
                right.CopyTo(joined[left.Length..]);
                found[4 * rank + 3] = lookup.TryGetValue(joined, out int m) ? m : -1;
            }
        }
        Threading.SplitInTwo.Run(count, Lookup, parallel: count >= parallelFrom);

        var extra = new List<string>();
        Dictionary<string, int>? extraIds = null;
        var rankOfPair = new PairRanks(count);
        var resultOfRank = new int[count];

        int SymbolOf(int vocabularyId, ReadOnlySpan<char> text)
        {
            if (vocabularyId >= 0) return vocabularyId;
            extraIds ??= new Dictionary<string, int>();
            string s = text.ToString();
            if (!extraIds.TryGetValue(s, out int id))
            {
                id = vocabSize + extra.Count;
                extra.Add(s);
                extraIds.Add(s, id);
            }
            return id;
        }

        Span<char> mergeText = stackalloc char[256];
        for (int rank = 0; rank < count; rank++)
        {
            ReadOnlySpan<char> merge = MergeText(rank, mergeText);
            int space = found[4 * rank];
            if (space < 0)
                throw new TokenizerException($"merge {rank} ('{merge}') is not of the form 'left right'");
            ReadOnlySpan<char> left = merge[..space], right = merge[(space + 1)..];
            int l = SymbolOf(found[4 * rank + 1], left), r = SymbolOf(found[4 * rank + 2], right);
            if (!rankOfPair.TryAdd(l, r, rank))
            {
                resultOfRank[rank] = -1;
                continue;
            }
            resultOfRank[rank] = found[4 * rank + 3] >= 0 ? found[4 * rank + 3] : SymbolOf(-1, string.Concat(left, right));
        }
        var byteSymbols = new int[256];
        var byteLookup = vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();
        Span<char> one = stackalloc char[1];
        for (int b = 0; b < 256; b++)
        {
            one[0] = ByteLevelEncoding.Encode((byte)b);
            byteSymbols[b] = SymbolOf(byteLookup.TryGetValue(one, out int id) ? id : -1, one);
        }
        return new BpeMerges(rankOfPair, resultOfRank, extra, vocabSize, byteSymbols);
    }

    /// <summary>Merge lists at least this long are looked up on two threads (Llama 3 has 280k; tests' toy lists stay on one).</summary>
    internal const int ParallelLookupMerges = 16384;

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

    private int RankOf(int left, int right) => _rankOfPair.RankOf(left, right);
}

/// <summary>
/// (left, right) symbol pair → merge rank: open addressing with linear probing, at most 3/4 full, in
/// one block of huge-page memory. Why not a Dictionary: with Llama 3's 280k merges its entries were
/// 7.8 MB of fresh 4 KB pages faulted in one at a time while the table filled, in the one-thread part
/// of the build on the path to the first token (~2,000 faults at ~11 µs each on this project's VM);
/// here they are a few 2 MB pages. Keys are hashed by a multiply (Fibonacci hashing): long.GetHashCode
/// (left ^ right) would fold 280k pairs of ids below 2^17 onto a few thousand values.
/// </summary>
internal sealed unsafe class PairRanks
{
    private readonly HugePageBlock _block;   // keys, then ranks; held so the memory lives as long as this
    private readonly ulong* _keys;
    private readonly int* _ranksPlusOne;     // 0: an empty slot
    private readonly int _shift;
    private readonly long _mask;
    private int _count;

    /// <summary>A table for up to <paramref name="capacity"/> pairs.</summary>
    public PairRanks(int capacity)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(capacity);
        long slots = (long)BitOperations.RoundUpToPowerOf2((ulong)Math.Max(16L, capacity + capacity / 3L + 1));
        _block = new HugePageBlock(slots * (sizeof(ulong) + sizeof(int)));
        NativeMemory.Clear(_block.Start, (nuint)_block.Bytes);
        _keys = (ulong*)_block.Start;
        _ranksPlusOne = (int*)(_block.Start + slots * sizeof(ulong));
        _shift = 64 - BitOperations.Log2((ulong)slots);
        _mask = slots - 1;
        Capacity = capacity;
    }

    public int Capacity { get; }
    public int Count => _count;

    /// <summary>Add the pair with its rank (≥ 0) unless it is there already (then false: the first rank stays).</summary>
    public bool TryAdd(int left, int right, int rank)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(rank);
        ulong key = Key(left, right);
        for (long slot = First(key); ; slot = (slot + 1) & _mask)
        {
            if (_ranksPlusOne[slot] == 0)
            {
                if (_count == Capacity) throw new InvalidOperationException($"the table holds {Capacity} pairs");
                _keys[slot] = key;
                _ranksPlusOne[slot] = rank + 1;
                _count++;
                return true;
            }
            if (_keys[slot] == key) return false;
        }
    }

    /// <summary>The pair's rank, or int.MaxValue when it is not a merge.</summary>
    public int RankOf(int left, int right)
    {
        ulong key = Key(left, right);
        for (long slot = First(key); ; slot = (slot + 1) & _mask)
        {
            int rankPlusOne = _ranksPlusOne[slot];
            if (rankPlusOne == 0) return int.MaxValue;
            if (_keys[slot] == key) return rankPlusOne - 1;
        }
    }

    private static ulong Key(int left, int right) => (ulong)(uint)left << 32 | (uint)right;

    private long First(ulong key) => (long)((key * 0x9E3779B97F4A7C15UL) >> _shift);
}

/// <summary>The tokenizer data in a model file is missing or inconsistent.</summary>
public sealed class TokenizerException(string message) : Exception(message);
