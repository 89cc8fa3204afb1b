using System.Net;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using BitNet.Tests.Shared;

namespace BitNet.Hosts.Tests;

/// <summary>
/// Streams that get a place at once and then wait inside the generator for their first token (to be admitted, or while
/// the prompt is evaluated), through the real Kestrel host: their headers come at once and an SSE comment saying what
/// they wait for every keep-alive interval until the first token, so a proxy's idle limit does not cut them. The fake
/// generator holds its first token until the test opens a gate; the real engine makes a stream wait for KV blocks.
/// </summary>
public sealed class FirstTokenKeepAliveTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;
    /// <summary>How long a test waits for what a held stream gets at once; the old server sent nothing until the first token.</summary>
    private static readonly TimeSpan AtOnce = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Interval = TimeSpan.FromMilliseconds(100);

    private static Task<HttpResponseMessage> PostAsync(HttpClient client, string path, string json) =>
        client.SendAsync(new HttpRequestMessage(HttpMethod.Post, path) { Content = Sse.Json(json) }, HttpCompletionOption.ResponseHeadersRead, Ct);

    private static async Task<string> ReadLineAsync(StreamReader reader) =>
        await reader.ReadLineAsync(Ct).AsTask().WaitAsync(AtOnce, Ct) ?? throw new EndOfStreamException("the stream ended");

    private static async Task ReadCommentAsync(StreamReader reader, string comment)
    {
        Assert.Equal(comment, await ReadLineAsync(reader));
        Assert.Equal("", await ReadLineAsync(reader));
    }

    private static void AssertEventStreamHeaders(HttpResponseMessage response)
    {
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        Assert.True(response.Headers.CacheControl!.NoCache);
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"tell me"}],"max_tokens":6,"stream":true}""")]
    [InlineData("/v1/completions", """{"prompt":"tell me","max_tokens":6,"stream":true}""")]
    [InlineData("/completion", """{"prompt":"tell me","n_predict":6,"stream":true}""")]
    public async Task A_stream_whose_prompt_takes_long_gets_its_headers_at_once_and_a_comment_at_each_interval_then_its_chunks(string path, string body)
    {
        var fake = new FakeTextGenerator(contextLength: 100_000);
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { QueueKeepAlive = Interval });
        using HttpResponseMessage quick = await PostAsync(server.Client, path, body);
        var (_, quickFrames, quickDone) = Sse.ParseAfterComments(await quick.Content.ReadAsStringAsync(Ct));

        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        fake.FirstTokenGate = gate.Task;
        fake.PhaseBeforeFirstToken = GenerationPhase.EvaluatingPrompt;
        using HttpResponseMessage held = await PostAsync(server.Client, path, body).WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(held);
        using var reader = new StreamReader(await held.Content.ReadAsStreamAsync(Ct));
        for (int i = 0; i < 3; i++)
            await ReadCommentAsync(reader, ": evaluating the prompt");
        Assert.Equal(1, server.Api.Queue.Running);   // it has its place: it waits in the generator, not in the queue
        Assert.Equal(0, server.Api.Queue.Waiting);

        gate.SetResult();
        var (_, frames, done) = Sse.ParseAfterComments(await reader.ReadToEndAsync(Ct));
        Assert.Equal(quickDone, done);
        Assert.Equal(quickFrames.Count, frames.Count);
        Assert.Equal(QueuedStreamTests.Text(quickFrames), QueuedStreamTests.Text(frames));
    }

    [Theory]
    [InlineData(GenerationPhase.Unknown, ": waiting for the first token")]
    [InlineData(GenerationPhase.Waiting, ": waiting for a free slot")]
    [InlineData(GenerationPhase.EvaluatingPrompt, ": evaluating the prompt")]
    public async Task The_comment_of_a_stream_waiting_in_the_generator_says_what_the_generator_reports(GenerationPhase phase, string comment)
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fake = new FakeTextGenerator { FirstTokenGate = gate.Task, PhaseBeforeFirstToken = phase };
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { QueueKeepAlive = Interval });
        using HttpResponseMessage held = await PostAsync(server.Client, "/v1/completions", """{"prompt":"x","max_tokens":3,"stream":true}""").WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(held);
        using var reader = new StreamReader(await held.Content.ReadAsStreamAsync(Ct));
        await ReadCommentAsync(reader, comment);
        await ReadCommentAsync(reader, comment);

        gate.SetResult();
        var (_, frames, done) = Sse.ParseAfterComments(await reader.ReadToEndAsync(Ct));
        Assert.True(done);
        Assert.Equal(FakeTextGenerator.Expected(fake.Tokenize("x"), 3), string.Concat(frames.Select(f => f.GetProperty("choices")[0].GetProperty("text").GetString())));
    }

    [Fact]
    public async Task A_client_leaving_a_stream_that_waits_for_its_first_token_frees_its_slot_at_once()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fake = new FakeTextGenerator { FirstTokenGate = gate.Task, PhaseBeforeFirstToken = GenerationPhase.EvaluatingPrompt };
        // No comment within the test: the server must notice the client leaving without writing to it.
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { QueueKeepAlive = TimeSpan.FromMinutes(1) });
        using var closing = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(server.BaseUrl) };
        HttpResponseMessage leaving = await PostAsync(closing, "/v1/completions", """{"prompt":"x","max_tokens":3,"stream":true}""").WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(leaving);
        Assert.Equal(1, server.Api.Queue.Running);

        leaving.Dispose();
        await fake.CancellationObserved.Task.WaitAsync(AtOnce, Ct);
        await HttpApiTests.WaitUntil(() => server.Api.Queue.Running == 0);
        Assert.False(gate.Task.IsCompleted);
    }

    [Fact]
    public async Task A_stream_whose_deadline_passes_before_its_first_token_ends_with_finish_reason_length_after_its_comments()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fake = new FakeTextGenerator { FirstTokenGate = gate.Task, PhaseBeforeFirstToken = GenerationPhase.EvaluatingPrompt };
        await using var server = await TestServer.StartAsync(fake,
            new ApiOptions { RequestTimeout = TimeSpan.FromMilliseconds(800), QueueKeepAlive = Interval });
        using HttpResponseMessage stream = await PostAsync(server.Client, "/v1/completions", """{"prompt":"x","max_tokens":3,"stream":true}""").WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(stream);

        var (comments, frames, done) = Sse.ParseAfterComments(await stream.Content.ReadAsStringAsync(Ct).WaitAsync(AtOnce, Ct));
        Assert.InRange(comments, 1, 100);
        Assert.True(done);
        JsonElement choice = Assert.Single(frames).GetProperty("choices")[0];
        Assert.Equal("", choice.GetProperty("text").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(0, server.Api.Queue.Running);
    }

    [Fact]
    public async Task A_stream_waiting_for_its_first_token_at_shutdown_keeps_its_comments_and_runs_to_its_end()
    {
        var gate = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var fake = new FakeTextGenerator { FirstTokenGate = gate.Task, PhaseBeforeFirstToken = GenerationPhase.EvaluatingPrompt };
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { ShutdownTimeout = TimeSpan.FromSeconds(20), QueueKeepAlive = Interval });
        using HttpResponseMessage stream = await PostAsync(server.Client, "/v1/completions", """{"prompt":"x","max_tokens":3,"stream":true}""").WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(stream);
        using var reader = new StreamReader(await stream.Content.ReadAsStreamAsync(Ct));
        await ReadCommentAsync(reader, ": evaluating the prompt");

        Task stopping = server.StopAsync();
        await HttpApiTests.WaitUntil(() => server.Api.ShuttingDown);
        await ReadCommentAsync(reader, ": evaluating the prompt");
        await ReadCommentAsync(reader, ": evaluating the prompt");
        gate.SetResult();
        var (_, frames, done) = Sse.ParseAfterComments(await reader.ReadToEndAsync(Ct).WaitAsync(AtOnce, Ct));
        Assert.True(done);
        Assert.Equal(FakeTextGenerator.Expected(fake.Tokenize("x"), 3), string.Concat(frames.Select(f => f.GetProperty("choices")[0].GetProperty("text").GetString())));
        await stopping.WaitAsync(AtOnce, Ct);
    }

    [Fact]
    public async Task An_engine_fault_at_the_start_of_a_stream_is_still_a_500_and_not_a_200()
    {
        var fake = new FakeTextGenerator { FailAtStart = true, FirstTokenGate = new TaskCompletionSource().Task };
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { QueueKeepAlive = Interval });
        using HttpResponseMessage refused = await PostAsync(server.Client, "/v1/completions", """{"prompt":"x","max_tokens":3,"stream":true}""").WaitAsync(AtOnce, Ct);
        Assert.Equal(HttpStatusCode.InternalServerError, refused.StatusCode);
        Assert.Equal("application/json", refused.Content.Headers.ContentType!.MediaType);
        Assert.Equal(0, server.Api.Queue.Running);
    }

    [Fact]
    public async Task A_stream_the_engine_admits_only_once_kv_blocks_are_free_gets_comments_until_then_and_its_text()
    {
        using var engine = BitNetEngine.Load(new EngineOptions
        {
            ModelPath = SharedData.OracleModelPath, Threads = 2, ContextLength = 512, Parallel = 2, KvCacheTokens = 512,
        });
        await using var server = await TestServer.StartAsync(engine, new ApiOptions { QueueKeepAlive = Interval });
        const string waiter = """{"prompt":"The capital of France is","max_tokens":8,"temperature":0,"stream":true}""";
        using HttpResponseMessage alone = await PostAsync(server.Client, "/v1/completions", waiter);
        var (_, aloneFrames, aloneDone) = Sse.ParseAfterComments(await alone.Content.ReadAsStringAsync(Ct));
        Assert.True(aloneDone);

        // Its promise is every block of the pool (prompt and 500 tokens: the whole context), and it cannot stop early.
        string noEnd = string.Join(",", engine.Tokenizer.EndOfGenerationIds.Select(id => $"\"{id}\":-100"));
        HttpResponseMessage holder = await PostAsync(server.Client, "/v1/completions",
            $$"""{"prompt":"Once upon a time","max_tokens":500,"temperature":0,"logit_bias":{{{noEnd}}},"stream":true}""");
        var holding = new StreamReader(await holder.Content.ReadAsStreamAsync(Ct));
        while (!(await ReadLineAsync(holding)).StartsWith("data: ", StringComparison.Ordinal))
        {
        }

        using HttpResponseMessage waiting = await PostAsync(server.Client, "/v1/completions", waiter).WaitAsync(AtOnce, Ct);
        AssertEventStreamHeaders(waiting);
        using var reader = new StreamReader(await waiting.Content.ReadAsStreamAsync(Ct));
        await ReadCommentAsync(reader, ": waiting for a free slot");
        await ReadCommentAsync(reader, ": waiting for a free slot");
        Assert.Equal(2, server.Api.Queue.Running);   // both have their place in the API: the second waits in the engine
        Assert.Equal(1, engine.CurrentLoad.Waiting);

        holding.Dispose();
        holder.Dispose();   // its client leaves: its blocks go back to the pool
        var (_, frames, done) = Sse.ParseAfterComments(await reader.ReadToEndAsync(Ct).WaitAsync(AtOnce, Ct));
        Assert.True(done);
        Assert.Equal(QueuedStreamTests.Text(aloneFrames), QueuedStreamTests.Text(frames));
        Assert.Equal(aloneFrames.Count, frames.Count);
    }
}
