using System.ClientModel;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.Lambda;
using BitNet.Hosts.Lambda.Runtime;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using BitNet.Inference.Hub;
using BitNet.Tests.Shared;
using OpenAI;
using OpenAI.Chat;

namespace BitNet.Hosts.Tests;

/// <summary>
/// A llama-architecture model (Llama3-8B-1.58's layout: untied F16 head, Llama 3 chat format) served end
/// to end: the OpenAI client's greedy chat and completions through Kestrel and through the Azure worker's
/// functions, and a Lambda function URL chat, each answer with bitnet.cpp's own greedy tokens for the oracle's prompts.
/// </summary>
public sealed class LlamaArchHostTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;
    private const string System = "You are a helpful assistant.";
    private const string Question = "What is 1.58-bit quantization?";
    private const int Tokens = 8;

    [Fact]
    public async Task Chat_and_completions_through_the_openai_client_give_bitnet_cpps_greedy_tokens()
    {
        ArchModelHost model = ArchModelHost.For(ArchModels.LlamaUntied);
        await using var server = await TestServer.StartAsync(model.Engine, new ApiOptions());
        var options = new OpenAIClientOptions { Endpoint = new Uri(server.BaseUrl + "/v1"), NetworkTimeout = TimeSpan.FromSeconds(60) };
        var chat = new ChatClient(model.Engine.Model.Id, new ApiKeyCredential("not-needed"), options);

        ChatCompletion completion = await chat.CompleteChatAsync([new SystemChatMessage(System), new UserChatMessage(Question)],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = Tokens }, Ct);
        Assert.Equal(model.GreedyText(".chat", Tokens), completion.Content[0].Text);
        Assert.Equal(model.Case(".chat").PromptIds.Length, completion.Usage.InputTokenCount);   // the Llama 3 prompt, as bitnet.cpp tokenized it

        var (status, body) = await Completions(server.Client, $$"""{"prompt":"The capital of France is","max_tokens":{{Tokens}},"temperature":0}""");
        Assert.Equal(200, status);
        Assert.Equal(model.GreedyText("", Tokens), body.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(model.Case("").PromptIds.Length, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
    }

    [Fact]
    public async Task Lambda_streams_bitnet_cpps_greedy_chat_from_a_function_url()
    {
        ArchModelHost model = ArchModelHost.For(ArchModels.LlamaUntied);
        FakeRuntimeApi runtime = await FakeRuntimeApi.StartAsync();
        await using (runtime)
        {
            using var client = new RuntimeApiClient(runtime.HostPort);
            var env = new DictionaryEnvironment(new Dictionary<string, string?> { [EnvVars.LambdaStreaming] = "true" }, "/tmp");
            using var stop = new CancellationTokenSource();
            Task<int> running = Task.Run(() => new LambdaRuntimeLoop(client, env, (_, _) => { }).RunAsync(_ => model.Engine, stop.Token));

            string request = JsonSerializer.Serialize(new
            {
                messages = new[] { new { role = "system", content = System }, new { role = "user", content = Question } },
                max_tokens = Tokens, temperature = 0, stream = true,
            });
            FakeRuntimeApi.Posted streamed = await runtime.Invoke(LambdaHostTests.FunctionUrlEvent("POST", "/v1/chat/completions", request));
            int separator = streamed.Body.AsSpan().IndexOf(new byte[8]);
            var (frames, done) = Sse.Parse(Encoding.UTF8.GetString(streamed.Body, separator + 8, streamed.Body.Length - separator - 8));
            Assert.True(done);
            Assert.Equal(model.GreedyText(".chat", Tokens), Sse.ChatText(frames));

            FakeRuntimeApi.Posted completion = await runtime.Invoke(LambdaHostTests.FunctionUrlEvent("POST", "/v1/completions",
                $$"""{"prompt":"The capital of France is","max_tokens":{{Tokens}},"temperature":0}"""));
            // Streaming mode: the HTTP prelude, 8 zero bytes, then the response body.
            byte[] body = completion.Body.AsSpan(completion.Body.AsSpan().IndexOf(new byte[8]) + 8).ToArray();
            Assert.Equal(model.GreedyText("", Tokens), JsonDocument.Parse(body).RootElement.GetProperty("choices")[0].GetProperty("text").GetString());

            stop.Cancel();
            Assert.Equal(0, await running.WaitAsync(TimeSpan.FromSeconds(10), Ct));
        }
    }

    [Fact]
    public async Task Azure_worker_streams_bitnet_cpps_greedy_chat_and_completions_to_the_openai_client()
    {
        ArchModelHost model = ArchModelHost.For(ArchModels.LlamaUntied);
        await using AzureWorker worker = await AzureWorker.StartAsync(model.Engine);
        var options = new OpenAIClientOptions { Endpoint = new Uri(worker.Client.BaseAddress!, "v1"), NetworkTimeout = TimeSpan.FromSeconds(60) };
        var chat = new ChatClient("any-name", new ApiKeyCredential("not-needed"), options);

        var text = new StringBuilder();
        await foreach (StreamingChatCompletionUpdate update in chat.CompleteChatStreamingAsync(
            [new SystemChatMessage(System), new UserChatMessage(Question)],
            new ChatCompletionOptions { Temperature = 0, MaxOutputTokenCount = Tokens }, Ct))
            foreach (var part in update.ContentUpdate) text.Append(part.Text);
        Assert.Equal(model.GreedyText(".chat", Tokens), text.ToString());

        var (status, body) = await Completions(worker.Client, $$"""{"prompt":"The capital of France is","max_tokens":{{Tokens}},"temperature":0}""");
        Assert.Equal(200, status);
        Assert.Equal(model.GreedyText("", Tokens), body.GetProperty("choices")[0].GetProperty("text").GetString());
    }

    private static async Task<(int Status, JsonElement Body)> Completions(HttpClient client, string json)
    {
        using var response = await client.PostAsync("/v1/completions", new StringContent(json, Encoding.UTF8, "application/json"), Ct);
        return ((int)response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.Clone());
    }
}
