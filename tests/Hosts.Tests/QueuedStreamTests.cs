using System.ClientModel;
using System.ClientModel.Primitives;
using System.Net;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using OpenAI;
using OpenAI.Chat;

namespace BitNet.Hosts.Tests;

/// <summary>
/// Streams that wait in the queue, through the real Kestrel host: their response starts at once with SSE comments, so a
/// proxy's idle limit does not cut them, and what would have been an error status before the start ends them as an error
/// event. The only slot is held by a long stream, or, where a deadline or a shutdown would end that one too, by a lease
/// taken from the queue directly: a request that never ends.
/// </summary>
public sealed class QueuedStreamTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;
    /// <summary>How long a test waits for what a queued stream gets at once; the old server sent nothing until the start.</summary>
    private static readonly TimeSpan AtOnce = TimeSpan.FromSeconds(10);
    private const string Comment = ": waiting for a free slot";
    private const string ChatStream = """{"messages":[{"role":"user","content":"tell me"}],"max_tokens":6,"stream":true}""";

    private static Task<HttpResponseMessage> PostAsync(HttpClient client, string path, string json) =>
        client.SendAsync(new HttpRequestMessage(HttpMethod.Post, path) { Content = Sse.Json(json) }, HttpCompletionOption.ResponseHeadersRead, Ct);

    /// <summary>A stream of 50 000 tokens that holds the only slot until its client leaves (disposes it).</summary>
    private static async Task<HttpResponseMessage> StartLongStreamAsync(TestServer server)
    {
        HttpResponseMessage running = await PostAsync(server.Client, "/v1/completions", """{"prompt":"x","max_tokens":50000,"stream":true}""");
        Assert.Equal(1, server.Api.Queue.Running);
        return running;
    }

    private static async Task<string> ReadLineAsync(StreamReader reader) =>
        await reader.ReadLineAsync(Ct).AsTask().WaitAsync(AtOnce, Ct) ?? throw new EndOfStreamException("the stream ended");

    /// <summary>Reads one block of the stream, which must be the waiting comment.</summary>
    private static async Task ReadCommentAsync(StreamReader reader)
    {
        Assert.Equal(Comment, await ReadLineAsync(reader));
        Assert.Equal("", await ReadLineAsync(reader));
    }

    /// <summary>The text of a stream's chunks, whichever route sent them: chat deltas, completion texts, llama.cpp's contents.</summary>
    internal static string Text(IEnumerable<JsonElement> frames) => string.Concat(frames.Select(frame =>
        frame.TryGetProperty("choices", out JsonElement choices)
            ? string.Concat(choices.EnumerateArray().Select(choice => choice.TryGetProperty("delta", out JsonElement delta)
                ? delta.TryGetProperty("content", out JsonElement content) && content.ValueKind == JsonValueKind.String ? content.GetString() : ""
                : choice.GetProperty("text").GetString()))
            : frame.GetProperty("content").GetString()));

    /// <summary>Whether a stream ended as its route ends one: [DONE], or llama.cpp's last chunk, "stop": true.</summary>
    private static bool Ended(string path, List<JsonElement> frames, bool done) =>
        path == "/completion" ? frames[^1].GetProperty("stop").GetBoolean() : done;

    private static void AssertEventStreamHeaders(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        Assert.True(response.Headers.CacheControl!.NoCache);
        Assert.Equal("no", response.Headers.GetValues("X-Accel-Buffering").Single());
    }

    [Theory]
    [InlineData("/v1/chat/completions", ChatStream)]
    [InlineData("/v1/completions", """{"prompt":"tell me","max_tokens":6,"stream":true}""")]
    [InlineData("/completion", """{"prompt":"tell me","n_predict":6,"stream":true}""")]
    public async Task A_queued_stream_gets_200_its_headers_and_a_comment_at_once_and_at_each_interval_then_its_chunks_and_done(string path, string body)
    {
        var fake = new FakeTextGenerator(contextLength: 100_000) { TokenDelay = TimeSpan.FromMilliseconds(10) };
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { QueueKeepAlive = TimeSpan.FromMilliseconds(100) });
        using HttpResponseMessage alone = await PostAsync(server.Client, path, body);
        var (aloneComments, aloneFrames, aloneDone) = Sse.ParseAfterComments(await alone.Content.ReadAsStringAsync(Ct));
        Assert.Equal(0, aloneComments);
        Assert.True(Ended(path, aloneFrames, aloneDone));

        HttpResponseMessage running = await StartLongStreamAsync(server);
        using HttpResponseMessage queued = await PostAsync(server.Client, path, body).WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(queued);
        using var reader = new StreamReader(await queued.Content.ReadAsStreamAsync(Ct));
        for (int i = 0; i < 3; i++)
            await ReadCommentAsync(reader);
        Assert.Equal(1, server.Api.Queue.Waiting);
        Assert.Equal(2, fake.Generations);   // the one alone and the running one: the queued one has not started

        running.Dispose();                   // its client leaves: the place goes to the queued stream
        var (_, frames, done) = Sse.ParseAfterComments(await reader.ReadToEndAsync(Ct));
        Assert.True(Ended(path, frames, done));
        Assert.Equal(Text(aloneFrames), Text(frames));
        Assert.Equal(aloneFrames.Count, frames.Count);
    }

    [Fact]
    public async Task The_openai_client_streams_a_queued_chat_past_its_network_timeout_and_gets_the_text_of_an_unqueued_one()
    {
        var fake = new FakeTextGenerator(contextLength: 100_000) { TokenDelay = TimeSpan.FromMilliseconds(10) };
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { QueueKeepAlive = TimeSpan.FromMilliseconds(100) });
        // The client's network timeout (per read of a stream) stands for a proxy's idle limit; without retries a timeout fails the call.
        var options = new OpenAIClientOptions
        {
            Endpoint = new Uri(server.BaseUrl + "/v1"), NetworkTimeout = TimeSpan.FromSeconds(1.5), RetryPolicy = new ClientRetryPolicy(maxRetries: 0),
        };
        var chat = new ChatClient("bitnet", new ApiKeyCredential("not-needed"), options);
        async Task<string> StreamAsync()
        {
            var text = new StringBuilder();
            await foreach (StreamingChatCompletionUpdate update in chat.CompleteChatStreamingAsync([new UserChatMessage("tell me")],
                               new ChatCompletionOptions { MaxOutputTokenCount = 6 }, Ct))
            {
                foreach (ChatMessageContentPart part in update.ContentUpdate)
                    text.Append(part.Text);
            }
            return text.ToString();
        }
        string alone = await StreamAsync();

        HttpResponseMessage running = await StartLongStreamAsync(server);
        Task<string> queued = StreamAsync();
        await HttpApiTests.WaitUntil(() => server.Api.Queue.Waiting == 1);
        await Task.Delay(TimeSpan.FromSeconds(3), Ct);   // twice the client's timeout, in the queue
        Assert.False(queued.IsCompleted);

        running.Dispose();
        Assert.Equal(alone, await queued.WaitAsync(AtOnce, Ct));
        Assert.Equal(FakeTextGenerator.Expected(fake.LastRequest!.PromptTokens, 6), alone);
    }

    [Fact]
    public async Task A_queued_stream_whose_deadline_passes_ends_with_a_queue_timeout_event_and_a_buffered_one_still_gets_503()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake,
            new ApiOptions { RequestTimeout = TimeSpan.FromMilliseconds(800), QueueKeepAlive = TimeSpan.FromMilliseconds(100) });
        using RequestQueue.Lease slot = await server.Api.Queue.EnterAsync(Ct);
        Task<HttpResponseMessage> buffered = server.Client.PostAsync("/v1/chat/completions",
            Sse.Json("""{"messages":[{"role":"user","content":"tell me"}],"max_tokens":6}"""), Ct);
        using HttpResponseMessage stream = await PostAsync(server.Client, "/v1/chat/completions", ChatStream).WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(stream);

        var (comments, frames, done) = Sse.ParseAfterComments(await stream.Content.ReadAsStringAsync(Ct));
        Assert.InRange(comments, 1, 100);
        Assert.False(done);   // as after a fault mid-stream: the error event is the last
        JsonElement error = Assert.Single(frames).GetProperty("error");
        Assert.Equal("queue_timeout", error.GetProperty("code").GetString());
        Assert.Equal("unavailable_error", error.GetProperty("type").GetString());
        Assert.Equal("the request timed out waiting for the model; retry later", error.GetProperty("message").GetString());

        using HttpResponseMessage refused = await buffered;
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Equal("queue_timeout", JsonDocument.Parse(await refused.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetProperty("code").GetString());
        Assert.Equal(0, server.Api.Queue.Waiting);
        Assert.Equal(0, fake.Generations);
    }

    [Fact]
    public async Task A_queued_stream_ends_with_a_shutting_down_event_when_the_server_stops()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { ShutdownTimeout = TimeSpan.FromSeconds(20) });
        RequestQueue.Lease slot = await server.Api.Queue.EnterAsync(Ct);
        using HttpResponseMessage stream = await PostAsync(server.Client, "/v1/completions", """{"prompt":"x","max_tokens":3,"stream":true}""").WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(stream);
        using var reader = new StreamReader(await stream.Content.ReadAsStreamAsync(Ct));
        await ReadCommentAsync(reader);

        Task stopping = server.StopAsync();
        var (_, frames, done) = Sse.ParseAfterComments(await reader.ReadToEndAsync(Ct).WaitAsync(AtOnce, Ct));
        Assert.False(done);
        JsonElement error = Assert.Single(frames).GetProperty("error");
        Assert.Equal("shutting_down", error.GetProperty("code").GetString());
        Assert.Equal(0, server.Api.Queue.Waiting);
        Assert.Equal(0, fake.Generations);
        slot.Dispose();
        await stopping.WaitAsync(AtOnce, Ct);
    }

    [Fact]
    public async Task A_client_leaving_a_queued_stream_frees_its_place_at_once_and_a_full_queue_still_answers_429()
    {
        var fake = new FakeTextGenerator();
        // No second comment within the test: the server must notice the client leaving without writing to it.
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { QueueDepth = 1, QueueKeepAlive = TimeSpan.FromMinutes(1) });
        const string stream = """{"prompt":"x","max_tokens":3,"stream":true}""";
        RequestQueue.Lease slot = await server.Api.Queue.EnterAsync(Ct);
        // A client that closes its connection when it leaves: by default HttpClient first waits up to 2 s for the rest of the response.
        using var closing = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(server.BaseUrl) };
        HttpResponseMessage leaving = await PostAsync(closing, "/v1/completions", stream).WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(leaving);
        Assert.Equal(1, server.Api.Queue.Waiting);

        using HttpResponseMessage refused = await PostAsync(server.Client, "/v1/completions", stream);
        Assert.Equal((HttpStatusCode)429, refused.StatusCode);
        Assert.Equal("application/json", refused.Content.Headers.ContentType!.MediaType);
        Assert.Equal(TimeSpan.FromSeconds(1), refused.Headers.RetryAfter!.Delta);
        Assert.Equal("queue_full", JsonDocument.Parse(await refused.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetProperty("code").GetString());

        leaving.Dispose();
        await HttpApiTests.WaitUntil(() => server.Api.Queue.Waiting == 0);
        using HttpResponseMessage next = await PostAsync(server.Client, "/v1/completions", stream).WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(next);
        Assert.Equal(1, server.Api.Queue.Waiting);
        slot.Dispose();
        var (comments, frames, done) = Sse.ParseAfterComments(await next.Content.ReadAsStringAsync(Ct));
        Assert.Equal(1, comments);
        Assert.True(done);
        Assert.Equal(FakeTextGenerator.Expected(fake.Tokenize("x"), 3), Text(frames));
        Assert.Equal(1, fake.Generations);   // the stream that left never started
    }

    [Fact]
    public async Task A_buffered_request_in_the_queue_gets_nothing_until_it_has_run_while_a_stream_behind_it_gets_its_comment()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        RequestQueue.Lease slot = await server.Api.Queue.EnterAsync(Ct);
        Task<HttpResponseMessage> buffered = PostAsync(server.Client, "/v1/chat/completions", """{"messages":[{"role":"user","content":"tell me"}],"max_tokens":6}""");
        await HttpApiTests.WaitUntil(() => server.Api.Queue.Waiting == 1);
        using HttpResponseMessage stream = await PostAsync(server.Client, "/v1/chat/completions", ChatStream).WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(stream);
        using var reader = new StreamReader(await stream.Content.ReadAsStreamAsync(Ct));
        await ReadCommentAsync(reader);
        Assert.False(buffered.IsCompleted);   // queued before the stream, and still without a status line

        slot.Dispose();
        using HttpResponseMessage answer = await buffered;
        Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
        Assert.Equal("application/json", answer.Content.Headers.ContentType!.MediaType);
        JsonElement message = JsonDocument.Parse(await answer.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("choices")[0].GetProperty("message");
        var (_, frames, done) = Sse.ParseAfterComments(await reader.ReadToEndAsync(Ct));
        Assert.True(done);
        Assert.Equal(message.GetProperty("content").GetString(), Sse.ChatText(frames));
    }

    [Fact]
    public async Task A_queued_stream_through_the_azure_http_function_gets_its_comment_at_once()
    {
        var fake = new FakeTextGenerator();
        await using var worker = await AzureWorker.StartAsync(fake);
        RequestQueue.Lease slot = await worker.Api.Queue.EnterAsync(Ct);
        using HttpResponseMessage stream = await PostAsync(worker.Client, "/v1/chat/completions", ChatStream).WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(stream);
        using var reader = new StreamReader(await stream.Content.ReadAsStreamAsync(Ct));
        await ReadCommentAsync(reader);

        slot.Dispose();
        var (_, frames, done) = Sse.ParseAfterComments(await reader.ReadToEndAsync(Ct));
        Assert.True(done);
        Assert.Equal(FakeTextGenerator.Expected(fake.LastRequest!.PromptTokens, 6), Sse.ChatText(frames));
    }
}
