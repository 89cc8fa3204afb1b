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

    private const string HotelSystemPrompt = "You are the booking assistant of a small hotel by the sea. Guests ask about rooms, prices, breakfast, " +
        "parking and the way from the station. Answer in two sentences at most, and offer to book a room when it fits. " +
        "Rooms cost ninety euros a night, breakfast is served from seven to ten, and the car park behind the hotel is free for guests.";

    private static string ChoicesBody(bool chat, string extra) => chat
        ? $$"""{"messages":[{"role":"system","content":"{{HotelSystemPrompt}}"},{"role":"user","content":"Is breakfast included?"}],"max_tokens":8,"temperature":0.9{{extra}}}"""
        : $$"""{"prompt":"{{HotelSystemPrompt}} Guest: Is breakfast included? Assistant:","max_tokens":8,"temperature":0.9{{extra}}}""";

    /// <summary>Every choice's text by index, and the usage, of a response streamed or not.</summary>
    private static (string[] Texts, string[] Finishes, JsonElement Usage) Choices(string body, bool chat, int n)
    {
        var texts = new string[n];
        var finishes = new string[n];
        if (!body.StartsWith("data:", StringComparison.Ordinal))
        {
            using var json = JsonDocument.Parse(body);
            JsonElement[] choices = [.. json.RootElement.GetProperty("choices").EnumerateArray()];
            Assert.Equal(n, choices.Length);
            for (int i = 0; i < n; i++)
            {
                Assert.Equal(i, choices[i].GetProperty("index").GetInt32());
                texts[i] = chat ? choices[i].GetProperty("message").GetProperty("content").GetString()! : choices[i].GetProperty("text").GetString()!;
                finishes[i] = choices[i].GetProperty("finish_reason").GetString()!;
            }
            return (texts, finishes, json.RootElement.GetProperty("usage").Clone());
        }
        var (frames, done) = Sse.Parse(body);
        Assert.True(done);
        var parts = Enumerable.Range(0, n).Select(_ => new System.Text.StringBuilder()).ToArray();
        var roles = new int[n];
        JsonElement usage = default;
        foreach (JsonElement frame in frames)
        {
            if (frame.TryGetProperty("usage", out var u) && u.ValueKind == JsonValueKind.Object) usage = u.Clone();
            foreach (JsonElement choice in frame.GetProperty("choices").EnumerateArray())
            {
                int i = choice.GetProperty("index").GetInt32();
                Assert.Null(finishes[i]);   // nothing of a choice after its finish chunk
                if (chat)
                {
                    JsonElement delta = choice.GetProperty("delta");
                    if (delta.TryGetProperty("role", out _)) roles[i]++;
                    else Assert.Equal(1, roles[i]);   // a choice's role chunk comes first
                    if (delta.TryGetProperty("content", out var content) && content.ValueKind == JsonValueKind.String) parts[i].Append(content.GetString());
                }
                else parts[i].Append(choice.GetProperty("text").GetString());
                if (choice.GetProperty("finish_reason") is { ValueKind: JsonValueKind.String } finish) finishes[i] = finish.GetString()!;
            }
        }
        if (chat) Assert.All(roles, r => Assert.Equal(1, r));
        return ([.. parts.Select(p => p.ToString())], finishes, usage);
    }

    [Theory]
    [InlineData(4, true, false)]
    [InlineData(4, true, true)]
    [InlineData(4, false, true)]
    [InlineData(1, false, false)]
    public async Task Each_of_n_choices_equals_a_lone_request_seeded_with_the_seed_plus_its_index(int parallel, bool chat, bool stream)
    {
        const int n = 3, seed = 42;
        using var engine = Load(parallel);
        await using var server = await TestServer.StartAsync(engine);
        string path = chat ? "/v1/chat/completions" : "/v1/completions";
        string streaming = stream ? ""","stream":true,"stream_options":{"include_usage":true}""" : "";

        var solo = new string[n];
        var soloFinishes = new string[n];
        int promptTokens = 0, completionTokens = 0;
        for (int i = 0; i < n; i++)
        {
            var response = await server.Client.PostAsync(path, Sse.Json(ChoicesBody(chat, $$""","seed":{{seed + i}}""")), Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            var (texts, finishes, usage) = Choices(await response.Content.ReadAsStringAsync(Ct), chat, 1);
            (solo[i], soloFinishes[i]) = (texts[0], finishes[0]);
            promptTokens = usage.GetProperty("prompt_tokens").GetInt32();
            completionTokens += usage.GetProperty("completion_tokens").GetInt32();
        }
        Assert.True(solo.Distinct().Count() > 1, "different seeds should give different samples");

        long reused = engine.CurrentLoad.PromptTokensReused;
        var together = await server.Client.PostAsync(path, Sse.Json(ChoicesBody(chat, $$""","seed":{{seed}},"n":{{n}}{{streaming}}""")), Ct);
        Assert.Equal(HttpStatusCode.OK, together.StatusCode);
        var (choiceTexts, choiceFinishes, choiceUsage) = Choices(await together.Content.ReadAsStringAsync(Ct), chat, n);
        Assert.Equal(solo, choiceTexts);
        Assert.Equal(soloFinishes, choiceFinishes);
        Assert.Equal(promptTokens, choiceUsage.GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(completionTokens, choiceUsage.GetProperty("completion_tokens").GetInt32());
        // The lone requests registered the prompt's positions; each choice takes all but the last two (which
        // every prompt evaluates) from the cache.
        Assert.Equal(n * (promptTokens - 2), engine.CurrentLoad.PromptTokensReused - reused);
        Assert.Equal(0, engine.KvCache.UsedBlocks);
    }

    [Fact]
    public async Task N_choices_arriving_on_a_cold_cache_evaluate_their_prompt_once()
    {
        const int n = 4;
        using var engine = Load(parallel: 4);
        await using var server = await TestServer.StartAsync(engine);
        var response = await server.Client.PostAsync("/v1/chat/completions", Sse.Json(ChoicesBody(chat: true, $$""","n":{{n}}""")), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var (_, _, usage) = Choices(await response.Content.ReadAsStringAsync(Ct), chat: true, n);
        int prompt = usage.GetProperty("prompt_tokens").GetInt32();
        int shared = prompt - 2;   // the first choice evaluates the prompt; the others only its last two tokens
        Assert.Equal((n - 1) * shared, engine.CurrentLoad.PromptTokensReused);
        Assert.Equal(n * prompt - (n - 1) * shared, engine.CurrentLoad.PromptTokensEvaluated);
    }

    [Fact]
    public async Task Each_choice_lists_the_logprobs_of_its_own_tokens_with_offsets_into_its_own_text()
    {
        using var engine = Load(parallel: 2);
        await using var server = await TestServer.StartAsync(engine);
        var response = await server.Client.PostAsync("/v1/completions",
            Sse.Json("""{"prompt":"Once upon a time","max_tokens":8,"temperature":1,"seed":7,"n":2,"logprobs":1}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct));
        var choices = json.RootElement.GetProperty("choices").EnumerateArray().ToArray();
        Assert.NotEqual(choices[0].GetProperty("text").GetString(), choices[1].GetProperty("text").GetString());
        foreach (JsonElement choice in choices)
        {
            JsonElement logprobs = choice.GetProperty("logprobs");
            string[] tokens = [.. logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!)];
            int[] offsets = [.. logprobs.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32())];
            // Offsets count the text's characters before each token; a token holding whole characters is found
            // there in the choice's own text (one holding part of a character shows as U+FFFD in its list).
            string text = choice.GetProperty("text").GetString()!;
            Assert.NotEmpty(tokens);
            Assert.Equal(0, offsets[0]);
            for (int t = 0; t < tokens.Length; t++)
            {
                Assert.InRange(offsets[t], t == 0 ? 0 : offsets[t - 1], text.Length);
                if (!tokens[t].Contains('\uFFFD', StringComparison.Ordinal))
                    Assert.StartsWith(tokens[t], text[offsets[t]..], StringComparison.Ordinal);
            }
        }
    }

    [Fact]
    public async Task A_client_leaving_a_stream_of_several_choices_ends_all_of_them_and_frees_their_blocks()
    {
        using var engine = Load(parallel: 4);
        var observed = new ObservingGenerator(engine);
        await using var server = await TestServer.StartAsync(observed);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            // Long enough that the choices cannot all end before the client's departure is seen.
            Content = Sse.Json("""{"messages":[{"role":"user","content":"Write a very long essay."}],"max_tokens":460,"temperature":1,"n":3,"stream":true}"""),
        };
        // A client that closes the connection when it leaves (HttpClient's default drains up to 1 MB or 2 s of the rest).
        using var closing = new HttpClient(new SocketsHttpHandler { MaxResponseDrainSize = 0 }) { BaseAddress = new Uri(server.BaseUrl) };
        using (HttpResponseMessage response = await closing.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct))
        {
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            await Sse.ReadDataFramesAsync(response, 4, Ct);
        } // gone after the role chunks and a token

        await HttpApiTests.WaitUntil(() => !server.Api.Queue.Busy && engine.CurrentLoad.Running == 0);
        Assert.Equal(0, engine.KvCache.UsedBlocks);
        long generated = engine.CurrentLoad.GeneratedTokens;
        // Ended within a few dozen steps of the departure, far from the 3 × 460 tokens they would reach.
        Assert.True(generated < 3 * 100, $"the choices should have been cancelled; they generated {generated} tokens");
        var next = await server.Client.PostAsync("/v1/completions", Sse.Json("""{"prompt":"Hi","max_tokens":2,"n":2}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }
}
