using System.Net;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;

namespace BitNet.Hosts.Tests;

/// <summary>Graceful shutdown of the Kestrel host: running streams finish, what outlives the timeout is cancelled.</summary>
public sealed class ShutdownTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    private static async Task<HttpResponseMessage> StartStreamAsync(TestServer server, int maxTokens) =>
        await server.Client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = Sse.Json($$"""{"prompt":"x","max_tokens":{{maxTokens}},"stream":true}"""),
        }, HttpCompletionOption.ResponseHeadersRead, Ct);

    [Fact]
    public async Task A_stream_running_at_shutdown_finishes_and_new_generations_are_refused_meanwhile()
    {
        var fake = new FakeTextGenerator { TokenDelay = TimeSpan.FromMilliseconds(20) };
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { ShutdownTimeout = TimeSpan.FromSeconds(20) });
        HttpResponseMessage stream = await StartStreamAsync(server, 25);
        Task stopping = server.StopAsync();

        ApiResponse refused = await server.Api.HandleAsync(new ApiRequest("POST", "/v1/completions", """{"prompt":"y","max_tokens":1}"""u8.ToArray()), Ct);
        Assert.Equal(503, refused.Status);
        Assert.Contains("shutting_down", refused.BodyText);

        var (frames, done) = Sse.Parse(await stream.Content.ReadAsStringAsync(Ct));
        Assert.True(done);
        Assert.Equal(FakeTextGenerator.Expected(fake.Tokenize("x"), 25), string.Concat(frames.Select(f => f.GetProperty("choices")[0].GetProperty("text").GetString())));
        await stopping.WaitAsync(TimeSpan.FromSeconds(10), Ct);
    }

    [Fact]
    public async Task A_stream_outliving_the_shutdown_timeout_is_cancelled()
    {
        var fake = new FakeTextGenerator(contextLength: 100_000) { TokenDelay = TimeSpan.FromMilliseconds(20) };
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { ShutdownTimeout = TimeSpan.FromMilliseconds(300) });
        HttpResponseMessage stream = await StartStreamAsync(server, 50_000);
        await server.StopAsync().WaitAsync(TimeSpan.FromSeconds(10), Ct);

        await fake.CancellationObserved.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.InRange(fake.TokensAfterCancel, 0, 1);
        stream.Dispose();
    }
}
