using System.Text;
using System.Text.Json;
using BitNet.Inference.Generation;
using BitNet.Inference.Gguf;
using BitNet.Inference.Tokenization;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Tokenization;

public class TokenizerBehaviourTests(ITestOutputHelper output)
{
    [Fact]
    public void The_oracle_file_selects_llama3_by_its_pre_key_and_an_explicit_choice_wins()
    {
        using var file = GgufFile.Open(SharedData.OracleModelPath);
        Assert.Equal("llama-bpe", file.GetString("tokenizer.ggml.pre"));
        Assert.Equal(PreTokenizerKind.Llama3, Tokenizer.FromGguf(file).PreTokenizer);
        Assert.Equal(PreTokenizerKind.Default, Tokenizer.FromGguf(file, PreTokenizerKind.Default).PreTokenizer);
    }

    [Fact]
    public void Chat_prompt_of_the_oracle_tokenizes_to_its_prompt_ids_with_bos_under_llama3()
    {
        // The oracle file carries tokenizer.ggml.pre = llama-bpe, so bitnet.cpp used llama3 here.
        using var json = JsonDocument.Parse(File.ReadAllText(SharedData.OracleFile("bitnet-small-i2_s.chat.bitnetcpp.t1.tokens.json")));
        string prompt = json.RootElement.GetProperty("prompt").GetString()!;
        int[] expected = json.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();

        string rendered = ChatTemplate.Bitnet.Render([
            new ChatMessage(ChatRole.System, "You are a helpful assistant."),
            new ChatMessage(ChatRole.User, "What is 1.58-bit quantization?"),
        ]);
        Assert.Equal(prompt, rendered);
        Assert.Equal(expected, OracleTokenizer.Llama3.Encode(rendered));

        // The default pre-tokenizer cuts "." away from "User" (7494 ".User" → 13 ".", 1502 "User").
        int[] withDefault = OracleTokenizer.Default.Encode(rendered);
        Assert.NotEqual(expected, withDefault);
        Assert.Equal([13, 1502], withDefault[8..10]);
    }

    [Fact]
    public void Plain_oracle_prompt_tokenizes_with_bos_first()
    {
        Assert.Equal([128000, 791, 6864, 315, 9822, 374], OracleTokenizer.Llama3.Encode("The capital of France is"));
        Assert.Equal([791, 6864, 315, 9822, 374], OracleTokenizer.Llama3.Encode("The capital of France is", addBos: false, parseSpecial: true));
    }

    [Fact]
    public void Special_text_is_ordinary_text_when_special_parsing_is_off()
    {
        var t = OracleTokenizer.Llama3;
        Assert.Equal([64, 128009, 65], t.Encode("a<|eot_id|>b", addBos: false, parseSpecial: true));
        int[] plain = t.Encode("a<|eot_id|>b", addBos: false, parseSpecial: false);
        Assert.DoesNotContain(128009, plain);
        Assert.Equal("a<|eot_id|>b", t.Decode(plain));
    }

    [Fact]
    public void End_of_generation_set_holds_eos_and_eot_and_the_eom_text_when_present()
    {
        var t = OracleTokenizer.Llama3;
        output.WriteLine($"token 128008 = {t.TokenText(128008)}; EOG = [{string.Join(", ", t.EndOfGenerationIds)}]");
        Assert.True(t.IsEndOfGeneration(128001));
        Assert.True(t.IsEndOfGeneration(128009));
        Assert.Equal(128009, t.EotId);
        Assert.False(t.IsEndOfGeneration(128000));
        Assert.Equal(t.TokenText(128008) == "<|eom_id|>", t.IsEndOfGeneration(128008));
    }

    [Fact]
    public void Control_tokens_decode_empty_unless_special_rendering_is_asked()
    {
        var t = OracleTokenizer.Llama3;
        int[] ids = t.Encode("Hi<|eot_id|>");
        Assert.Equal("Hi", t.Decode(ids));
        Assert.Equal("<|begin_of_text|>Hi<|eot_id|>", t.Decode(ids, renderSpecial: true));
    }

    [Fact]
    public void Streaming_detokenizer_holds_back_an_emoji_split_over_byte_tokens()
    {
        var t = OracleTokenizer.Llama3;
        int[] ids = t.Encode("a😀b", addBos: false, parseSpecial: true);
        Assert.True(ids.Length >= 3, "the emoji should take more than one token");
        var stream = new StreamingDetokenizer(t);
        var pieces = ids.Select(stream.Push).ToList();
        pieces.Add(stream.Flush());
        Assert.Equal("a😀b", string.Concat(pieces));
        // No piece contains half of the surrogate pair, and the emoji comes out in one piece.
        Assert.All(pieces, p => Assert.True(Encoding.UTF8.GetString(Encoding.UTF8.GetBytes(p)) == p));
        Assert.Contains(pieces, p => p.Contains("😀"));
        Assert.Contains("", pieces);
    }

    [Fact]
    public void Streaming_detokenizer_replaces_an_unfinished_character_at_the_end()
    {
        var t = OracleTokenizer.Llama3;
        int[] ids = t.Encode("😀", addBos: false, parseSpecial: true);
        var stream = new StreamingDetokenizer(t);
        Assert.Equal("", stream.Push(ids[0]));
        Assert.Equal("\uFFFD", stream.Flush());
    }

    [Fact]
    public void Each_token_type_renders_its_own_bytes_and_specials_match_longest_first()
    {
        // Types (llama.cpp): 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte.
        // "ĠÃ©" is byte-level text for " é" (0x20, 0xC3 0xA9); "€" is outside the byte table and stays UTF-8.
        string[] tokens = ["a", "Ġ", "Ã", "©", "ĠÃ©", "<ctl>", "<ctl>x", "<user>", "<unk>", "unused", "<0x41>", "x", "€"];
        int[] types = [1, 1, 1, 1, 1, 3, 3, 4, 2, 5, 6, 1, 1];
        var t = Tokenizer.Create(tokens, types, [], new TokenizerSettings { PreTokenizer = PreTokenizerKind.Default });
        Assert.Equal("a"u8.ToArray(), t.TokenBytes(0).ToArray());
        Assert.Equal(new byte[] { 0x20, 0xC3, 0xA9 }, t.TokenBytes(4).ToArray());
        Assert.Equal("€"u8.ToArray(), t.TokenBytes(12).ToArray());
        Assert.Equal("<user>"u8.ToArray(), t.TokenBytes(7).ToArray());
        foreach (int hidden in new[] { 5, 6, 8, 9, 10 })
            Assert.Empty(t.TokenBytes(hidden).ToArray());
        Assert.Equal("<ctl>x"u8.ToArray(), t.TokenBytes(6, renderSpecial: true).ToArray());
        Assert.Equal("<unk>"u8.ToArray(), t.TokenBytes(8, renderSpecial: true).ToArray());
        Assert.Empty(t.TokenBytes(9, renderSpecial: true).ToArray());    // unused: nothing, even rendered
        // "<ctl>x" is matched whole before the shorter "<ctl>"; the user-defined token is a special too.
        Assert.Equal([6, 5, 7], t.Encode("<ctl>x<ctl><user>", addBos: false, parseSpecial: true));
    }

    [Fact]
    public void Bpe_from_plain_tables_merges_lowest_rank_first_and_leftmost_on_ties()
    {
        // Vocabulary: the bytes a, b and the merges "a b" (rank 0) → "ab", "ab a" (rank 1), "b a" (rank 2).
        string[] tokens = ["a", "b", "ab", "aba", "ba"];
        var t = Tokenizer.Create(tokens, null, ["a b", "ab a", "b a"], new TokenizerSettings { PreTokenizer = PreTokenizerKind.Default });
        // "aba": (a,b) rank 0 beats (b,a) rank 2 → ab + a → (ab,a) rank 1 → aba.
        Assert.Equal([3], t.Encode("aba", addBos: false, parseSpecial: false));
        // "abab": leftmost (a,b) first → ab a b → ab ab? "ab ab" is not a merge; (a,b) at 2 → ab, ab.
        Assert.Equal([2, 2], t.Encode("abab", addBos: false, parseSpecial: false));
        // "bab": (b,a) rank 2 vs (a,b) rank 0 → b + ab; no merge for (b,ab).
        Assert.Equal([1, 2], t.Encode("bab", addBos: false, parseSpecial: false));
    }

    [Fact]
    public void Merge_results_outside_the_vocabulary_still_merge_further_and_fall_back_to_bytes()
    {
        // "x y" makes "xy", which is not a token; "xy z" makes the token "xyz".
        string[] tokens = ["x", "y", "z", "xyz"];
        var t = Tokenizer.Create(tokens, null, ["x y", "xy z"], new TokenizerSettings { PreTokenizer = PreTokenizerKind.Default });
        Assert.Equal([3], t.Encode("xyz", addBos: false, parseSpecial: false));
        // "xy" alone stays the non-token "xy" and falls back to its single bytes x, y.
        Assert.Equal([0, 1], t.Encode("xy", addBos: false, parseSpecial: false));
    }

    [Theory]
    [InlineData(PreTokenizerKind.Llama3)]
    [InlineData(PreTokenizerKind.Default)]
    public void Random_unicode_text_round_trips_through_encode_and_decode(PreTokenizerKind kind)
    {
        // Code points from many scripts and classes, including astral ones, marks and odd spaces.
        int[][] ranges =
        [
            [0x20, 0x7E], [0x09, 0x0D], [0xA0, 0x17F], [0x300, 0x36F], [0x370, 0x3FF], [0x400, 0x4FF],
            [0x5D0, 0x5EA], [0x600, 0x6FF], [0x900, 0x97F], [0xE00, 0xE7F], [0x2000, 0x206F], [0x3000, 0x30FF],
            [0x4E00, 0x4FFF], [0xAC00, 0xAD00], [0xFF00, 0xFFEF], [0x1F300, 0x1F6FF], [0x1F900, 0x1F9FF],
        ];
        var rng = new Random(2024);
        var tokenizer = OracleTokenizer.For(kind);
        for (int n = 0; n < 300; n++)
        {
            var sb = new StringBuilder();
            int length = rng.Next(0, 40);
            for (int i = 0; i < length; i++)
            {
                int[] r = ranges[rng.Next(ranges.Length)];
                sb.Append(char.ConvertFromUtf32(rng.Next(r[0], r[1] + 1)));
            }
            string text = sb.ToString();
            int[] ids = tokenizer.Encode(text, addBos: false, parseSpecial: false);
            Assert.Equal(text, tokenizer.Decode(ids));
        }
    }

    [Fact]
    public async Task Concurrent_encodes_on_one_tokenizer_match_serial_ones()
    {
        var t = OracleTokenizer.Llama3;
        var vectors = JsonSerializer.Deserialize<JsonElement[]>(File.ReadAllText(SharedData.TokenizerVectors("tokenizer-llama3.json")))!;
        string[] texts = vectors.Select(v => v.GetProperty("text").GetString()!).ToArray();
        int[][] serial = texts.Select(x => t.Encode(x)).ToArray();
        var parallel = await Task.WhenAll(Enumerable.Range(0, 8).Select(k => Task.Run(
            () => texts.Select(x => t.Encode(x)).ToArray(), TestContext.Current.CancellationToken)));
        foreach (var run in parallel)
            for (int i = 0; i < texts.Length; i++)
                Assert.Equal(serial[i], run[i]);
    }

    [Fact]
    public void Inconsistent_tables_are_a_tokenizer_exception_naming_the_problem()
    {
        var settings = new TokenizerSettings();
        var e1 = Assert.Throws<TokenizerException>(() => Tokenizer.Create(["a", "b"], [1], [], settings));
        Assert.Contains("2 tokens but 1 token types", e1.Message);
        var e2 = Assert.Throws<TokenizerException>(() => Tokenizer.Create(["a", "b"], null, [], settings with { BosId = 7 }));
        Assert.Contains("BOS token id 7", e2.Message);
        // EOT and EOM named by the file are checked too: an id past the vocabulary is not silently dropped.
        Assert.Contains("EOT token id 2 is outside the vocabulary (0..1)",
            Assert.Throws<TokenizerException>(() => Tokenizer.Create(["a", "b"], null, [], settings with { EotId = 2 })).Message);
        Assert.Contains("EOM token id 9",
            Assert.Throws<TokenizerException>(() => Tokenizer.Create(["a", "b"], null, [], settings with { EomId = 9 })).Message);
        var e3 = Assert.Throws<TokenizerException>(() => Tokenizer.Create(["a", "b"], null, ["ab"], settings));
        Assert.Contains("merge 0 ('ab')", e3.Message);
        Assert.Throws<TokenizerException>(() => Tokenizer.Create([], null, [], settings));
    }

    [Fact]
    public void Unknown_pre_tokenizer_name_in_the_file_or_option_is_a_clear_error()
    {
        Assert.Throws<ArgumentException>(() => PreTokenizer.Parse("gpt4o"));
        Assert.Equal(PreTokenizerKind.Default, PreTokenizer.Parse("DEFAULT"));
        Assert.Equal(PreTokenizerKind.Llama3, PreTokenizer.Parse("llama-bpe"));
    }
}
