using System.Text;
using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Tests.Tokenization;

/// <summary>
/// The partition around special tokens equals llama.cpp's algorithm run with every special token
/// (each token, longest text first, cuts every raw fragment at its occurrences), although it only
/// runs the tokens it finds in the text.
/// </summary>
public class SpecialTokensTests
{
    /// <summary>llama.cpp's tokenizer_st_partition over UTF-8, trying every special token in order.</summary>
    private static List<(int Start, int Length, int Id)> Reference(byte[] text, List<string> tokens, TokenType[] types)
    {
        var specials = Enumerable.Range(0, tokens.Count)
            .Where(id => types[id] is TokenType.Control or TokenType.UserDefined or TokenType.Unknown && tokens[id].Length > 0)
            .OrderByDescending(id => Encoding.UTF8.GetByteCount(tokens[id])).ThenBy(id => id);
        var fragments = new List<(int Start, int Length, int Id)> { (0, text.Length, -1) };
        foreach (int id in specials)
        {
            byte[] special = Encoding.UTF8.GetBytes(tokens[id]);
            var next = new List<(int, int, int)>();
            foreach (var fragment in fragments)
            {
                if (fragment.Id >= 0) { next.Add(fragment); continue; }
                int position = fragment.Start, end = fragment.Start + fragment.Length;
                while (position < end)
                {
                    int found = text.AsSpan(position, end - position).IndexOf(special);
                    if (found < 0) break;
                    if (found > 0) next.Add((position, found, -1));
                    next.Add((position + found, special.Length, id));
                    position += found + special.Length;
                }
                if (position < end) next.Add((position, end - position, -1));
            }
            fragments = next;
        }
        return fragments;
    }

    /// <summary>
    /// Tokens over a four-letter alphabet, so special texts overlap and contain one another: CONTROL,
    /// USER_DEFINED and NORMAL ones mixed; with <paramref name="repeat"/>, some texts appear twice.
    /// </summary>
    private static (List<string> Tokens, TokenType[] Types) RandomVocabulary(Random random, bool repeat)
    {
        var tokens = new List<string>();
        var types = new List<TokenType>();
        var seen = new HashSet<string>();
        while (tokens.Count < 60)
        {
            string text = string.Concat(Enumerable.Range(0, random.Next(1, 6)).Select(_ => "<ab|é"[random.Next(5)]));
            if (!seen.Add(text) && !(repeat && random.Next(3) == 0)) continue;
            tokens.Add(text);
            types.Add(random.Next(4) switch { 0 => TokenType.Normal, 1 => TokenType.UserDefined, _ => TokenType.Control });
        }
        if (repeat)
        {
            tokens.Add(tokens[random.Next(tokens.Count)]);   // at least one
            types.Add(TokenType.Control);
        }
        return (tokens, [.. types]);
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void The_partition_equals_llama_cpps_over_every_special_token(bool repeatedTexts)
    {
        var random = new Random(repeatedTexts ? 11 : 10);
        int specialsCut = 0;
        for (int vocabularyTrial = 0; vocabularyTrial < 40; vocabularyTrial++)
        {
            var (tokens, types) = RandomVocabulary(random, repeatedTexts);
            var table = Utf8Table.Build(tokens, Utf8Table.Duplicates.KeepLast);
            Assert.Equal(repeatedTexts, table.RepeatedTexts > 0);
            var specials = new SpecialTokens(table, types);
            for (int trial = 0; trial < 50; trial++)
            {
                string text = string.Concat(Enumerable.Range(0, random.Next(1, 12)).Select(_ =>
                    random.Next(3) == 0 ? "xy " : tokens[random.Next(tokens.Count)]));
                byte[] utf8 = Encoding.UTF8.GetBytes(text);
                var expected = Reference(utf8, tokens, types);
                Assert.Equal(expected, specials.Partition(utf8));
                specialsCut += expected.Count(f => f.Id >= 0);
            }
        }
        Assert.True(specialsCut > 1000, $"only {specialsCut} special tokens were cut out");
    }

    [Fact]
    public void A_longer_special_text_is_cut_first_even_where_a_shorter_one_starts_earlier()
    {
        // "ab" starts first in "abcd", but "bcd" is longer, so llama.cpp cuts it first.
        string[] tokens = ["ab", "bcd", "x"];
        var specials = new SpecialTokens(Utf8Table.Build(tokens, Utf8Table.Duplicates.KeepLast), [TokenType.Control, TokenType.Control, TokenType.Normal]);
        Assert.Equal([(0, 1, -1), (1, 3, 1)], specials.Partition("abcd"u8.ToArray()));
        Assert.Equal([(0, 2, 0), (2, 1, -1)], specials.Partition("abx"u8.ToArray()));
        Assert.Equal([(0, 3, -1)], specials.Partition("xyz"u8.ToArray()));
    }
}
