using System.Text;
using BitNet.Inference.Gguf;
using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Tests.Tokenization;

/// <summary>
/// The merge loop over spans of byte-level text gives what BPE over a list of strings gives (the
/// lowest-ranked adjacent pair first, the leftmost on a tie, a pair's first rank kept), including
/// merges whose parts or results are not tokens.
/// </summary>
public class BpeMergesTests
{
    /// <summary>
    /// 20,000 merges over the 256 byte-level characters and what they join into: most join two known
    /// texts, some repeat an earlier pair, some have a part no other merge makes.
    /// </summary>
    private static (List<string> Merges, List<string> Texts) RandomMerges(int seed)
    {
        var random = new Random(seed);
        var texts = new List<string>();
        for (int b = 0; b < 256; b++) texts.Add(ByteLevelEncoding.Encode((byte)b).ToString());
        var merges = new List<string>();
        while (merges.Count < 20_000)
        {
            string left = texts[random.Next(texts.Count)], right = texts[random.Next(texts.Count)];
            int kind = random.Next(20);
            if (kind == 0 && merges.Count > 0) { merges.Add(merges[random.Next(merges.Count)]); continue; }   // a repeated pair
            if (kind == 1) left += "\u00ff\u00fe";                                                              // a part nothing makes
            if (texts.Count < 3256) texts.Add(left + right);
            merges.Add(left + " " + right);
        }
        return (merges, texts);
    }

    /// <summary>BPE as the spec states it, over strings: the reference the span-based loop must equal.</summary>
    private static List<string> MergeStrings(List<string> symbols, List<string> merges)
    {
        var ranks = new Dictionary<(string, string), int>();
        for (int rank = 0; rank < merges.Count; rank++)
        {
            int space = merges[rank].IndexOf(' ', 1);
            ranks.TryAdd((merges[rank][..space], merges[rank][(space + 1)..]), rank);
        }
        symbols = [.. symbols];
        while (true)
        {
            int best = -1, bestRank = int.MaxValue;
            for (int i = 0; i + 1 < symbols.Count; i++)
                if (ranks.TryGetValue((symbols[i], symbols[i + 1]), out int rank) && rank < bestRank) { bestRank = rank; best = i; }
            if (best < 0) return symbols;
            symbols[best] += symbols[best + 1];
            symbols.RemoveAt(best + 1);
        }
    }

    /// <summary>The span-based loop on the byte-level text of <paramref name="characters"/>, its symbols as strings.</summary>
    private static List<string> MergeSpans(BpeMerges merges, string characters, bool? throughAHeap = null)
    {
        byte[] text = Encoding.UTF8.GetBytes(characters);
        var starts = new List<int>();
        for (int i = 0, at = 0; i < characters.Length; i++)
        {
            starts.Add(at);
            at += Encoding.UTF8.GetByteCount(characters.AsSpan(i, 1));
        }
        starts.Add(text.Length);
        int[] startArray = [.. starts];
        int[] pairRanks = new int[characters.Length];
        byte[] scratch = new byte[text.Length + 1];
        int count = throughAHeap switch
        {
            true => merges.MergeThroughAHeap(text, startArray, characters.Length, scratch),
            false => merges.MergeByRescanning(text, startArray, characters.Length, pairRanks, scratch),
            null => merges.Merge(text, startArray, characters.Length, pairRanks, scratch),
        };
        return [.. Enumerable.Range(0, count).Select(i => Encoding.UTF8.GetString(text.AsSpan(startArray[i]..startArray[i + 1])))];
    }

    [Fact]
    public void Merging_spans_gives_what_merging_strings_gives()
    {
        var (mergeList, texts) = RandomMerges(seed: 1);
        var merges = BpeMerges.Build(mergeList);
        var random = new Random(2);
        int merged = 0;
        for (int trial = 0; trial < 2000; trial++)
        {
            // A few known texts end to end, so that merges apply (random characters rarely form a merged pair).
            string characters = string.Concat(Enumerable.Range(0, random.Next(1, 6)).Select(_ => texts[random.Next(texts.Count)]));
            List<string> expected = MergeStrings([.. characters.Select(c => c.ToString())], mergeList);
            Assert.Equal(expected, MergeSpans(merges, characters));
            merged += characters.Length - expected.Count;
        }
        Assert.True(merged > 1000, $"only {merged} merges applied: the random table does not exercise them");
    }

    [Fact]
    public void Long_pieces_merge_through_a_heap_as_strings_merge()
    {
        var (mergeList, texts) = RandomMerges(seed: 5);
        var merges = BpeMerges.Build(mergeList);
        var random = new Random(6);
        for (int trial = 0; trial < 30; trial++)
        {
            // Known texts end to end, or one of them repeated (equal ranks side by side: the leftmost pair must win).
            string repeated = texts[random.Next(texts.Count)];
            var characters = new StringBuilder();
            while (characters.Length <= BpeMerges.RescanUpTo + random.Next(400))
                characters.Append(trial % 2 == 0 ? repeated : texts[random.Next(texts.Count)]);
            string piece = characters.ToString();
            Assert.Equal(MergeStrings([.. piece.Select(c => c.ToString())], mergeList), MergeSpans(merges, piece));
        }
    }

    [Fact]
    public void The_heap_and_the_rescanning_loop_merge_short_pieces_alike()
    {
        var (mergeList, texts) = RandomMerges(seed: 7);
        var merges = BpeMerges.Build(mergeList);
        var random = new Random(8);
        for (int trial = 0; trial < 2000; trial++)
        {
            string characters = string.Concat(Enumerable.Range(0, random.Next(1, 8)).Select(_ => texts[random.Next(texts.Count)]));
            Assert.Equal(MergeSpans(merges, characters, throughAHeap: false), MergeSpans(merges, characters, throughAHeap: true));
        }
    }

    [Fact]
    public void A_merge_list_read_undecoded_from_a_gguf_merges_as_its_strings()
    {
        var (mergeList, texts) = RandomMerges(seed: 3);
        using var temp = new Gguf.TempFolder();
        string path = temp.File("merges.gguf");
        var writer = new GgufWriter();
        writer.AddMetadata("merges", GgufValue.From(mergeList.ToArray()));
        writer.WriteTo(path);
        using var file = GgufFile.Open(path);
        var fromFile = BpeMerges.Build(Assert.IsType<Utf8StringArray>(file.GetStrings("merges")));
        var fromStrings = BpeMerges.Build(mergeList);
        Assert.Equal(mergeList.Count, fromFile.Count);
        var random = new Random(4);
        for (int trial = 0; trial < 2000; trial++)
        {
            string characters = string.Concat(Enumerable.Range(0, random.Next(2, 6)).Select(_ => texts[random.Next(texts.Count)]));
            Assert.Equal(MergeSpans(fromStrings, characters), MergeSpans(fromFile, characters));
        }
    }

    [Fact]
    public void A_repeated_pair_keeps_its_first_rank()
    {
        // In "abc" the pairs (a, b) and (b, c) compete: with each pair's last rank the other one would win.
        var merges = BpeMerges.Build(["a b", "b c", "a b"]);
        Assert.Equal(["ab", "c"], MergeSpans(merges, "abc"));
        var reversed = BpeMerges.Build(["b c", "a b", "b c"]);
        Assert.Equal(["a", "bc"], MergeSpans(reversed, "abc"));
    }

    [Theory]
    [InlineData("nospace")]
    [InlineData("a")]
    [InlineData(" x")]   // the separator is looked for from the second byte on
    public void A_merge_without_a_separator_is_reported_by_rank_and_text(string malformed)
    {
        var e = Assert.Throws<TokenizerException>(() => BpeMerges.Build(["a b", "c d", malformed, "e"]));
        Assert.Contains($"merge 2 ('{malformed}')", e.Message);
    }
}
