using System.Net;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;

namespace BitNet.Hosts.Tests;

/// <summary>n_predict -1 (llama.cpp: no limit from the request) still ends at the server's limit and at the request deadline.</summary>
public sealed class UnlimitedNPredictTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    [Theory]
    [InlineData("/completion", """{"prompt":"hi","n_predict":-1}""")]
    [InlineData("/v1/completions", """{"prompt":"hi","n_predict":-1}""")]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"hi"}],"n_predict":-1}""")]
    public async Task N_predict_minus_one_stops_at_the_servers_default_max_tokens(string path, string json)
    {
        var fake = new FakeTextGenerator(contextLength: 4096);
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { DefaultMaxTokens = 7 });
        HttpResponseMessage response = await server.Client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(7, fake.LastRequest!.MaxTokens);
    }

    [Fact]
    public async Task N_predict_minus_one_stops_at_the_request_deadline()
    {
        var fake = new FakeTextGenerator(contextLength: 100_000) { TokenDelay = TimeSpan.FromMilliseconds(20) };
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { DefaultMaxTokens = 100_000, RequestTimeout = TimeSpan.FromSeconds(1) });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        HttpResponseMessage response = await server.Client.PostAsync("/completion",
            new StringContent("""{"prompt":"hi","n_predict":-1}""", Encoding.UTF8, "application/json"), Ct);
        JsonElement body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("length", body.GetProperty("finish_reason").GetString());
        Assert.InRange(body.GetProperty("tokens_predicted").GetInt32(), 1, 99_999);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(30), $"took {clock.Elapsed}");
    }
}
