using System.Text;
using System.Text.Json;
using BitNet.Hosts.Lambda;
using BitNet.Hosts.Lambda.Runtime;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using BitNet.Inference.Hub;
using BitNet.Tests.Shared;

namespace BitNet.Hosts.Tests;

/// <summary>The Lambda runtime serving the real engine on the oracle model: same greedy text as the engine itself.</summary>
public sealed class RealEngineHostTests
{
    [Fact]
    public async Task A_client_that_disconnects_stops_the_real_engine_within_one_token()
    {
        // A dedicated engine on the scalar kernels and one thread: slow enough (tens of ms a token)
        // that the 400 tokens cannot all be produced before the server notices the disconnect,
        // which on the fast kernels was a race the test could lose.
        using var slowEngine = BitNetEngine.Load(new EngineOptions
        {
            ModelPath = SharedData.OracleModelPath,
            Threads = 1,
            ContextLength = 512,
            Kernel = "scalar",
        });
        var observed = new ObservingGenerator(slowEngine);
        await using var server = await TestServer.StartAsync(observed);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = Sse.Json("""{"messages":[{"role":"user","content":"Write a very long essay."}],"max_tokens":400,"temperature":0,"stream":true}"""),
        };
        CancellationToken ct = TestContext.Current.CancellationToken;
        using (HttpResponseMessage response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, ct))
        {
            await Sse.ReadDataFramesAsync(response, 4, ct);
        } // the client goes away after three tokens

        var (atCancel, final) = await observed.Cancelled.Task.WaitAsync(TimeSpan.FromSeconds(20), ct);
        Assert.True(atCancel >= 3, $"cancelled after {atCancel} tokens");
        Assert.InRange(final.CompletionTokens - atCancel, 0, 1);
        Assert.True(final.CompletionTokens < 400);
        await HttpApiTests.WaitUntil(() => !server.Api.Queue.Busy);
    }

    [Fact]
    public async Task The_legacy_answer_names_the_stop_string_that_ended_it_as_llama_cpp_does()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        string full = await RealEngine.GreedyCompletionAsync("The capital of France is", 8);
        int cut = full.Length / 2;
        string stop = full.Substring(cut, Math.Min(3, full.Length - cut));
        await using var server = await TestServer.StartAsync(RealEngine.Instance);

        foreach (bool stream in new[] { false, true })
        {
            string payload = JsonSerializer.Serialize(new { prompt = "The capital of France is", n_predict = 8, temperature = 0, stop = new[] { "zzz", stop }, stream });
            HttpResponseMessage response = await server.Client.PostAsync("/completion", Sse.Json(payload), ct);
            string body = await response.Content.ReadAsStringAsync(ct);
            JsonElement answer = stream ? Sse.Parse(body).Frames[^1] : JsonDocument.Parse(body).RootElement;
            Assert.Equal("word", answer.GetProperty("stop_type").GetString());
            Assert.Equal(stop, answer.GetProperty("stopping_word").GetString());
            if (!stream) Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], answer.GetProperty("content").GetString());
        }

        HttpResponseMessage unstopped = await server.Client.PostAsync("/completion",
            Sse.Json("""{"prompt":"The capital of France is","n_predict":4,"temperature":0}"""), ct);
        JsonElement limit = JsonDocument.Parse(await unstopped.Content.ReadAsStringAsync(ct)).RootElement;
        Assert.Equal("limit", limit.GetProperty("stop_type").GetString());
        Assert.Equal("", limit.GetProperty("stopping_word").GetString());
    }

    [Fact]
    public async Task Lambda_answers_the_seed_payload_and_a_streamed_function_url_chat_with_the_engines_greedy_output()
    {
        FakeRuntimeApi runtime = await FakeRuntimeApi.StartAsync();
        await using (runtime)
        {
            using var client = new RuntimeApiClient(runtime.HostPort);
            var env = new DictionaryEnvironment(new Dictionary<string, string?> { [EnvVars.LambdaStreaming] = "true" }, "/tmp");
            using var stop = new CancellationTokenSource();
            Task<int> running = Task.Run(() => new LambdaRuntimeLoop(client, env, (_, _) => { }).RunAsync(_ => RealEngine.Instance, stop.Token));

            FakeRuntimeApi.Posted legacy = await runtime.Invoke("""{"prompt":"The capital of France is","n_predict":6,"temperature":0}""");
            JsonElement answer = JsonDocument.Parse(legacy.Body).RootElement;
            Assert.Equal(await RealEngine.GreedyCompletionAsync("The capital of France is", 6), answer.GetProperty("content").GetString());
            Assert.Equal(6, answer.GetProperty("tokens_evaluated").GetInt32());

            FakeRuntimeApi.Posted streamed = await runtime.Invoke(LambdaHostTests.FunctionUrlEvent("POST", "/v1/chat/completions",
                """{"messages":[{"role":"user","content":"Name a colour."}],"max_tokens":5,"temperature":0,"stream":true}"""));
            int separator = streamed.Body.AsSpan().IndexOf(new byte[8]);
            var (frames, done) = Sse.Parse(Encoding.UTF8.GetString(streamed.Body, separator + 8, streamed.Body.Length - separator - 8));
            Assert.True(done);
            Assert.Equal(await RealEngine.GreedyChatAsync([new ChatMessage(ChatRole.User, "Name a colour.")], 5), Sse.ChatText(frames));

            stop.Cancel();
            Assert.Equal(0, await running.WaitAsync(TimeSpan.FromSeconds(10), TestContext.Current.CancellationToken));
        }
    }
}
