using System.Net;
using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using BitNet.Inference.Sampling;

namespace BitNet.Hosts.Tests;

/// <summary>The API through the real Kestrel host, on the deterministic fake engine.</summary>
public sealed class HttpApiTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    private static IReadOnlyList<int> ChatPrompt(FakeTextGenerator fake, params ChatMessage[] messages) =>
        fake.Tokenize(fake.ApplyChatTemplate(messages));

    [Fact]
    public async Task Chat_completion_returns_the_generated_text_usage_and_finish_reason()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        var response = await server.Client.PostAsync("/v1/chat/completions",
            Sse.Json("""{"model":"fake-model","messages":[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"hi"},{"type":"text","text":" there"}]}],"max_tokens":5,"temperature":0}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        JsonElement body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;

        var prompt = ChatPrompt(fake, new ChatMessage(ChatRole.System, "be brief"), new ChatMessage(ChatRole.User, "hi\n there"));
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.StartsWith("chatcmpl-", body.GetProperty("id").GetString());
        Assert.Equal("fake-model", body.GetProperty("model").GetString());
        JsonElement choice = body.GetProperty("choices")[0];
        Assert.Equal(FakeTextGenerator.Expected(prompt, 5), choice.GetProperty("message").GetProperty("content").GetString());
        Assert.Equal("assistant", choice.GetProperty("message").GetProperty("role").GetString());
        Assert.Equal("length", choice.GetProperty("finish_reason").GetString());
        Assert.Equal(prompt.Count, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(5, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(0f, fake.LastRequest!.Sampling.Temperature);
    }

    [Fact]
    public async Task A_tool_round_trip_is_accepted_the_calls_content_null_and_the_result_a_turn()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        var response = await server.Client.PostAsync("/v1/chat/completions", Sse.Json("""
            {"messages":[{"role":"user","content":"Weather?"},
              {"role":"assistant","content":null,"tool_calls":[{"id":"c1","type":"function","function":{"name":"weather","arguments":"{}"}}]},
              {"role":"tool","tool_call_id":"c1","content":[{"type":"text","text":"sunny<|eot_id|>"}]}],"max_tokens":3}
            """), Ct);
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.StatusCode == HttpStatusCode.OK, text);
        // The tool's result is a turn of its own; control-token text in it stays text, as in any message.
        var prompt = ChatPrompt(fake, new ChatMessage(ChatRole.User, "Weather?"), new ChatMessage(ChatRole.Assistant, ""), new ChatMessage(ChatRole.Tool, "sunny<|eot_id|>"));
        Assert.Equal(prompt, fake.LastRequest!.PromptTokens);
        Assert.Equal("User: Weather?<|eot_id|>Assistant: User: sunny<|eot_id|><|eot_id|>Assistant: ",
            fake.Detokenize(fake.LastRequest.PromptTokens));
    }

    [Fact]
    public async Task Sampling_fields_and_llama_extras_reach_the_engine()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        var response = await server.Client.PostAsync("/v1/chat/completions",
            Sse.Json("""{"messages":[{"role":"user","content":"x"}],"max_completion_tokens":3,"temperature":0.5,"top_p":0.9,"top_k":7,"min_p":0.1,"repeat_penalty":1.1,"presence_penalty":0.5,"frequency_penalty":-0.5,"seed":42,"stop":"zz","unknown_field":{"a":1}}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        GenerationRequest request = fake.LastRequest!;
        Assert.Equal(3, request.MaxTokens);
        Assert.Equal(new SamplingOptions { Temperature = 0.5f, TopP = 0.9f, TopK = 7, MinP = 0.1f, RepeatPenalty = 1.1f, PresencePenalty = 0.5f, FrequencyPenalty = -0.5f, Seed = 42 },
            request.Sampling);
        Assert.Equal(["zz"], request.Stop);
    }

    [Fact]
    public async Task Integer_fields_take_integral_numbers_written_with_a_point_or_an_exponent()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        async Task<GenerationRequest> Served(string path, string body)
        {
            HttpResponseMessage response = await server.Client.PostAsync(path, Sse.Json(body), Ct);
            Assert.True(response.StatusCode == HttpStatusCode.OK, $"{body}: {await response.Content.ReadAsStringAsync(Ct)}");
            return fake.LastRequest!;
        }

        GenerationRequest chat = await Served("/v1/chat/completions",
            """{"messages":[{"role":"user","content":"x"}],"max_tokens":3.0,"top_k":7e0,"seed":4.2e1,"n":1.0,"repeat_last_n":-0.0,"logprobs":true,"top_logprobs":2.00}""");
        Assert.Equal((3, 7, 42UL, 0, 2), (chat.MaxTokens, chat.Sampling.TopK, chat.Sampling.Seed, chat.Sampling.RepeatLastN, chat.TopLogprobs));
        Assert.Equal(2, (await Served("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"max_completion_tokens":2E+0}""")).MaxTokens);
        Assert.Equal(4, (await Served("/v1/chat/completions", """{"messages":[{"role":"user","content":"x"}],"n_predict":0.4e1}""")).MaxTokens);

        GenerationRequest completion = await Served("/v1/completions", """{"prompt":[5.0,6e0,70e-1],"max_tokens":0.2e1,"logprobs":1.0,"best_of":1e0,"n":1.00}""");
        Assert.Equal([5, 6, 7], completion.PromptTokens);
        Assert.Equal((2, 1), (completion.MaxTokens, completion.TopLogprobs));

        GenerationRequest legacy = await Served("/completion", """{"prompt":"a","n_predict":2.0,"top_k":1E1,"repeat_last_n":6.4e1,"seed":1e18}""");
        Assert.Equal((2, 10, 64, 1_000_000_000_000_000_000UL), (legacy.MaxTokens, legacy.Sampling.TopK, legacy.Sampling.RepeatLastN, legacy.Sampling.Seed));
    }

    [Fact]
    public async Task Streaming_chat_sends_role_chunk_deltas_finish_chunk_usage_and_done()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        var response = await server.Client.PostAsync("/v1/chat/completions",
            Sse.Json("""{"messages":[{"role":"user","content":"hello"}],"max_tokens":4,"stream":true,"stream_options":{"include_usage":true}}"""), Ct);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var (frames, done) = Sse.Parse(await response.Content.ReadAsStringAsync(Ct));
        Assert.True(done);
        Assert.Equal("assistant", frames[0].GetProperty("choices")[0].GetProperty("delta").GetProperty("role").GetString());
        Assert.All(frames, f => Assert.Equal("chat.completion.chunk", f.GetProperty("object").GetString()));
        Assert.Single(frames.Select(f => f.GetProperty("id").GetString()).Distinct());
        var prompt = ChatPrompt(fake, new ChatMessage(ChatRole.User, "hello"));
        Assert.Equal(FakeTextGenerator.Expected(prompt, 4), Sse.ChatText(frames));
        JsonElement finish = frames[^2].GetProperty("choices")[0];
        Assert.Equal("length", finish.GetProperty("finish_reason").GetString());
        Assert.Equal(0, frames[^1].GetProperty("choices").GetArrayLength());
        Assert.Equal(4, frames[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"messages":[{"role":"user","content":"hello"}],"max_tokens":4,"stream":true,"logprobs":true}""")]
    [InlineData("/v1/completions", """{"prompt":"abc","max_tokens":4,"stream":true,"logprobs":1}""")]
    public async Task Streams_with_include_usage_send_usage_null_in_every_chunk_before_the_usage_chunk(string path, string request)
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        async Task<List<JsonElement>> Frames(string streamOptions)
        {
            string body = request[..^1] + streamOptions + "}";
            var (frames, done) = Sse.Parse(await (await server.Client.PostAsync(path, Sse.Json(body), Ct)).Content.ReadAsStringAsync(Ct));
            Assert.True(done);
            return frames;
        }

        List<JsonElement> frames = await Frames(""","stream_options":{"include_usage":true}""");
        Assert.True(frames.Count >= 4, $"{frames.Count} frames");
        Assert.All(frames[..^1], f => Assert.Equal(JsonValueKind.Null, f.GetProperty("usage").ValueKind));
        Assert.Equal(4, frames[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
        Assert.Equal(0, frames[^1].GetProperty("choices").GetArrayLength());

        foreach (string without in new[] { "", ""","stream_options":{"include_usage":false}""", ""","stream_options":{}""" })
        {
            List<JsonElement> plain = await Frames(without);
            Assert.All(plain, f => Assert.False(f.TryGetProperty("usage", out _), $"{without}: {f}"));
            Assert.All(plain, f => Assert.NotEqual(0, f.GetProperty("choices").GetArrayLength()));
        }
    }

    [Fact]
    public async Task Stop_string_ends_with_finish_reason_stop()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        IReadOnlyList<int> prompt = fake.Tokenize("abc");
        string second = FakeTextGenerator.Pieces(prompt).ElementAt(1).Trim();
        var response = await server.Client.PostAsync("/v1/completions",
            Sse.Json($$"""{"prompt":"abc","max_tokens":10,"stop":["{{second}}"]}"""), Ct);
        JsonElement choice = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("choices")[0];
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
    }

    [Fact]
    public async Task Completions_stream_and_echo()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        var response = await server.Client.PostAsync("/v1/completions", Sse.Json("""{"prompt":"abc","max_tokens":3,"stream":true,"echo":true}"""), Ct);
        var (frames, done) = Sse.Parse(await response.Content.ReadAsStringAsync(Ct));
        Assert.True(done);
        string text = string.Concat(frames.Select(f => f.GetProperty("choices")[0].GetProperty("text").GetString()));
        Assert.Equal("abc" + FakeTextGenerator.Expected(fake.Tokenize("abc"), 3), text);
        Assert.Equal("text_completion", frames[0].GetProperty("object").GetString());
        Assert.Equal("length", frames[^1].GetProperty("choices")[0].GetProperty("finish_reason").GetString());
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task Text_offsets_stay_on_the_text_after_characters_spread_over_several_tokens(bool stream)
    {
        // One UTF-8 byte a token: é takes 2, € 3, 😀 4 (two UTF-16 chars). A token's offset counts the characters
        // before it, so every byte of a character starts where the character does; the first two bytes of a € that
        // "y" does not finish are a U+FFFD before the "y".
        await using var server = await TestServer.StartAsync(new ByteTokens([.. "é€😀x"u8, 0xE2, 0x82, .. "y"u8]));
        string streaming = stream ? ""","stream":true""" : "";
        var response = await server.Client.PostAsync("/v1/completions", Sse.Json($$"""{"prompt":"abc","max_tokens":10,"logprobs":0{{streaming}}}"""), Ct);
        string body = await response.Content.ReadAsStringAsync(Ct);

        List<JsonElement> choices = stream
            ? [.. Sse.Parse(body).Frames.Select(f => f.GetProperty("choices")[0])]
            : [JsonDocument.Parse(body).RootElement.GetProperty("choices")[0]];
        Assert.Equal("é€😀x\uFFFDy", string.Concat(choices.Select(c => c.GetProperty("text").GetString())));
        int[] offsets = [.. choices.SelectMany(c => c.GetProperty("logprobs").GetProperty("text_offset").EnumerateArray()).Select(o => o.GetInt32())];
        Assert.Equal([0, 0, 1, 1, 1, 2, 2, 2, 2, 4, 5, 5, 6], offsets);
    }

    [Fact]
    public async Task Legacy_payload_as_json_and_as_base64_answers_content_counts_and_timings()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        const string payload = """{"prompt":"Once upon","n_predict":6,"temperature":0.7,"top_p":0.9,"top_k":20,"repeat_penalty":1.05}""";
        foreach (HttpContent content in new HttpContent[]
                 {
                     Sse.Json(payload),
                     new StringContent(Convert.ToBase64String(Encoding.UTF8.GetBytes(payload))),
                 })
        {
            var response = await server.Client.PostAsync("/completion", content, Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            JsonElement body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
            IReadOnlyList<int> prompt = fake.Tokenize("Once upon");
            Assert.Equal(FakeTextGenerator.Expected(prompt, 6), body.GetProperty("content").GetString());
            Assert.Equal(6, body.GetProperty("tokens_predicted").GetInt32());
            Assert.Equal(prompt.Count, body.GetProperty("tokens_evaluated").GetInt32());
            Assert.Equal("limit", body.GetProperty("stop_type").GetString());
            Assert.Equal(6, body.GetProperty("timings").GetProperty("predicted_n").GetInt32());
            Assert.True(body.GetProperty("timings").GetProperty("predicted_per_second").GetDouble() > 0);
            Assert.Equal(20, fake.LastRequest!.Sampling.TopK);
            Assert.Equal(1.05f, fake.LastRequest.Sampling.RepeatPenalty);
        }
    }

    [Fact]
    public async Task Legacy_prompt_may_be_token_ids_or_a_list_of_one_string_as_llama_cpp_takes_it()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        IReadOnlyList<int> tokens = fake.Tokenize("Once upon");
        foreach (string prompt in new[] { JsonSerializer.Serialize(tokens), """["Once upon"]""" })
        {
            var response = await server.Client.PostAsync("/completion", Sse.Json($$"""{"prompt":{{prompt}},"n_predict":3}"""), Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            JsonElement body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
            Assert.Equal(FakeTextGenerator.Expected(tokens, 3), body.GetProperty("content").GetString());
            Assert.Equal(tokens.Count, body.GetProperty("tokens_evaluated").GetInt32());
        }
    }

    [Fact]
    public async Task Completions_prompt_may_be_text_token_ids_or_a_list_of_one_of_either()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        IReadOnlyList<int> tokens = fake.Tokenize("Once upon");
        string ids = JsonSerializer.Serialize(tokens);
        foreach (string prompt in new[] { "\"Once upon\"", """["Once upon"]""", ids, $"[{ids}]" })
        {
            var response = await server.Client.PostAsync("/v1/completions", Sse.Json($$"""{"prompt":{{prompt}},"max_tokens":3}"""), Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            JsonElement body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
            Assert.Equal(FakeTextGenerator.Expected(tokens, 3), body.GetProperty("choices")[0].GetProperty("text").GetString());
            Assert.Equal(tokens.Count, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        }
    }

    [Fact]
    public async Task Legacy_payload_streams_llama_cpp_style_pieces_then_the_full_answer()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        var response = await server.Client.PostAsync("/completion", Sse.Json("""{"prompt":"Once","n_predict":3,"stream":true}"""), Ct);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var (frames, done) = Sse.Parse(await response.Content.ReadAsStringAsync(Ct));
        Assert.False(done); // llama.cpp's /completion stream has no [DONE]
        Assert.All(frames[..^1], f => Assert.False(f.GetProperty("stop").GetBoolean()));
        Assert.Equal(FakeTextGenerator.Expected(fake.Tokenize("Once"), 3), string.Concat(frames[..^1].Select(f => f.GetProperty("content").GetString())));
        Assert.True(frames[^1].GetProperty("stop").GetBoolean());
        Assert.Equal(3, frames[^1].GetProperty("tokens_predicted").GetInt32());
        Assert.Equal("limit", frames[^1].GetProperty("stop_type").GetString());
    }

    [Fact]
    public async Task Models_lists_the_one_loaded_model()
    {
        await using var server = await TestServer.StartAsync(new FakeTextGenerator());
        JsonElement body = JsonDocument.Parse(await server.Client.GetStringAsync("/v1/models", Ct)).RootElement;
        Assert.Equal("list", body.GetProperty("object").GetString());
        Assert.Equal("fake-model", body.GetProperty("data")[0].GetProperty("id").GetString());
        Assert.Equal("model", body.GetProperty("data")[0].GetProperty("object").GetString());
        Assert.Equal(HttpStatusCode.OK, (await server.Client.GetAsync("/v1/models/fake-model", Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.NotFound, (await server.Client.GetAsync("/v1/models/other", Ct)).StatusCode);
    }

    [Fact]
    public async Task Head_on_the_model_routes_answers_as_get_does_without_a_body()
    {
        await using var server = await TestServer.StartAsync(new FakeTextGenerator());
        foreach (var (path, status) in new[] { ("/v1/models", HttpStatusCode.OK), ("/v1/models/fake-model", HttpStatusCode.OK), ("/v1/models/other", HttpStatusCode.NotFound) })
        {
            using HttpResponseMessage head = await server.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, path), Ct);
            Assert.Equal(status, head.StatusCode);
            Assert.Equal("application/json", head.Content.Headers.ContentType?.MediaType);
            Assert.Empty(await head.Content.ReadAsByteArrayAsync(Ct));
        }
    }

    [Fact]
    public async Task Health_is_503_with_retry_after_while_loading_then_200_and_503_naming_a_load_failure()
    {
        var provider = new GeneratorProvider();
        await using var server = await TestServer.StartAsync(provider);
        var loading = await server.Client.GetAsync("/health", Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, loading.StatusCode);
        Assert.NotNull(loading.Headers.RetryAfter);
        Assert.Contains("Loading model", await loading.Content.ReadAsStringAsync(Ct));
        var chat = await server.Client.PostAsync("/v1/chat/completions", Sse.Json("""{"messages":[{"role":"user","content":"x"}]}"""), Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, chat.StatusCode);
        Assert.NotNull(chat.Headers.RetryAfter);

        provider.SetReady(new FakeTextGenerator(), TimeSpan.FromSeconds(1));
        var ready = await server.Client.GetAsync("/health", Ct);
        Assert.Equal(HttpStatusCode.OK, ready.StatusCode);
        JsonElement readyBody = JsonDocument.Parse(await ready.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.Equal("ok", readyBody.GetProperty("status").GetString());
        if (OperatingSystem.IsLinux())
            Assert.True(readyBody.GetProperty("peak_resident_bytes").GetInt64() >= readyBody.GetProperty("resident_bytes").GetInt64());

        var failedProvider = new GeneratorProvider();
        failedProvider.Load(() => throw new FileNotFoundException("no such model: /x.gguf"));
        await using var failed = await TestServer.StartAsync(failedProvider);
        var health = await failed.Client.GetAsync("/health", Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        Assert.Contains("no such model: /x.gguf", await health.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task Full_queue_answers_429_with_retry_after_and_the_queue_is_first_in_first_out()
    {
        var fake = new FakeTextGenerator { TokenDelay = TimeSpan.FromMilliseconds(30) };
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { QueueDepth = 2 });
        Task<HttpResponseMessage> Send(string prompt) =>
            server.Client.PostAsync("/v1/completions", Sse.Json($$"""{"prompt":"{{prompt}}","max_tokens":5}"""), Ct);

        Task<HttpResponseMessage> running = Send("a");
        await WaitUntil(() => server.Api.Queue.Busy);
        Task<HttpResponseMessage> first = Send("b");
        await WaitUntil(() => server.Api.Queue.Waiting == 1);
        Task<HttpResponseMessage> second = Send("c");
        await WaitUntil(() => server.Api.Queue.Waiting == 2);
        HttpResponseMessage rejected = await Send("d");

        Assert.Equal((HttpStatusCode)429, rejected.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(1), rejected.Headers.RetryAfter!.Delta);
        Assert.Equal("queue_full", JsonDocument.Parse(await rejected.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetProperty("code").GetString());
        HttpResponseMessage[] done = await Task.WhenAll(running, first, second);
        Assert.All(done, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.Equal(1, fake.MaxConcurrent);
        // FIFO: "b" (sent first) finished before "c" started: their texts are theirs, and the last generation was "c".
        Assert.Equal(fake.Tokenize("c"), fake.LastRequest!.PromptTokens);
    }

    [Fact]
    public async Task Api_key_is_required_when_configured_except_for_health()
    {
        await using var server = await TestServer.StartAsync(new FakeTextGenerator(), new ApiOptions { ApiKey = "s3cret" });
        Assert.Equal(HttpStatusCode.Unauthorized, (await server.Client.GetAsync("/v1/models", Ct)).StatusCode);
        var wrong = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Authorization", "Bearer nope" } } };
        var wrongResponse = await server.Client.SendAsync(wrong, Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, wrongResponse.StatusCode);
        Assert.Equal("invalid_api_key", JsonDocument.Parse(await wrongResponse.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetProperty("code").GetString());
        var right = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Authorization", "Bearer s3cret" } } };
        Assert.Equal(HttpStatusCode.OK, (await server.Client.SendAsync(right, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await server.Client.GetAsync("/health", Ct)).StatusCode);
    }

    [Fact]
    public async Task Cors_preflight_and_responses_carry_the_allowed_origin()
    {
        await using var server = await TestServer.StartAsync(new FakeTextGenerator(), new ApiOptions { CorsOrigins = ["https://app.example"] });
        var preflight = new HttpRequestMessage(HttpMethod.Options, "/v1/chat/completions")
        {
            Headers = { { "Origin", "https://app.example" }, { "Access-Control-Request-Method", "POST" }, { "Access-Control-Request-Headers", "authorization,content-type" } },
        };
        var response = await server.Client.SendAsync(preflight, Ct);
        Assert.Equal(HttpStatusCode.NoContent, response.StatusCode);
        Assert.Equal("https://app.example", response.Headers.GetValues("Access-Control-Allow-Origin").Single());

        var other = new HttpRequestMessage(HttpMethod.Get, "/health") { Headers = { { "Origin", "https://evil.example" } } };
        Assert.False((await server.Client.SendAsync(other, Ct)).Headers.Contains("Access-Control-Allow-Origin"));
    }

    [Fact]
    public async Task Bodies_over_the_size_limit_get_413()
    {
        await using var server = await TestServer.StartAsync(new FakeTextGenerator(), new ApiOptions { MaxRequestBytes = 2048 });
        string big = new('x', 4096);
        var response = await server.Client.PostAsync("/v1/completions", Sse.Json($$"""{"prompt":"{{big}}"}"""), Ct);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        Assert.Contains("\"error\"", await response.Content.ReadAsStringAsync(Ct));
    }

    [Fact]
    public async Task Keep_warm_answers_without_generating_and_touches_weights_on_the_first_ping_only()
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        for (int i = 0; i < 3; i++)
        {
            var response = await server.Client.PostAsync("/keep-warm", Sse.Json("{}"), Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            JsonElement body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
            Assert.Equal(i == 0 ? 4096 : 0, body.GetProperty("touched_bytes").GetInt64());
        }
        var legacyPing = await server.Client.PostAsync("/", Sse.Json("""{"keep_warm": true}"""), Ct);
        Assert.Equal("warm", JsonDocument.Parse(await legacyPing.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("status").GetString());
        Assert.Equal(1, fake.TouchCount);
        Assert.Equal(0, fake.Generations);
    }

    [Fact]
    public async Task A_disconnected_streaming_client_stops_its_generation_within_one_token()
    {
        var fake = new FakeTextGenerator(contextLength: 100_000) { TokenDelay = TimeSpan.FromMilliseconds(20) };
        await using var server = await TestServer.StartAsync(fake);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Content = Sse.Json("""{"messages":[{"role":"user","content":"go on forever"}],"max_tokens":50000,"stream":true}"""),
        };
        using (var response = await server.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct))
        {
            await Sse.ReadDataFramesAsync(response, 4, Ct);
        } // disposing the response closes the connection

        await fake.CancellationObserved.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.InRange(fake.TokensAfterCancel, 0, 1);
        await WaitUntil(() => !server.Api.Queue.Busy);
        // The model is free again: the next request runs at once.
        var next = await server.Client.PostAsync("/v1/completions", Sse.Json("""{"prompt":"x","max_tokens":1}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, next.StatusCode);
    }

    [Fact]
    public async Task A_stream_its_host_abandons_cancels_the_generation_and_frees_the_model()
    {
        var fake = new FakeTextGenerator(contextLength: 100_000) { TokenDelay = TimeSpan.FromMilliseconds(10) };
        var api = new InferenceApi(GeneratorProvider.Ready(fake), new ApiOptions());
        ApiResponse response = await api.HandleAsync(new ApiRequest("POST", "/v1/completions",
            Encoding.UTF8.GetBytes("""{"prompt":"x","max_tokens":50000,"stream":true}""")), Ct);
        Assert.True(response.IsStreaming);
        Assert.True(api.Queue.Busy);
        await response.DisposeAsync();
        await fake.CancellationObserved.Task.WaitAsync(TimeSpan.FromSeconds(5), Ct);
        Assert.InRange(fake.TokensAfterCancel, 0, 1);
        Assert.False(api.Queue.Busy);
    }

    [Fact]
    public async Task Request_deadline_cuts_generation_with_finish_reason_length()
    {
        var fake = new FakeTextGenerator(contextLength: 100_000) { TokenDelay = TimeSpan.FromMilliseconds(20) };
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { RequestTimeout = TimeSpan.FromMilliseconds(400) });
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var response = await server.Client.PostAsync("/v1/completions", Sse.Json("""{"prompt":"x","max_tokens":10000}"""), Ct);
        JsonElement body = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
        Assert.Equal("length", body.GetProperty("choices")[0].GetProperty("finish_reason").GetString());
        Assert.InRange(body.GetProperty("usage").GetProperty("completion_tokens").GetInt32(), 1, 40);
        Assert.True(clock.Elapsed < TimeSpan.FromSeconds(5));
    }

    [Fact]
    public async Task An_engine_fault_is_a_500_in_the_error_shape_and_mid_stream_an_error_frame()
    {
        var fake = new FakeTextGenerator { FailAtStart = true };
        await using var server = await TestServer.StartAsync(fake);
        var response = await server.Client.PostAsync("/v1/completions", Sse.Json("""{"prompt":"x","max_tokens":3}"""), Ct);
        Assert.Equal(HttpStatusCode.InternalServerError, response.StatusCode);
        Assert.Equal("server_error", JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetProperty("type").GetString());

        fake.FailAtStart = false;
        fake.FailAfterTokens = 2;
        var stream = await server.Client.PostAsync("/v1/completions", Sse.Json("""{"prompt":"x","max_tokens":5,"stream":true}"""), Ct);
        var (frames, done) = Sse.Parse(await stream.Content.ReadAsStringAsync(Ct));
        Assert.False(done);
        Assert.Equal("server_error", frames[^1].GetProperty("error").GetProperty("type").GetString());
    }

    internal static async Task WaitUntil(Func<bool> condition)
    {
        var clock = System.Diagnostics.Stopwatch.StartNew();
        while (!condition())
        {
            Assert.True(clock.Elapsed < TimeSpan.FromSeconds(10), "condition not reached in 10 s");
            await Task.Delay(5, Ct);
        }
    }

    [Theory]
    [InlineData("PUT", "/v1/chat/completions", "POST")]
    [InlineData("GET", "/v1/completions", "POST")]
    [InlineData("GET", "/completion", "POST")]
    [InlineData("DELETE", "/v1/models", "GET, HEAD")]
    [InlineData("POST", "/health", "GET, HEAD")]
    [InlineData("POST", "/metrics", "GET, HEAD")]
    public async Task A_method_the_path_does_not_take_is_a_405_naming_the_methods_it_does(string method, string path, string allowed)
    {
        await using var server = await TestServer.StartAsync(new FakeTextGenerator());
        var response = await server.Client.SendAsync(new HttpRequestMessage(new HttpMethod(method), path), Ct);

        Assert.Equal(HttpStatusCode.MethodNotAllowed, response.StatusCode);
        Assert.Equal(allowed, string.Join(", ", response.Content.Headers.Allow));
        Assert.Equal("method_not_allowed", JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("error").GetProperty("code").GetString());
    }

    [Theory]
    [InlineData("/v1/completions", """{"prompt":"hi","max_tokens":3}""")]
    [InlineData("/completion", """{"prompt":"hi","n_predict":3}""")]
    public async Task A_json_body_after_a_utf8_byte_order_mark_is_read_as_without_it(string path, string json)
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake);
        byte[] body = [0xEF, 0xBB, 0xBF, .. Encoding.UTF8.GetBytes(json)];
        var content = new ByteArrayContent(body) { Headers = { ContentType = new("application/json") } };

        var response = await server.Client.PostAsync(path, content, Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal(fake.Tokenize("hi"), fake.LastRequest!.PromptTokens);
    }

    /// <summary>Generates its bytes one a token (the token id is the byte); each update carries its token's logprob and
    /// the characters the token completes, as the engine's detokenizer sends them.</summary>
    private sealed class ByteTokens(byte[] bytes) : ITextGenerator
    {
        private readonly FakeTextGenerator _fake = new();

        public ModelInfo Model => _fake.Model;
        public IReadOnlyList<int> Tokenize(string text, bool addBos = true, bool parseSpecial = true) => _fake.Tokenize(text, addBos, parseSpecial);
        public string Detokenize(IReadOnlyList<int> tokens, bool renderSpecial = false) => _fake.Detokenize(tokens, renderSpecial);
        public byte[] TokenBytes(int token) => [(byte)token];
        public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages) => _fake.ApplyChatTemplate(messages);
        public long TouchWeights() => 0;

        public async IAsyncEnumerable<GenerationUpdate> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            await Task.Yield();
            Decoder decoder = Encoding.UTF8.GetDecoder();
            var chars = new char[2];
            foreach (byte token in bytes)
            {
                int count = decoder.GetChars([token], 0, 1, chars, 0, flush: false);
                yield return new GenerationUpdate(new string(chars, 0, count), token, null, [new TokenLogprobs(new TokenLogprob(token, -1f), [])]);
            }
            yield return new GenerationUpdate("", -1,
                new GenerationStats(request.PromptTokens.Count, bytes.Length, FinishReason.Stop, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero));
        }
    }
}
