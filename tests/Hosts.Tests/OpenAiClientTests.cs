using System.ClientModel;
using System.ClientModel.Primitives;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using BitNet.Tests.Shared;
using OpenAI;
using OpenAI.Chat;
using OpenAI.Models;
using EngineChatMessage = BitNet.Inference.Generation.ChatMessage;
using EngineChatRole = BitNet.Inference.Generation.ChatRole;

namespace BitNet.Hosts.Tests;

/// <summary>The real Kestrel host serving the real engine on the small oracle model, driven by the official OpenAI .NET client.</summary>
public sealed class OracleServer : IAsyncLifetime
{
    internal TestServer Server { get; private set; } = null!;
    internal static string ModelId => RealEngine.Instance.Model.Id;

    public async ValueTask InitializeAsync() => Server = await TestServer.StartAsync(RealEngine.Instance, new ApiOptions { QueueDepth = 32 });
    public ValueTask DisposeAsync() => Server.DisposeAsync();

    internal OpenAIClientOptions ClientOptions => new() { Endpoint = new Uri(Server.BaseUrl + "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) };
    internal ChatClient Chat() => new(ModelId, new ApiKeyCredential("not-needed"), ClientOptions);

    /// <summary>POST a /v1/completions body through the OpenAI client's pipeline (auth, retries, errors):
    /// the 2.x client has no public completions client. Returns the status and the parsed body.</summary>
    internal async Task<(int Status, JsonElement Body)> CompletionsAsync(string json)
    {
        ClientPipeline pipeline = new OpenAIClient(new ApiKeyCredential("not-needed"), ClientOptions).Pipeline;
        using PipelineMessage message = pipeline.CreateMessage();
        message.Request.Method = "POST";
        message.Request.Uri = new Uri(Server.BaseUrl + "/v1/completions");
        message.Request.Headers.Set("Content-Type", "application/json");
        message.Request.Content = BinaryContent.Create(BinaryData.FromString(json));
        await pipeline.SendAsync(message);
        return (message.Response!.Status, JsonDocument.Parse(message.Response.Content.ToString()).RootElement.Clone());
    }
}

public sealed class OpenAiClientTests(OracleServer fixture) : IClassFixture<OracleServer>
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;
    private const string System = "You are a helpful assistant.";
    private const string Question = "What is 1.58-bit quantization?";

    [Fact]
    public async Task Greedy_chat_through_the_openai_client_equals_the_engines_own_greedy_output()
    {
        ChatCompletion completion = await fixture.Chat().CompleteChatAsync(
            [new SystemChatMessage(System), new UserChatMessage(Question)],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 8 }, Ct);

        string expected = await RealEngine.GreedyChatAsync(
            [new EngineChatMessage(EngineChatRole.System, System), new EngineChatMessage(EngineChatRole.User, Question)], 8);
        Assert.Equal(expected, completion.Content[0].Text);
        Assert.Equal(ChatFinishReason.Length, completion.FinishReason);
        Assert.Equal(8, completion.Usage.OutputTokenCount);
        // The API builds bitnet.cpp's prompt: the oracle's 24 chat prompt ids (BOS, template, <|eot_id|> as one token).
        int oraclePromptIds = JsonDocument.Parse(File.ReadAllText(SharedData.OracleFile("bitnet-small-i2_s.chat.bitnetcpp.t1.tokens.json")))
            .RootElement.GetProperty("prompt_ids").GetArrayLength();
        Assert.Equal(oraclePromptIds, completion.Usage.InputTokenCount);
        Assert.Equal(OracleServer.ModelId, completion.Model);
    }

    [Fact]
    public async Task The_openai_client_works_unchanged_with_model_bitnet_and_gets_the_real_id_back()
    {
        var chat = new ChatClient("bitnet", new ApiKeyCredential("not-needed"), fixture.ClientOptions);
        ChatCompletion completion = await chat.CompleteChatAsync([new UserChatMessage(Question)],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 3 }, Ct);
        Assert.Equal(OracleServer.ModelId, completion.Model);
        Assert.Equal(await RealEngine.GreedyChatAsync([new EngineChatMessage(EngineChatRole.User, Question)], 3), completion.Content[0].Text);

        var streamed = new StringBuilder();
        await foreach (StreamingChatCompletionUpdate update in chat.CompleteChatStreamingAsync([new UserChatMessage(Question)],
                           new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 3 }, Ct))
        {
            Assert.Equal(OracleServer.ModelId, update.Model);
            foreach (ChatMessageContentPart part in update.ContentUpdate)
                streamed.Append(part.Text);
        }
        Assert.Equal(completion.Content[0].Text, streamed.ToString());
    }

    [Fact]
    public async Task A_conversation_with_a_tool_call_and_its_result_from_the_openai_client_is_answered()
    {
        // The client writes the assistant's call with "content": null and the result as a "tool" message.
        ChatToolCall call = ChatToolCall.CreateFunctionToolCall("call_1", "get_weather", BinaryData.FromString("""{"city":"Paris"}"""));
        ChatCompletion completion = await fixture.Chat().CompleteChatAsync(
            [new UserChatMessage("Weather in Paris?"), new AssistantChatMessage([call]), new ToolChatMessage("call_1", "sunny, 21 C")],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 4 }, Ct);

        string expected = await RealEngine.GreedyChatAsync([new EngineChatMessage(EngineChatRole.User, "Weather in Paris?"),
            new EngineChatMessage(EngineChatRole.Assistant, ""), new EngineChatMessage(EngineChatRole.Tool, "sunny, 21 C")], 4);
        Assert.Equal(expected, completion.Content[0].Text);
    }

    [Fact]
    public async Task Logit_bias_from_the_openai_client_bans_and_forces_tokens()
    {
        var question = new EngineChatMessage(EngineChatRole.User, Question);
        IReadOnlyList<int> prompt = RealEngine.Instance.Tokenize(RealEngine.Instance.ApplyChatTemplate([question]), addBos: true, parseSpecial: true);
        async Task<(int First, string Text)> EngineGreedy(Dictionary<int, float>? bias)
        {
            var text = new StringBuilder();
            int first = -1;
            await foreach (var update in RealEngine.Instance.GenerateAsync(new BitNet.Inference.Generation.GenerationRequest
            {
                PromptTokens = prompt, MaxTokens = 3, Sampling = BitNet.Inference.Generation.SamplingOptions.Greedy with { LogitBias = bias },
            }, Ct))
            {
                if (first < 0) first = update.TokenId;
                text.Append(update.Text);
            }
            return (first, text.ToString());
        }

        var (greedyFirst, greedyText) = await EngineGreedy(null);
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 3 };
        options.LogitBiases[greedyFirst] = -100;   // bans the greedy first token
        options.LogitBiases[791] = 5;
        ChatCompletion biased = await fixture.Chat().CompleteChatAsync([new UserChatMessage(Question)], options, Ct);

        var (biasedFirst, biasedText) = await EngineGreedy(new Dictionary<int, float> { [greedyFirst] = -100, [791] = 5 });
        Assert.NotEqual(greedyFirst, biasedFirst);
        Assert.NotEqual(greedyText, biasedText);
        Assert.Equal(biasedText, biased.Content[0].Text);

        options.LogitBiases.Clear();
        options.LogitBiases[791] = 100;   // forces a token at every step
        ChatCompletion forced = await fixture.Chat().CompleteChatAsync([new UserChatMessage(Question)], options, Ct);
        Assert.Equal(string.Concat(Enumerable.Repeat(RealEngine.Instance.Detokenize([791]), 3)), forced.Content[0].Text);
    }

    [Fact]
    public async Task In_strict_mode_the_openai_client_gets_404_model_not_found_for_another_model()
    {
        await using var strict = await TestServer.StartAsync(new FakeTextGenerator(), new ApiOptions { StrictModel = true });
        var chat = new ChatClient("gpt-4o-mini", new ApiKeyCredential("not-needed"),
            new OpenAIClientOptions { Endpoint = new Uri(strict.BaseUrl + "/v1"), NetworkTimeout = TimeSpan.FromSeconds(30), RetryPolicy = new ClientRetryPolicy(0) });
        var error = await Assert.ThrowsAsync<ClientResultException>(() => chat.CompleteChatAsync([new UserChatMessage("hi")], cancellationToken: Ct));
        Assert.Equal(404, error.Status);
        Assert.Contains("model_not_found", error.Message);
    }

    [Fact]
    public async Task Greedy_streaming_chat_through_the_openai_client_equals_the_engines_own_greedy_output()
    {
        var text = new StringBuilder();
        ChatFinishReason? finish = null;
        int? outputTokens = null;
        await foreach (StreamingChatCompletionUpdate update in fixture.Chat().CompleteChatStreamingAsync(
                           [new UserChatMessage("Tell me a story about a lighthouse.")],
                           new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6 }, Ct))
        {
            foreach (ChatMessageContentPart part in update.ContentUpdate)
                text.Append(part.Text);
            finish ??= update.FinishReason;
            outputTokens ??= update.Usage?.OutputTokenCount;
        }

        string expected = await RealEngine.GreedyChatAsync([new EngineChatMessage(EngineChatRole.User, "Tell me a story about a lighthouse.")], 6);
        Assert.Equal(expected, text.ToString());
        Assert.Equal(ChatFinishReason.Length, finish);
        Assert.Equal(6, outputTokens); // the client asks for include_usage
    }

    [Fact]
    public async Task Completions_through_the_openai_client_pipeline_equal_the_engines_greedy_output()
    {
        var (status, body) = await fixture.CompletionsAsync(
            $$"""{"model":"{{OracleServer.ModelId}}","prompt":"The capital of France is","max_tokens":7,"temperature":0}""");

        Assert.Equal(200, status);
        Assert.Equal(await RealEngine.GreedyCompletionAsync("The capital of France is", 7), body.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(6, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32()); // the oracle's 6 prompt ids
    }

    [Fact]
    public async Task Chat_logprobs_through_the_openai_client_cover_every_output_token_with_its_alternatives()
    {
        ChatCompletion completion = await fixture.Chat().CompleteChatAsync(
            [new UserChatMessage(Question)],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 6, IncludeLogProbabilities = true, TopLogProbabilityCount = 3 }, Ct);

        IReadOnlyList<ChatTokenLogProbabilityDetails> tokens = completion.ContentTokenLogProbabilities;
        Assert.Equal(6, tokens.Count);
        // The tokens' bytes spell the answer exactly.
        byte[] spelled = tokens.SelectMany(t => t.Utf8Bytes!.Value.ToArray()).ToArray();
        Assert.Equal(Encoding.UTF8.GetBytes(completion.Content[0].Text), spelled);
        foreach (ChatTokenLogProbabilityDetails token in tokens)
        {
            Assert.Equal(3, token.TopLogProbabilities.Count);
            Assert.True(token.LogProbability <= 0);
            // Greedy: the chosen token is the most likely one; the alternatives come best first.
            Assert.Equal(token.TopLogProbabilities[0].Token, token.Token);
            Assert.Equal(token.TopLogProbabilities[0].LogProbability, token.LogProbability);
            Assert.True(token.TopLogProbabilities[0].LogProbability >= token.TopLogProbabilities[1].LogProbability);
            Assert.True(token.TopLogProbabilities[1].LogProbability >= token.TopLogProbabilities[2].LogProbability);
        }
    }

    [Fact]
    public async Task Streamed_chat_logprobs_through_the_openai_client_equal_the_whole_answers()
    {
        var options = new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = 5, IncludeLogProbabilities = true, TopLogProbabilityCount = 2 };
        ChatCompletion whole = await fixture.Chat().CompleteChatAsync([new UserChatMessage("Name a colour.")], options, Ct);
        var streamed = new List<ChatTokenLogProbabilityDetails>();
        await foreach (StreamingChatCompletionUpdate update in fixture.Chat().CompleteChatStreamingAsync([new UserChatMessage("Name a colour.")], options, Ct))
            streamed.AddRange(update.ContentTokenLogProbabilities);

        Assert.Equal(whole.ContentTokenLogProbabilities.Select(t => (t.Token, t.LogProbability)), streamed.Select(t => (t.Token, t.LogProbability)));
        Assert.Equal(5, streamed.Count);
        Assert.All(streamed, t => Assert.Equal(2, t.TopLogProbabilities.Count));
    }

    [Fact]
    public async Task Completion_logprobs_list_tokens_that_spell_the_text_with_their_offsets()
    {
        var (status, body) = await fixture.CompletionsAsync(
            $$"""{"model":"{{OracleServer.ModelId}}","prompt":"The capital of France is","max_tokens":5,"temperature":0,"logprobs":2}""");

        Assert.Equal(200, status);
        JsonElement choice = body.GetProperty("choices")[0];
        string text = choice.GetProperty("text").GetString()!;
        JsonElement logprobs = choice.GetProperty("logprobs");
        string[] tokens = logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToArray();
        int[] offsets = logprobs.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()).ToArray();
        Assert.Equal(5, tokens.Length);
        Assert.Equal(text, string.Concat(tokens));
        for (int i = 0; i < tokens.Length; i++)
            Assert.Equal(tokens[i], text.Substring(offsets[i], tokens[i].Length));
        Assert.All(logprobs.GetProperty("top_logprobs").EnumerateArray(), top => Assert.Equal(2, top.EnumerateObject().Count()));
        Assert.Equal(5, logprobs.GetProperty("token_logprobs").GetArrayLength());
    }

    [Fact]
    public async Task Completion_logprobs_end_with_the_text_a_stop_string_cuts()
    {
        const string prompt = "The capital of France is";
        var (_, whole) = await fixture.CompletionsAsync(
            $$"""{"model":"{{OracleServer.ModelId}}","prompt":"{{prompt}}","max_tokens":8,"temperature":0,"logprobs":1}""");
        string text = whole.GetProperty("choices")[0].GetProperty("text").GetString()!;
        int[] offsets = whole.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()).ToArray();
        string[] tokens = whole.GetProperty("choices")[0].GetProperty("logprobs").GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!).ToArray();
        // A stop string from inside the fourth token's text into the sixth's: the fifth and sixth tokens are
        // generated before it completes, then cut off with it.
        Assert.True(tokens.Length == 8 && tokens[3].Length >= 2 && tokens[5].Length >= 1, $"the oracle model's answer changed: {JsonSerializer.Serialize(tokens)}");
        string stop = text[(offsets[3] + 1)..(offsets[5] + 1)];
        int cut = text.IndexOf(stop, StringComparison.Ordinal);
        string[] kept = tokens.Where((_, i) => offsets[i] < cut).ToArray();

        string request = $$"""{"model":"{{OracleServer.ModelId}}","prompt":"{{prompt}}","max_tokens":8,"temperature":0,"logprobs":1,"stop":{{JsonSerializer.Serialize(stop)}}""";
        var (status, stopped) = await fixture.CompletionsAsync(request + "}");
        Assert.Equal(200, status);
        JsonElement choice = stopped.GetProperty("choices")[0];
        Assert.Equal(text[..cut], choice.GetProperty("text").GetString());
        Assert.Equal("stop", choice.GetProperty("finish_reason").GetString());
        JsonElement logprobs = choice.GetProperty("logprobs");
        Assert.Equal(kept, logprobs.GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!));
        Assert.Equal(offsets[..kept.Length], logprobs.GetProperty("text_offset").EnumerateArray().Select(o => o.GetInt32()));
        Assert.Equal(kept.Length, logprobs.GetProperty("token_logprobs").GetArrayLength());

        // Streamed: the same tokens, each once, over the chunks.
        var response = await fixture.Server.Client.PostAsync("/v1/completions", Sse.Json(request + ""","stream":true}"""), Ct);
        var (frames, done) = Sse.Parse(await response.Content.ReadAsStringAsync(Ct));
        Assert.True(done);
        string[] streamed = frames.SelectMany(f => f.GetProperty("choices").EnumerateArray())
            .Where(c => c.TryGetProperty("logprobs", out JsonElement l) && l.ValueKind == JsonValueKind.Object)
            .SelectMany(c => c.GetProperty("logprobs").GetProperty("tokens").EnumerateArray().Select(t => t.GetString()!)).ToArray();
        Assert.Equal(kept, streamed);
    }

    [Fact]
    public async Task Logprob_requests_the_server_cannot_answer_are_4xx_naming_the_field()
    {
        var tooMany = await Assert.ThrowsAsync<ClientResultException>(() => fixture.Chat().CompleteChatAsync(
            [new UserChatMessage("hi")], new ChatCompletionOptions { IncludeLogProbabilities = true, TopLogProbabilityCount = 21 }, Ct));
        Assert.Equal(400, tooMany.Status);
        Assert.Contains("top_logprobs must be between 0 and 20", tooMany.Message);

        var withoutLogprobs = await Assert.ThrowsAsync<ClientResultException>(() => fixture.Chat().CompleteChatAsync(
            [new UserChatMessage("hi")], new ChatCompletionOptions { TopLogProbabilityCount = 2 }, Ct));
        Assert.Equal(400, withoutLogprobs.Status);
        Assert.Contains("top_logprobs needs", withoutLogprobs.Message);
    }

    [Fact]
    public async Task Models_through_the_openai_client_list_the_served_model()
    {
        var models = new OpenAIModelClient(new ApiKeyCredential("not-needed"), fixture.ClientOptions);
        OpenAIModelCollection list = await models.GetModelsAsync(Ct);
        OpenAIModel model = Assert.Single(list);
        Assert.Equal(OracleServer.ModelId, model.Id);
        Assert.Equal("bitnet", model.OwnedBy);
        Assert.Equal(OracleServer.ModelId, (await models.GetModelAsync(OracleServer.ModelId, Ct)).Value.Id);
    }

    [Fact]
    public async Task Client_mistakes_surface_in_the_openai_client_as_4xx_with_the_servers_message()
    {
        var tooLong = await Assert.ThrowsAsync<ClientResultException>(() => fixture.Chat().CompleteChatAsync(
            [new UserChatMessage("hi")], new ChatCompletionOptions { MaxOutputTokenCount = 100_000 }, Ct));
        Assert.Equal(400, tooLong.Status);
        Assert.Contains("context", tooLong.Message);

        var longPrompt = await Assert.ThrowsAsync<ClientResultException>(() => fixture.Chat().CompleteChatAsync(
            [new UserChatMessage(string.Join(' ', Enumerable.Repeat("lighthouse keeper", 400)))], new ChatCompletionOptions { MaxOutputTokenCount = 4 }, Ct));
        Assert.Equal(400, longPrompt.Status);
        Assert.Contains("context_length_exceeded", longPrompt.Message);

        var badTemperature = await Assert.ThrowsAsync<ClientResultException>(() => fixture.Chat().CompleteChatAsync(
            [new UserChatMessage("hi")], new ChatCompletionOptions { Temperature = 7 }, Ct));
        Assert.Equal(400, badTemperature.Status);
        Assert.Contains("temperature", badTemperature.Message);
    }

    [Fact]
    public async Task Sixteen_concurrent_streaming_clients_each_get_their_complete_solo_greedy_output()
    {
        const int clients = 16, maxTokens = 5;
        string[] prompts = Enumerable.Range(0, clients).Select(i => $"Question {i}: what comes after {i * 7 + 3}?").ToArray();
        var solo = new string[clients];
        for (int i = 0; i < clients; i++)
            solo[i] = await RealEngine.GreedyChatAsync([new EngineChatMessage(EngineChatRole.User, prompts[i])], maxTokens);

        async Task<(string Text, ChatFinishReason? Finish)> StreamAsync(string prompt)
        {
            var text = new StringBuilder();
            ChatFinishReason? finish = null;
            await foreach (StreamingChatCompletionUpdate update in fixture.Chat().CompleteChatStreamingAsync(
                               [new UserChatMessage(prompt)], new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = maxTokens }, Ct))
            {
                foreach (ChatMessageContentPart part in update.ContentUpdate)
                    text.Append(part.Text);
                finish ??= update.FinishReason;
            }
            return (text.ToString(), finish);
        }

        var results = await Task.WhenAll(prompts.Select(p => Task.Run(() => StreamAsync(p), Ct)));
        for (int i = 0; i < clients; i++)
        {
            Assert.Equal(solo[i], results[i].Text);
            Assert.NotNull(results[i].Finish); // every stream reached its finish chunk
        }
    }
}
