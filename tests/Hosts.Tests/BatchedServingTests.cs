using System.Net;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using BitNet.Tests.Shared;

namespace BitNet.Hosts.Tests;

/// <summary>The HTTP host serving a real engine that decodes several requests together.</summary>
public sealed class BatchedServingTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    private static BitNetEngine Load(int parallel, long kvTokens = 0) => BitNetEngine.Load(new EngineOptions
    {
        ModelPath = SharedData.OracleModelPath, Threads = 2, ContextLength = 512, Parallel = parallel, KvCacheTokens = kvTokens,
    });

    private static string Body(int i) => (i % 4) switch
    {
        0 => """{"messages":[{"role":"user","content":"Name three colours."}],"max_tokens":8,"temperature":0}""",
        1 => """{"prompt":"The capital of France is","max_tokens":10,"temperature":0,"stream":true}""",
        2 => """{"messages":[{"role":"system","content":"You are terse."},{"role":"user","content":"Count to five, please, slowly and clearly."}],"max_tokens":12,"temperature":0,"stream":true}""",
        _ => """{"prompt":"Once upon a time, in a land far away, there lived","max_tokens":6,"temperature":0}""",
    };

    private static string Path(int i) => i % 2 == 0 ? "/v1/chat/completions" : "/v1/completions";

    /// <summary>The generated text of a response, streamed or not, chat or completion.</summary>
    private static string Text(string body, bool chat)
    {
        if (body.StartsWith("data:", StringComparison.Ordinal))
        {
            var (frames, done) = Sse.Parse(body);
            Assert.True(done);
            return chat ? Sse.ChatText(frames)
                : string.Concat(frames.SelectMany(f => f.GetProperty("choices").EnumerateArray()).Select(c => c.GetProperty("text").GetString()));
        }
        using var json = JsonDocument.Parse(body);
        JsonElement choice = json.RootElement.GetProperty("choices")[0];
        return chat ? choice.GetProperty("message").GetProperty("content").GetString()! : choice.GetProperty("text").GetString()!;
    }

    private static async Task<string[]> Send(TestServer server, int count)
    {
        var responses = await Task.WhenAll(Enumerable.Range(0, count).Select(i => server.Client.PostAsync(Path(i), Sse.Json(Body(i)), Ct)));
        var texts = new string[count];
        for (int i = 0; i < count; i++)
        {
            Assert.Equal(HttpStatusCode.OK, responses[i].StatusCode);
            texts[i] = Text(await responses[i].Content.ReadAsStringAsync(Ct), chat: i % 2 == 0);
        }
        return texts;
    }

    [Fact]
    public async Task Four_concurrent_chat_and_completion_requests_streamed_or_not_get_their_solo_answers()
    {
        string[] solo;
        using (var alone = Load(parallel: 1))
        await using (var server = await TestServer.StartAsync(alone))
        {
            solo = new string[4];
            for (int i = 0; i < 4; i++)
            {
                var response = await server.Client.PostAsync(Path(i), Sse.Json(Body(i)), Ct);
                solo[i] = Text(await response.Content.ReadAsStringAsync(Ct), chat: i % 2 == 0);
            }
        }
        using var engine = Load(parallel: 4);
        await using var batched = await TestServer.StartAsync(engine);
        string[] together = await Send(batched, 4);
        Assert.Equal(solo, together);
        Assert.True(engine.CurrentLoad.GeneratedTokens > 0);
        Assert.Equal(0, engine.KvCache.UsedBlocks);
    }

    [Fact]
    public async Task Health_and_metrics_report_sequences_kv_blocks_and_throughput()
    {
        using var engine = Load(parallel: 2);
        await using var server = await TestServer.StartAsync(engine);
        await Send(server, 2);

        using var health = JsonDocument.Parse(await server.Client.GetStringAsync("/health", Ct));
        JsonElement batching = health.RootElement.GetProperty("batching");
        Assert.Equal(2, batching.GetProperty("parallel").GetInt32());
        Assert.Equal(0, batching.GetProperty("running_sequences").GetInt32());
        Assert.Equal(0, batching.GetProperty("waiting_sequences").GetInt32());
        Assert.Equal(engine.KvCache.BlockCount, batching.GetProperty("kv_blocks_used").GetInt32() + batching.GetProperty("kv_blocks_free").GetInt32());
        Assert.True(batching.GetProperty("prompt_tokens_evaluated").GetInt64() > 0);

        var metrics = await server.Client.GetAsync("/metrics", Ct);
        Assert.Equal(HttpStatusCode.OK, metrics.StatusCode);
        Assert.StartsWith("text/plain", metrics.Content.Headers.ContentType!.ToString());
        string text = await metrics.Content.ReadAsStringAsync(Ct);
        var values = text.Split('\n', StringSplitOptions.RemoveEmptyEntries).Where(l => !l.StartsWith('#'))
            .Select(l => l.Split(' ')).ToDictionary(p => p[0], p => double.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(1, values["bitnet_model_ready"]);
        Assert.Equal(2, values["bitnet_parallel"]);
        Assert.Equal(0, values["bitnet_sequences_running"]);
        Assert.Equal(engine.KvCache.BlockCount, values["bitnet_kv_blocks_used"] + values["bitnet_kv_blocks_free"]);
        Assert.Equal(engine.CurrentLoad.GeneratedTokens, values["bitnet_generated_tokens_total"]);
        Assert.True(values["bitnet_tokens_per_second"] >= 0);
        Assert.Contains("# TYPE bitnet_generated_tokens_total counter", text);
    }

    [Fact]
    public async Task Requests_beyond_the_running_ones_and_the_queue_get_429_and_the_others_are_unaffected()
    {
        using var engine = Load(parallel: 2);
        await using var server = await TestServer.StartAsync(engine, new ApiOptions { QueueDepth = 1 });
        const string longPrompt = """{"prompt":"Write a long story about a dragon.","max_tokens":60,"temperature":0}""";
        var running = Enumerable.Range(0, 3).Select(_ => server.Client.PostAsync("/v1/completions", Sse.Json(longPrompt), Ct)).ToArray();
        await HttpApiTests.WaitUntil(() => server.Api.Queue.Running == 2 && server.Api.Queue.Waiting == 1);
        var refused = await server.Client.PostAsync("/v1/completions", Sse.Json(longPrompt), Ct);
        Assert.Equal((HttpStatusCode)429, refused.StatusCode);
        var answers = await Task.WhenAll(running);
        var texts = new List<string>();
        foreach (var answer in answers)
        {
            Assert.Equal(HttpStatusCode.OK, answer.StatusCode);
            texts.Add(Text(await answer.Content.ReadAsStringAsync(Ct), chat: false));
        }
        Assert.Single(texts.Distinct());   // the same greedy request gives the same text beside others
        Assert.Equal(0, engine.KvCache.UsedBlocks);
    }
}
