using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Tests.Tokenization;

/// <summary>
/// The merge table built with its vocabulary lookups split over two threads equals the one built in a
/// single pass: the same merges apply, the same extra symbols (merge texts that are not tokens) get the
/// same ids in order of first appearance, and the first malformed merge is the one reported.
/// </summary>
public class BpeMergesTests
{
    /// <summary>
    /// A vocabulary of the 256 byte symbols and 3000 random joins of them, and 20,000 merges over
    /// those tokens: most join two tokens into another token, some repeat an earlier pair, some name
    /// a part or a result that is not a token.
    /// </summary>
    private static (List<string> Merges, Dictionary<string, int> Vocabulary) RandomTable(int seed)
    {
        var random = new Random(seed);
        var tokens = new List<string>();
        for (int b = 0; b < 256; b++) tokens.Add(ByteLevelEncoding.Encode((byte)b).ToString());
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < tokens.Count; i++) vocabulary[tokens[i]] = i;
        var merges = new List<string>();
        while (merges.Count < 20_000)
        {
            string left = tokens[random.Next(tokens.Count)], right = tokens[random.Next(tokens.Count)];
            int kind = random.Next(20);
            if (kind == 0 && merges.Count > 0) { merges.Add(merges[random.Next(merges.Count)]); continue; }   // a repeated pair
            if (kind == 1) left += "\u00ff\u00fe";                                                              // a part that is no token
            string joined = left + right;
            if (kind > 3 && tokens.Count < 3256 && !vocabulary.ContainsKey(joined))                            // else the result is no token
            {
                vocabulary[joined] = tokens.Count;
                tokens.Add(joined);
            }
            merges.Add(left + " " + right);
        }
        return (merges, vocabulary);
    }

    [Fact]
    public void A_merge_list_read_undecoded_from_a_gguf_builds_the_same_table_as_its_strings()
    {
        var (merges, vocabulary) = RandomTable(seed: 3);
        using var temp = new Gguf.TempFolder();
        string path = temp.File("merges.gguf");
        var writer = new BitNet.Inference.Gguf.GgufWriter();
        writer.AddMetadata("merges", BitNet.Inference.Gguf.GgufValue.From(merges.ToArray()));
        writer.WriteTo(path);
        using var file = BitNet.Inference.Gguf.GgufFile.Open(path);
        var undecoded = Assert.IsType<BitNet.Inference.Gguf.Utf8StringArray>(file.GetStrings("merges"));
        var fromFile = BpeMerges.Build(undecoded, vocabulary, vocabulary.Count);
        var fromStrings = BpeMerges.Build(merges, vocabulary, vocabulary.Count);
        var random = new Random(4);
        string[] texts = [.. vocabulary.Keys];
        int merged = 0;
        for (int trial = 0; trial < 2000; trial++)
        {
            string text = string.Concat(Enumerable.Range(0, random.Next(2, 6)).Select(_ => texts[random.Next(texts.Length)]));
            int[] a = [.. text.Select(c => vocabulary[c.ToString()])], b = [.. a];
            int n1 = fromFile.Merge(a, new int[a.Length]), n2 = fromStrings.Merge(b, new int[b.Length]);
            Assert.Equal(b[..n2], a[..n1]);
            merged += a.Length - n1;
            foreach (int symbol in a[..n1].Where(s => s >= vocabulary.Count))
                Assert.Equal(fromStrings.ExtraSymbolText(symbol), fromFile.ExtraSymbolText(symbol));
        }
        Assert.True(merged > 1000, $"only {merged} merges applied");
    }

    [Fact]
    public void Split_lookups_build_the_same_table_as_one_pass()
    {
        var (merges, vocabulary) = RandomTable(seed: 1);
        var onePass = BpeMerges.Build(merges, vocabulary, vocabulary.Count, parallelFrom: int.MaxValue);
        var split = BpeMerges.Build(merges, vocabulary, vocabulary.Count, parallelFrom: 1);

        // Inputs: the characters of a few random tokens, each as its one-character token, so that
        // merges apply (random bytes rarely form a merged pair).
        var random = new Random(2);
        string[] texts = [.. vocabulary.Keys];
        int extrasSeen = 0, merged = 0;
        for (int trial = 0; trial < 2000; trial++)
        {
            string text = string.Concat(Enumerable.Range(0, random.Next(1, 6)).Select(_ => texts[random.Next(texts.Length)]));
            int length = text.Length;
            if (length < 2) continue;
            int[] a = new int[length], b = new int[length];
            for (int i = 0; i < length; i++) a[i] = b[i] = vocabulary[text[i].ToString()];
            int n1 = onePass.Merge(a, new int[length]), n2 = split.Merge(b, new int[length]);
            Assert.Equal(a[..n1], b[..n2]);
            merged += length - n1;
            foreach (int symbol in a[..n1].Where(s => s >= vocabulary.Count))
            {
                Assert.Equal(onePass.ExtraSymbolText(symbol), split.ExtraSymbolText(symbol));
                extrasSeen++;
            }
        }
        Assert.True(merged > 1000, $"only {merged} merges applied: the random table does not exercise them");
        for (int x = 0; x < 256; x++) Assert.Equal(onePass.ByteSymbol((byte)x), split.ByteSymbol((byte)x));
        Assert.True(extrasSeen > 0, "no merge result outside the vocabulary was produced");
    }

    [Fact]
    public void Extra_symbols_get_the_same_ids_in_order_of_first_appearance_either_way()
    {
        // Every merge of this list names texts outside the vocabulary, so each gets an extra id:
        // left, right, then the joined text, rank by rank (a repeated pair adds no joined text).
        var vocabulary = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int b = 0; b < 256; b++) vocabulary[ByteLevelEncoding.Encode((byte)b).ToString()] = b;
        var merges = new List<string>();
        for (int i = 0; i < 20_000; i++) merges.Add($"x{i % 7000} y{i % 5000}");
        var onePass = BpeMerges.Build(merges, vocabulary, 256, parallelFrom: int.MaxValue);
        var split = BpeMerges.Build(merges, vocabulary, 256, parallelFrom: 1);
        for (int symbol = 256; symbol < 256 + 3 * 7000; symbol++)
            Assert.Equal(onePass.ExtraSymbolText(symbol), split.ExtraSymbolText(symbol));
        Assert.Equal("x0", split.ExtraSymbolText(256));
        Assert.Equal("y0", split.ExtraSymbolText(257));
        Assert.Equal("x0y0", split.ExtraSymbolText(258));
    }

    [Fact]
    public void The_first_malformed_merge_is_the_one_reported_either_way()
    {
        var (merges, vocabulary) = RandomTable(seed: 3);
        merges[15_000] = "nospace";
        merges[12_345] = "a";
        foreach (int parallelFrom in new[] { int.MaxValue, 1 })
        {
            var e = Assert.Throws<TokenizerException>(() => BpeMerges.Build(merges, vocabulary, vocabulary.Count, parallelFrom));
            Assert.Contains("merge 12345 ('a')", e.Message);
        }
    }

    [Fact]
    public void The_pair_table_answers_as_a_dictionary_keeping_each_pairs_first_rank()
    {
        var random = new Random(21);
        const int count = 50_000;
        var table = new PairRanks(count);
        var reference = new Dictionary<(int, int), int>();
        for (int rank = 0; rank < count; rank++)
        {
            // Small ids repeat pairs often; a few large ones (up to 2^31 - 1) check the key packing.
            int left = rank % 50 == 0 ? random.Next() : random.Next(400), right = rank % 70 == 0 ? random.Next() : random.Next(400);
            Assert.Equal(reference.TryAdd((left, right), rank), table.TryAdd(left, right, rank));
        }
        Assert.Equal(reference.Count, table.Count);
        foreach (var ((left, right), rank) in reference)
            Assert.Equal(rank, table.RankOf(left, right));
        for (int i = 0; i < 20_000; i++)
        {
            int left = random.Next(800), right = random.Next(800);
            Assert.Equal(reference.TryGetValue((left, right), out int rank) ? rank : int.MaxValue, table.RankOf(left, right));
        }
    }

    [Fact]
    public void The_pair_table_refuses_more_pairs_than_it_was_made_for()
    {
        var table = new PairRanks(3);
        Assert.True(table.TryAdd(0, 0, 0));   // (0, 0) at rank 0 is a pair like any other, not an empty slot
        Assert.Equal(0, table.RankOf(0, 0));
        Assert.True(table.TryAdd(1, 2, 1));
        Assert.False(table.TryAdd(0, 0, 2));
        Assert.True(table.TryAdd(2, 1, 3));
        Assert.Throws<InvalidOperationException>(() => table.TryAdd(5, 5, 4));
        Assert.Equal(int.MaxValue, table.RankOf(5, 5));
        Assert.Equal(3, table.RankOf(2, 1));
    }
}
