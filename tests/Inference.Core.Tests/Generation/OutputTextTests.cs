using BitNet.Inference.Generation;
using BitNet.Inference.Sampling;
using BitNet.Inference.Tests.Tokenization;
using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Tests.Generation;

/// <summary>A generation's text on its way out with its tokens' log-probabilities: which tokens' logprobs go out,
/// and with which update.</summary>
public class OutputTextTests
{
    private static Tokenizer Tokenizer => OracleTokenizer.Llama3;

    /// <summary>Fake logprobs that name their token (the value is its position, to check the order).</summary>
    private static TokenLogprobs Logprobs(int token, int position) => new(new TokenLogprob(token, -position), []);

    /// <summary>Pushes every token, then flushes unless a stop string completed; each update's text and logprobs.</summary>
    private static List<(string Text, List<TokenLogprobs>? Logprobs)> Run(int[] ids, string[] stops)
    {
        var output = new OutputText(Tokenizer, stops);
        var updates = new List<(string, List<TokenLogprobs>?)>();
        for (int i = 0; i < ids.Length; i++)
        {
            string text = output.Push(ids[i], Logprobs(ids[i], i), out bool stopped);
            updates.Add((text, output.TakeLogprobs()));
            if (stopped) return updates;
        }
        updates.Add((output.Flush(), output.TakeLogprobs()));
        return updates;
    }

    [Theory]
    [InlineData("The capital of France is Paris. It is a city of art.", "France")]
    [InlineData("The capital of France is Paris. It is a city of art.", " France")]
    [InlineData("The capital of France is Paris. It is a city of art.", "aris. It")]
    [InlineData("The capital of France is Paris. It is a city of art.", "t")]
    [InlineData("Numbers: 12345, 67890 and more.", "90 a")]
    public void A_stop_string_drops_the_logprobs_of_the_tokens_whose_text_it_cut_off(string generated, string stop)
    {
        int[] ids = Tokenizer.Encode(generated, addBos: false, parseSpecial: false);
        var updates = Run(ids, [stop]);

        // Expected: the text before the stop string, and every token whose text starts before it, in order.
        int cut = generated.IndexOf(stop, StringComparison.Ordinal);
        var starts = new List<int>();
        int at = 0;
        foreach (int id in ids)
        {
            starts.Add(at);
            at += Tokenizer.Decode([id]).Length;
        }
        Assert.Equal(generated.Length, at);   // ASCII text: each token decodes on its own
        int[] expected = ids.Where((_, i) => starts[i] < cut).ToArray();

        Assert.Equal(generated[..cut], string.Concat(updates.Select(u => u.Text)));
        var logprobs = updates.Where(u => u.Logprobs is not null).SelectMany(u => u.Logprobs!).ToList();
        Assert.Equal(expected, logprobs.Select(l => l.Chosen.Token));
        Assert.Equal(Enumerable.Range(0, expected.Length).Select(i => (float)-i), logprobs.Select(l => l.Chosen.Logprob));
        // No update hands out logprobs of a token whose text it does not start (or carry on from before).
        Assert.All(updates.Where(u => u.Logprobs is not null), u => Assert.NotEqual("", u.Text));
    }

    [Fact]
    public void Text_held_back_for_a_stop_string_that_never_comes_goes_out_later_with_its_tokens_logprobs()
    {
        const string generated = "The end is near, the end is here.";
        int[] ids = Tokenizer.Encode(generated, addBos: false, parseSpecial: false);
        var updates = Run(ids, ["the ending", "here!"]);

        Assert.Equal(generated, string.Concat(updates.Select(u => u.Text)));
        var logprobs = updates.Where(u => u.Logprobs is not null).SelectMany(u => u.Logprobs!).ToList();
        Assert.Equal(ids, logprobs.Select(l => l.Chosen.Token));
        // Held tokens' logprobs came later than their own push: some update carries more than one.
        Assert.Contains(updates, u => u.Logprobs is { Count: > 1 });
    }

    [Fact]
    public void A_token_holding_part_of_a_character_gives_its_logprobs_with_the_update_that_completes_it()
    {
        int[] ids = Tokenizer.Encode("a😀b", addBos: false, parseSpecial: false);
        var updates = Run(ids, []);

        Assert.Equal("a😀b", string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(ids, updates.Where(u => u.Logprobs is not null).SelectMany(u => u.Logprobs!).Select(l => l.Chosen.Token));
        Assert.All(updates.Where(u => u.Logprobs is not null), u => Assert.NotEqual("", u.Text));
    }

    [Fact]
    public void Without_a_stop_every_token_s_logprobs_go_out_even_one_that_decodes_to_nothing()
    {
        int eot = Tokenizer.Encode("<|eot_id|>", addBos: false, parseSpecial: true).Single();
        int[] ids = [.. Tokenizer.Encode("Hello", addBos: false, parseSpecial: false), eot];
        var updates = Run(ids, ["xyz"]);

        Assert.Equal("Hello", string.Concat(updates.Select(u => u.Text)));
        Assert.Equal(ids, updates.Where(u => u.Logprobs is not null).SelectMany(u => u.Logprobs!).Select(l => l.Chosen.Token));
    }

    [Fact]
    public void Without_a_request_for_logprobs_none_are_handed_out()
    {
        var output = new OutputText(Tokenizer, ["x"]);
        foreach (int id in Tokenizer.Encode("Hello world", addBos: false, parseSpecial: false))
        {
            output.Push(id, null, out _);
            Assert.Null(output.TakeLogprobs());
        }
        output.Flush();
        Assert.Null(output.TakeLogprobs());
    }
}
