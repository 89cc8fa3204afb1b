using BitNet.Inference.Tokenization;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Tokenization;

public class PreTokenizerTests
{
    private static string[] Split(PreTokenizerKind kind, string text)
    {
        var cps = new CodepointText(text);
        var pieces = new List<Piece>();
        PreTokenizer.Split(kind, cps, 0, cps.Length, pieces);
        return pieces.Select(p => string.Concat(cps.Codepoints[p.Start..p.End].Select(char.ConvertFromUtf32))).ToArray();
    }

    [Theory]
    [InlineData("I'm here", new[] { "I", "'m", " here" })]
    [InlineData("JOHN'S", new[] { "JOHN", "'S" })]
    [InlineData("12345", new[] { "123", "45" })]
    [InlineData(" (x)", new[] { " (", "x", ")" })]
    [InlineData("a  b", new[] { "a", " ", " b" })]
    [InlineData("x \n\n y", new[] { "x", " \n\n", " y" })]
    [InlineData("):\n\tcol", new[] { "):\n", "\tcol" })]
    [InlineData("end   ", new[] { "end", "   " })]
    public void Llama3_follows_the_llama3_regex(string text, string[] expected) =>
        Assert.Equal(expected, Split(PreTokenizerKind.Llama3, text));

    [Theory]
    [InlineData("I'm here", new[] { "I", "'", "m", " here" })]
    [InlineData(" (x)", new[] { " ", "(", "x", ")" })]
    [InlineData(" 2024", new[] { " ", "202", "4" })]
    [InlineData("snake_case", new[] { "snake", "_", "case" })]
    [InlineData("\tcol", new[] { "\t", "col" })]
    [InlineData("a  b", new[] { "a", " ", " b" })]
    [InlineData("x`y", new[] { "x", "`", "y" })]
    public void Default_applies_the_four_llama_cpp_splits_in_order(string text, string[] expected) =>
        Assert.Equal(expected, Split(PreTokenizerKind.Default, text));

    [Theory]
    [InlineData("In 2024, I'm 35.", new[] { "In", " ", "2", "0", "2", "4", ",", " I", "'", "m", " ", "3", "5", "." })]
    [InlineData("x12y", new[] { "x", "1", "2", "y" })]
    [InlineData("١٢٣ abc", new[] { "١٢٣", " abc" })]
    public void Falcon3_splits_punctuation_then_gpt2_then_every_ascii_digit(string text, string[] expected) =>
        Assert.Equal(expected, Split(PreTokenizerKind.Falcon3, text));

    [Theory]
    [InlineData("falcon3")]
    [InlineData("falcon_e")]
    public void Falcon_pre_tokenizer_names_both_mean_the_falcon3_split(string name) =>
        Assert.Equal(PreTokenizerKind.Falcon3, Tokenizer.ParsePreTokenizer(name));

    [MachineDependent(TestCategories.NeedsTiming)]
    [Fact]
    public void Long_runs_split_in_linear_time()
    {
        string text = string.Concat(Enumerable.Repeat("ab  ", 50_000)) + new string(' ', 100_000) + new string('9', 100_000);
        var watch = System.Diagnostics.Stopwatch.StartNew();
        foreach (var kind in new[] { PreTokenizerKind.Llama3, PreTokenizerKind.Default })
            Assert.NotEmpty(Split(kind, text));
        Assert.True(watch.ElapsedMilliseconds < 2000, $"took {watch.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void Byte_level_table_maps_space_to_G_dot_and_round_trips_every_byte()
    {
        Assert.Equal('Ġ', ByteLevelEncoding.Encode((byte)' '));
        Assert.Equal('Ċ', ByteLevelEncoding.Encode((byte)'\n'));
        Assert.Equal('A', ByteLevelEncoding.Encode((byte)'A'));
        for (int b = 0; b < 256; b++)
            Assert.Equal(b, ByteLevelEncoding.Decode(ByteLevelEncoding.Encode((byte)b)));
    }
}
