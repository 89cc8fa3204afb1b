using System.Text;
using BitNet.Inference.Gguf;
using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Tests.Tokenization;

/// <summary>The tokenizer's text → number table answers as a dictionary of the same texts would.</summary>
public class Utf8TableTests
{
    /// <summary>
    /// Texts of 0 to 40 characters (across the hash's 8-byte blocks and its tail) drawn from a small
    /// alphabet of one- to four-byte characters, so many texts repeat and many share long prefixes.
    /// </summary>
    private static List<string> RandomTexts(int count, int seed)
    {
        string[] alphabet = ["a", "b", "Ġ", "é", "语", "😀", " ", "\0"];
        var random = new Random(seed);
        var texts = new List<string>(count);
        for (int i = 0; i < count; i++)
        {
            int length = random.Next(8) == 0 ? random.Next(41) : random.Next(4);
            texts.Add(string.Concat(Enumerable.Range(0, length).Select(_ => alphabet[random.Next(alphabet.Length)])));
        }
        return texts;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Every_text_finds_the_number_a_dictionary_keeps_for_it(bool keepLast)
    {
        var duplicates = keepLast ? Utf8Table.Duplicates.KeepLast : Utf8Table.Duplicates.KeepFirst;
        var texts = RandomTexts(30_000, seed: 5);
        var table = Utf8Table.Build(texts, duplicates);
        var reference = new Dictionary<string, int>(StringComparer.Ordinal);
        for (int i = 0; i < texts.Count; i++)
        {
            if (duplicates == Utf8Table.Duplicates.KeepLast) reference[texts[i]] = i;
            else reference.TryAdd(texts[i], i);
        }

        Assert.Equal(texts.Count, table.Count);
        Assert.Equal(texts.Count - reference.Count, table.RepeatedTexts);
        Assert.True(table.RepeatedTexts > 1000, "the random texts should repeat often");
        for (int i = 0; i < texts.Count; i++)
            Assert.Equal(Encoding.UTF8.GetBytes(texts[i]), table.Text(i).ToArray());
        foreach (var (text, number) in reference)
            Assert.Equal(number, table.Find(Encoding.UTF8.GetBytes(text)));
        foreach (string other in RandomTexts(20_000, seed: 6))
            Assert.Equal(reference.TryGetValue(other, out int number) ? number : -1, table.Find(Encoding.UTF8.GetBytes(other)));
    }

    [Fact]
    public void Texts_differing_in_one_byte_anywhere_are_told_apart()
    {
        // 25-byte texts, each differing from the first in one byte: a position in each 8-byte block and in the tail.
        byte[] basis = Encoding.ASCII.GetBytes("abcdefghijklmnopqrstuvwxy");
        var texts = new List<string> { Encoding.ASCII.GetString(basis) };
        for (int position = 0; position < basis.Length; position++)
        {
            byte[] changed = [.. basis];
            changed[position] = (byte)'#';
            texts.Add(Encoding.ASCII.GetString(changed));
        }
        var table = Utf8Table.Build(texts, Utf8Table.Duplicates.KeepFirst);
        Assert.Equal(0, table.RepeatedTexts);
        for (int i = 0; i < texts.Count; i++)
            Assert.Equal(i, table.Find(Encoding.ASCII.GetBytes(texts[i])));
        Assert.Equal(-1, table.Find(basis.AsSpan(0, 24)));
        Assert.Equal(-1, table.Find([.. basis, (byte)'z']));
    }

    [Fact]
    public void A_lone_surrogate_is_kept_as_the_replacement_character()
    {
        var table = Utf8Table.Build(["a\uD800b"], Utf8Table.Duplicates.KeepFirst);
        Assert.Equal("a\uFFFDb"u8.ToArray(), table.Text(0).ToArray());
        Assert.Equal(0, table.Find("a\uFFFDb"u8));
    }

    [Fact]
    public void An_undecoded_gguf_array_builds_the_same_table_as_its_strings_with_its_bytes_as_they_are()
    {
        var texts = RandomTexts(Tokenizer.ParallelBuildMerges + 100, seed: 7);
        using var temp = new Gguf.TempFolder();
        string path = temp.File("texts.gguf");
        var writer = new GgufWriter();
        writer.AddMetadata("texts", GgufValue.From(texts.ToArray()));
        writer.WriteTo(path);
        Utf8Table fromFile;
        using (var file = GgufFile.Open(path))
            fromFile = Utf8Table.Build(Assert.IsType<Utf8StringArray>(file.GetStrings("texts")), Utf8Table.Duplicates.KeepLast);
        // Built from the file, then the file closed: the table holds its own copy.
        var fromStrings = Utf8Table.Build(texts, Utf8Table.Duplicates.KeepLast);
        Assert.Equal(fromStrings.RepeatedTexts, fromFile.RepeatedTexts);
        for (int i = 0; i < texts.Count; i++)
        {
            Assert.Equal(fromStrings.Text(i).ToArray(), fromFile.Text(i).ToArray());
            Assert.Equal(fromStrings.Find(fromStrings.Text(i)), fromFile.Find(fromStrings.Text(i)));
        }
    }
}
