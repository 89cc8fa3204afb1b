using System.Net;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;
using BitNet.Tests.Shared;

namespace BitNet.Hosts.Tests;

/// <summary>llama.cpp's /tokenize and /detokenize on the real engine (the oracle model's Llama 3 vocabulary).</summary>
public sealed class TokenizeEndpointTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    private static async Task<(HttpStatusCode Status, JsonElement Body)> Post(TestServer server, string path, string body)
    {
        var response = await server.Client.PostAsync(path, Sse.Json(body), Ct);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct));
        return (response.StatusCode, json.RootElement.Clone());
    }

    private static string Quote(string text) => JsonSerializer.Serialize(text);

    private static int[] Ids(JsonElement body) => [.. body.GetProperty("tokens").EnumerateArray().Select(t => t.GetInt32())];

    [Fact]
    public async Task Tokenize_gives_bitnet_cpps_ids_for_every_tokenizer_vector_and_detokenize_gives_the_text_back()
    {
        await using var server = await TestServer.StartAsync(RealEngine.Instance);
        var vectors = JsonSerializer.Deserialize<JsonElement[]>(File.ReadAllText(SharedData.TokenizerVectors("tokenizer-llama3.json")))!;
        Assert.True(vectors.Length >= 100);
        foreach (JsonElement vector in vectors)
        {
            string text = vector.GetProperty("text").GetString()!;
            int[] expected = [.. vector.GetProperty("ids").EnumerateArray().Select(i => i.GetInt32())];
            // The vectors were made with llama-tokenize: no BOS, control-token text parsed.
            var (status, body) = await Post(server, "/tokenize", $$"""{"content":{{Quote(text)}},"parse_special":true}""");
            Assert.Equal(HttpStatusCode.OK, status);
            Assert.Equal(expected, Ids(body));

            var (back, content) = await Post(server, "/detokenize", $$"""{"tokens":[{{string.Join(",", expected)}}]}""");
            Assert.Equal(HttpStatusCode.OK, back);
            Assert.Equal(text, content.GetProperty("content").GetString());
        }
    }

    [Fact]
    public async Task Control_token_text_stays_text_unless_parse_special_and_add_special_adds_bos()
    {
        await using var server = await TestServer.StartAsync(RealEngine.Instance);
        int eot = RealEngine.Instance.Tokenize("<|eot_id|>", addBos: false, parseSpecial: true).Single();
        int bos = RealEngine.Instance.Tokenizer.BosId!.Value;

        var (_, plain) = await Post(server, "/tokenize", """{"content":"Hi<|eot_id|>"}""");
        Assert.DoesNotContain(eot, Ids(plain));
        Assert.True(Ids(plain).Length > 3);
        var (_, parsed) = await Post(server, "/tokenize", """{"content":"Hi<|eot_id|>","parse_special":true}""");
        Assert.Equal(eot, Ids(parsed)[^1]);
        Assert.Equal(2, Ids(parsed).Length);
        var (_, withBos) = await Post(server, "/tokenize", """{"content":"Hi","add_special":true}""");
        Assert.Equal(bos, Ids(withBos)[0]);
        Assert.Equal(Ids(parsed)[0], Ids(withBos)[1]);
        var (_, empty) = await Post(server, "/tokenize", """{"content":""}""");
        Assert.Empty(Ids(empty));
    }

    [Fact]
    public async Task Pieces_are_text_or_the_bytes_of_a_split_character_and_join_to_the_content()
    {
        await using var server = await TestServer.StartAsync(RealEngine.Instance);
        const string content = "Llamas 🦙 graze near 龘 and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 signs.";
        var (status, body) = await Post(server, "/tokenize", $$"""{"content":{{Quote(content)}},"with_pieces":true}""");
        Assert.Equal(HttpStatusCode.OK, status);
        var joined = new List<byte>();
        int splits = 0;
        foreach (JsonElement token in body.GetProperty("tokens").EnumerateArray())
        {
            int id = token.GetProperty("id").GetInt32();
            JsonElement piece = token.GetProperty("piece");
            byte[] bytes = piece.ValueKind == JsonValueKind.String
                ? Encoding.UTF8.GetBytes(piece.GetString()!)
                : [.. piece.EnumerateArray().Select(b => (byte)b.GetInt32())];
            if (piece.ValueKind == JsonValueKind.Array) splits++;
            Assert.Equal(RealEngine.Instance.TokenBytes(id), bytes);
            joined.AddRange(bytes);
        }
        Assert.Equal(Encoding.UTF8.GetBytes(content), joined.ToArray());
        Assert.True(splits > 0, "some token should hold part of a character");
    }

    [Theory]
    [InlineData("/tokenize", "{}", "content")]
    [InlineData("/tokenize", """{"content":5}""", "content")]
    [InlineData("/detokenize", "{}", "tokens")]
    [InlineData("/detokenize", """{"tokens":[1,-1]}""", "tokens[1]")]
    [InlineData("/detokenize", """{"tokens":[128256]}""", "tokens[0]")]
    [InlineData("/detokenize", """{"tokens":[1.5]}""", "tokens[0]")]
    public async Task Bad_bodies_are_400_naming_the_field(string path, string body, string param)
    {
        await using var server = await TestServer.StartAsync(RealEngine.Instance);
        var (status, error) = await Post(server, path, body);
        Assert.Equal(HttpStatusCode.BadRequest, status);
        Assert.Equal(param, error.GetProperty("error").GetProperty("param").GetString());
    }

    [Fact]
    public async Task Get_is_405_with_allow_post()
    {
        await using var server = await TestServer.StartAsync(RealEngine.Instance);
        var response = await server.Client.GetAsync("/tokenize", Ct);
        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal("POST", string.Join(",", response.Content.Headers.Allow));
    }
}
