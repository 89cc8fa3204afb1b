using System.Text.Json;
using BitNet.Inference.Tokenization;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Tokenization;

/// <summary>Every vector bitnet.cpp's llama-tokenize produced (no BOS, special tokens parsed), for both pre-tokenizers.</summary>
public class TokenizerVectorTests(ITestOutputHelper output)
{
    private sealed record Vector(string Text, int[] Ids);

    private static readonly JsonSerializerOptions VectorJson = new() { PropertyNameCaseInsensitive = true };

    private static Vector[] Load(string file)
    {
        using var stream = File.OpenRead(SharedData.TokenizerVectors(file));
        return JsonSerializer.Deserialize<Vector[]>(stream, VectorJson)!;
    }

    [Theory]
    [InlineData("tokenizer-llama3.json", PreTokenizerKind.Llama3)]
    [InlineData("tokenizer-default.json", PreTokenizerKind.Default)]
    public void Every_oracle_vector_tokenizes_to_the_oracle_ids(string file, PreTokenizerKind kind)
    {
        var tokenizer = OracleTokenizer.For(kind);
        var vectors = Load(file);
        var failures = new List<string>();
        foreach (var v in vectors)
        {
            int[] ids = tokenizer.Encode(v.Text, addBos: false, parseSpecial: true);
            if (!ids.SequenceEqual(v.Ids))
                failures.Add($"{JsonSerializer.Serialize(v.Text)}\n  expected [{string.Join(",", v.Ids)}]\n  actual   [{string.Join(",", ids)}]");
        }
        output.WriteLine($"{file}: {vectors.Length - failures.Count}/{vectors.Length} vectors pass");
        Assert.True(failures.Count == 0, $"{failures.Count} of {vectors.Length} differ:\n" + string.Join("\n", failures));
    }

    [Theory]
    [InlineData("tokenizer-llama3.json", PreTokenizerKind.Llama3)]
    [InlineData("tokenizer-default.json", PreTokenizerKind.Default)]
    public void Every_oracle_vector_decodes_back_to_its_text_with_special_tokens_rendered(string file, PreTokenizerKind kind)
    {
        var tokenizer = OracleTokenizer.For(kind);
        foreach (var v in Load(file))
            Assert.Equal(v.Text, tokenizer.Decode(v.Ids, renderSpecial: true));
    }
}
