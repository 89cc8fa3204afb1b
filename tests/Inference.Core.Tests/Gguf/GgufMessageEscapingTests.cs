using System.Buffers.Binary;
using BitNet.Inference.Gguf;
using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Tests.Gguf;

/// <summary>Errors quoting names or strings from a model file never carry the file's control characters to a terminal.</summary>
public class GgufMessageEscapingTests
{
    private const string HostileName = "mat\u001b[2J\u0007.weight";

    private static byte[] FileWithTensor(string name)
    {
        var w = new GgufWriter();
        w.AddMetadata("general.architecture", GgufValue.From("bitnet-b1.58"));
        w.AddMetadata("k\u001b]0;pwned\u0007", GgufValue.From(7u));
        w.AddTensor(name, GgmlType.I2_S, [128, 2], new byte[64 + 32]);
        using var ms = new MemoryStream();
        w.WriteTo(ms);
        return ms.ToArray();
    }

    private static string OpenError(byte[] bytes)
    {
        using var temp = new TempFolder();
        string path = temp.File("bad.gguf");
        File.WriteAllBytes(path, bytes);
        return Assert.Throws<GgufFormatException>(() => GgufFile.Open(path).Dispose()).Message;
    }

    private static void AssertPrintable(string message)
    {
        Assert.DoesNotContain(message, c => c < 0x20 || c is >= '\u007F' and <= '\u009F');
    }

    [Fact]
    public void An_unknown_tensor_type_error_escapes_the_tensor_name()
    {
        byte[] file = FileWithTensor(HostileName);
        int at = ByteSearch.AfterString(file, HostileName) + 4 + 16;
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at), 99);
        string message = OpenError(file);
        Assert.Contains(@"tensor 'mat\x1B[2J\x07.weight' has unknown ggml type 99", message);
        AssertPrintable(message);
    }

    [Fact]
    public void A_truncated_file_error_escapes_the_tensor_name()
    {
        string message = OpenError(FileWithTensor(HostileName)[..^10]);
        Assert.Contains(@"mat\x1B[2J\x07.weight", message);
        AssertPrintable(message);
    }

    [Fact]
    public void An_unknown_value_type_error_escapes_the_metadata_key()
    {
        byte[] file = FileWithTensor("mat.weight");
        int at = ByteSearch.AfterString(file, "k\u001b]0;pwned\u0007");
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at), 77);
        string message = OpenError(file);
        Assert.Contains(@"metadata key 'k\x1B]0;pwned\x07' has unknown value type 77", message);
        AssertPrintable(message);
    }

    [Fact]
    public void A_tokenizer_error_escapes_the_name_read_from_the_file()
    {
        var error = new TokenizerException("tokenizer model 'gpt2\u001b[31m' is not supported");
        Assert.Equal(@"tokenizer model 'gpt2\x1B[31m' is not supported", error.Message);
    }

    [Theory]
    [InlineData("plain.name", "plain.name")]
    [InlineData("tab\there", @"tab\x09here")]
    [InlineData("line\nbreak", @"line\x0Abreak")]
    [InlineData("del\u007f c1\u009b", @"del\x7F c1\x9B")]
    [InlineData("bidi\u202eevil\u2066", @"bidi\u202Eevil\u2066")]
    [InlineData("日本語 ünï 🙂", "日本語 ünï 🙂")]
    public void Printable_text_escapes_control_characters_and_keeps_the_rest(string text, string expected)
    {
        Assert.Equal(expected, PrintableText.Escape(text));
    }

    [Fact]
    public void Printable_text_escapes_lone_surrogates_but_keeps_pairs()
    {
        Assert.Equal(@"a\uD800b🙂c\uDC00", PrintableText.Escape("a\uD800b🙂c\uDC00"));
    }

    [Fact]
    public void An_error_quoting_a_long_string_from_the_file_is_shortened_in_the_middle()
    {
        // An architecture of 100 kB made a 100 kB error line (the CLI's, the server's health reason).
        var w = new GgufWriter();
        w.AddMetadata("general.architecture", GgufValue.From(new string('x', 100_000) + "\u001b"));
        using var temp = new TempFolder();
        w.WriteTo(temp.File("long.gguf"));
        string message = Assert.Throws<BitNet.Inference.Model.ModelFormatException>(
            () => BitNet.Inference.Model.BitNetModel.Load(temp.File("long.gguf")).Dispose()).Message;
        Assert.True(message.Length <= 1060, $"{message.Length} characters");
        Assert.StartsWith("long.gguf: unsupported architecture 'xxx", message);
        Assert.Contains(" characters left out) …", message);
        Assert.EndsWith(@"xx\x1B' (supported: bitnet-b1.58, bitnet-25, bitnet, llama)", message);

        var merge = Assert.Throws<TokenizerException>(() => Tokenizer.Create(["a", "b"], null, [new string('m', 1_000_000)], new TokenizerSettings()));
        Assert.True(merge.Message.Length <= 1060, $"{merge.Message.Length} characters");
        Assert.EndsWith("mmm') is not of the form 'left right'", merge.Message);
    }

    [Fact]
    public void A_shortened_message_keeps_surrogate_pairs_whole()
    {
        foreach (int pad in new[] { 0, 1 })
        {
            string message = new GgufFormatException(new string('a', pad) + string.Concat(Enumerable.Repeat("🙂", 2000))).Message;
            Assert.Contains("characters left out", message);
            for (int i = 0; i < message.Length; i++)
                Assert.False(char.IsHighSurrogate(message[i]) ? i + 1 == message.Length || !char.IsLowSurrogate(message[i + 1])
                    : char.IsLowSurrogate(message[i]) && (i == 0 || !char.IsHighSurrogate(message[i - 1])), $"lone surrogate at {i}");
        }
    }
}
