using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.AzureFunctions;
using BitNet.Hosts.Http;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace BitNet.Hosts.Tests;

/// <summary>
/// The Azure Functions worker's two functions without the Functions host: the HTTP function driven with
/// real ASP.NET Core requests through Kestrel (routes and methods from its trigger, see <see cref="AzureWorker"/>),
/// the keep-warm function called as the timer calls it, both created through the worker's DI registration.
/// </summary>
public sealed class AzureFunctionTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    private static async Task<JsonElement> JsonOf(HttpResponseMessage response) =>
        JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;

    [Fact]
    public async Task Chat_completion_through_the_http_function_returns_the_generated_text_and_usage()
    {
        var fake = new FakeTextGenerator();
        await using var worker = await AzureWorker.StartAsync(fake);
        var response = await worker.Client.PostAsync("/v1/chat/completions",
            Sse.Json("""{"messages":[{"role":"system","content":"be brief"},{"role":"user","content":"hi"}],"max_tokens":4}"""), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("application/json", response.Content.Headers.ContentType!.MediaType);
        JsonElement body = await JsonOf(response);
        var prompt = fake.Tokenize(fake.ApplyChatTemplate([new ChatMessage(ChatRole.System, "be brief"), new ChatMessage(ChatRole.User, "hi")]));
        Assert.Equal("chat.completion", body.GetProperty("object").GetString());
        Assert.Equal(FakeTextGenerator.Expected(prompt, 4), body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());
        Assert.Equal(prompt.Count, body.GetProperty("usage").GetProperty("prompt_tokens").GetInt32());
        Assert.Equal(4, body.GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Streamed_chat_through_the_http_function_is_server_sent_events_ending_with_done()
    {
        var fake = new FakeTextGenerator();
        await using var worker = await AzureWorker.StartAsync(fake);
        var response = await worker.Client.PostAsync("/v1/chat/completions",
            Sse.Json("""{"messages":[{"role":"user","content":"tell me"}],"max_tokens":6,"stream":true,"stream_options":{"include_usage":true}}"""), Ct);

        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("text/event-stream", response.Content.Headers.ContentType!.MediaType);
        var (frames, done) = Sse.Parse(await response.Content.ReadAsStringAsync(Ct));
        Assert.True(done);
        var prompt = fake.Tokenize(fake.ApplyChatTemplate([new ChatMessage(ChatRole.User, "tell me")]));
        Assert.Equal(FakeTextGenerator.Expected(prompt, 6), Sse.ChatText(frames));
        Assert.All(frames, f => Assert.Equal("chat.completion.chunk", f.GetProperty("object").GetString()));
        Assert.Equal(6, frames[^1].GetProperty("usage").GetProperty("completion_tokens").GetInt32());
    }

    [Fact]
    public async Task Streamed_frames_reach_the_client_while_generating_and_a_client_that_leaves_cancels_the_generation()
    {
        // 400 tokens at 25 ms each: a buffered response would only arrive after 10 s, all at once.
        var fake = new FakeTextGenerator { TokenDelay = TimeSpan.FromMilliseconds(25) };
        await using var worker = await AzureWorker.StartAsync(fake);
        var request = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = Sse.Json("""{"prompt":"go","max_tokens":400,"stream":true}""") };
        using (HttpResponseMessage response = await worker.Client.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, Ct))
        {
            Assert.Equal(3, await Sse.ReadDataFramesAsync(response, 3, Ct));
        }

        await fake.CancellationObserved.Task.WaitAsync(TimeSpan.FromSeconds(8), Ct);
        Assert.InRange(fake.TokensAfterCancel, 0, 1);
        await HttpApiTests.WaitUntil(() => !worker.Api.Queue.Busy);
    }

    [Fact]
    public async Task Completions_through_the_http_function_buffered_and_streamed()
    {
        var fake = new FakeTextGenerator();
        await using var worker = await AzureWorker.StartAsync(fake);
        var buffered = await worker.Client.PostAsync("/v1/completions", Sse.Json("""{"prompt":"abc","max_tokens":3}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, buffered.StatusCode);
        Assert.Equal(FakeTextGenerator.Expected(fake.Tokenize("abc"), 3), (await JsonOf(buffered)).GetProperty("choices")[0].GetProperty("text").GetString());

        var streamed = await worker.Client.PostAsync("/v1/completions", Sse.Json("""{"prompt":"abc","max_tokens":3,"stream":true}"""), Ct);
        var (frames, done) = Sse.Parse(await streamed.Content.ReadAsStringAsync(Ct));
        Assert.True(done);
        Assert.Equal(FakeTextGenerator.Expected(fake.Tokenize("abc"), 3),
            string.Concat(frames.Select(f => f.GetProperty("choices")[0].GetProperty("text").GetString())));
    }

    [Fact]
    public async Task Models_health_and_the_keep_warm_path_are_served_at_the_servers_paths()
    {
        await using var worker = await AzureWorker.StartAsync(new FakeTextGenerator());
        Assert.Equal("fake-model", (await JsonOf(await worker.Client.GetAsync("/v1/models", Ct))).GetProperty("data")[0].GetProperty("id").GetString());
        Assert.Equal("ok", (await JsonOf(await worker.Client.GetAsync("/health", Ct))).GetProperty("status").GetString());
        var head = await worker.Client.SendAsync(new HttpRequestMessage(HttpMethod.Head, "/health"), Ct);
        Assert.Equal(HttpStatusCode.OK, head.StatusCode);
        Assert.Equal("warm", (await JsonOf(await worker.Client.PostAsync("/keep-warm", Sse.Json("{}"), Ct))).GetProperty("status").GetString());
    }

    [Fact]
    public async Task Bad_requests_get_openai_error_bodies_and_never_a_5xx()
    {
        await using var worker = await AzureWorker.StartAsync(new FakeTextGenerator(), new ApiOptions { MaxRequestBytes = 2048 });
        (string Path, string Body, HttpStatusCode Status)[] cases =
        [
            ("/v1/chat/completions", "{not json", HttpStatusCode.BadRequest),
            ("/v1/chat/completions", "", HttpStatusCode.BadRequest),
            ("/v1/chat/completions", """{"messages":"hi"}""", HttpStatusCode.BadRequest),
            ("/v1/chat/completions", """{"messages":[{"role":"wizard","content":"x"}]}""", HttpStatusCode.BadRequest),
            ("/v1/completions", """{"prompt":"x","max_tokens":-3}""", HttpStatusCode.BadRequest),
            ("/v1/no-such-endpoint", "{}", HttpStatusCode.NotFound),
        ];
        foreach (var (path, body, status) in cases)
        {
            var response = await worker.Client.PostAsync(path, Sse.Json(body), Ct);
            Assert.True(status == response.StatusCode, $"{path} {body}: {(int)response.StatusCode}");
            JsonElement error = (await JsonOf(response)).GetProperty("error");
            Assert.False(string.IsNullOrEmpty(error.GetProperty("message").GetString()));
            Assert.False(string.IsNullOrEmpty(error.GetProperty("type").GetString()));
        }

        // Over the limit with and without a Content-Length: the worker's Kestrel was not configured by us.
        string big = new('x', 4096);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, (await worker.Client.PostAsync("/v1/completions", Sse.Json($$"""{"prompt":"{{big}}"}"""), Ct)).StatusCode);
        var chunked = new HttpRequestMessage(HttpMethod.Post, "/v1/completions") { Content = new StreamContent(new MemoryStream(Encoding.UTF8.GetBytes($$"""{"prompt":"{{big}}"}"""))) };
        chunked.Content.Headers.ContentType = new MediaTypeHeaderValue("application/json");
        chunked.Headers.TransferEncodingChunked = true;
        var tooLarge = await worker.Client.SendAsync(chunked, Ct);
        Assert.Equal(HttpStatusCode.RequestEntityTooLarge, tooLarge.StatusCode);
        Assert.Equal("request_too_large", (await JsonOf(tooLarge)).GetProperty("error").GetProperty("code").GetString());
    }

    [Fact]
    public async Task The_function_is_anonymous_but_the_api_key_setting_is_enforced_except_for_health()
    {
        var (_, trigger) = Assert.Single(AzureWorker.HttpFunctions());
        Assert.Equal(Microsoft.Azure.Functions.Worker.AuthorizationLevel.Anonymous, trigger.AuthLevel);

        var fake = new FakeTextGenerator();
        await using var worker = await AzureWorker.StartAsync(fake, new ApiOptions { ApiKey = "s3cret" });
        var anonymous = await worker.Client.PostAsync("/v1/chat/completions", Sse.Json("""{"messages":[{"role":"user","content":"x"}]}"""), Ct);
        Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        Assert.Equal("invalid_request_error", (await JsonOf(anonymous)).GetProperty("error").GetProperty("type").GetString());
        var wrong = new HttpRequestMessage(HttpMethod.Get, "/v1/models") { Headers = { { "Authorization", "Bearer nope" } } };
        Assert.Equal(HttpStatusCode.Unauthorized, (await worker.Client.SendAsync(wrong, Ct)).StatusCode);
        var right = new HttpRequestMessage(HttpMethod.Post, "/v1/chat/completions")
        {
            Headers = { { "Authorization", "Bearer s3cret" } },
            Content = Sse.Json("""{"messages":[{"role":"user","content":"x"}],"max_tokens":2}"""),
        };
        Assert.Equal(HttpStatusCode.OK, (await worker.Client.SendAsync(right, Ct)).StatusCode);
        Assert.Equal(HttpStatusCode.OK, (await worker.Client.GetAsync("/health", Ct)).StatusCode);
        Assert.Equal(1, fake.Generations);
    }

    [Fact]
    public async Task Health_is_503_while_the_worker_loads_the_model_in_the_background_then_200()
    {
        using var release = new ManualResetEventSlim();
        var fake = new FakeTextGenerator();
        await using var worker = await AzureWorker.StartAsync(_ =>
        {
            release.Wait(TimeSpan.FromSeconds(30));
            return fake;
        });

        var loading = await worker.Client.GetAsync("/health", Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, loading.StatusCode);
        Assert.NotNull(loading.Headers.RetryAfter);
        Assert.Contains("Loading model", await loading.Content.ReadAsStringAsync(Ct));
        var chat = await worker.Client.PostAsync("/v1/chat/completions", Sse.Json("""{"messages":[{"role":"user","content":"x"}]}"""), Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, chat.StatusCode);
        await worker.TickKeepWarmAsync(); // a tick during the load succeeds and touches nothing
        Assert.Equal(0, fake.TouchCount);

        release.Set();
        await worker.Api.Provider.Settled.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        Assert.Equal(HttpStatusCode.OK, (await worker.Client.GetAsync("/health", Ct)).StatusCode);
    }

    [Fact]
    public async Task A_model_that_fails_to_load_leaves_health_503_naming_the_reason_and_the_timer_still_succeeds()
    {
        await using var worker = await AzureWorker.StartAsync(_ => throw new FileNotFoundException("no such model: /home/site/wwwroot/model.gguf"));
        await worker.Api.Provider.Settled.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        var health = await worker.Client.GetAsync("/health", Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, health.StatusCode);
        Assert.Contains("no such model: /home/site/wwwroot/model.gguf", await health.Content.ReadAsStringAsync(Ct));
        await worker.TickKeepWarmAsync();
    }

    [Fact]
    public async Task Keep_warm_timer_pings_without_generating_and_touches_the_weights_on_the_first_tick_only()
    {
        var fake = new FakeTextGenerator();
        await using var worker = await AzureWorker.StartAsync(fake);
        await worker.TickKeepWarmAsync();
        await worker.TickKeepWarmAsync(pastDue: true);
        await worker.TickKeepWarmAsync();
        Assert.Equal(1, fake.TouchCount);
        Assert.Equal(0, fake.Generations);
    }

    [Fact]
    public async Task A_stopping_worker_refuses_new_generations()
    {
        var fake = new FakeTextGenerator();
        var worker = await AzureWorker.StartAsync(fake);
        await worker.StopAsync();
        await using ApiResponse response = await worker.Api.HandleAsync(new ApiRequest("POST", "/v1/completions", Encoding.UTF8.GetBytes("""{"prompt":"x"}""")), Ct);
        Assert.Equal(503, response.Status);
        Assert.Equal(0, fake.Generations);
        await worker.DisposeAsync();
    }

    /// <summary>What the Functions host passes the worker; the worker's own hosted services read it when built (nothing connects).</summary>
    private static readonly string[] HostArgs = ["--Functions:Worker:HostEndpoint=http://127.0.0.1:9", "--Functions:Worker:WorkerId=test",
        "--Functions:Worker:RequestId=test", "--Functions:Worker:GrpcMaxMessageLength=2147483647"];

    [Fact]
    public async Task The_workers_kestrel_has_the_plain_servers_request_limits()
    {
        var options = new ApiOptions { MaxRequestBytes = 4096 };
        using var worker = BitNetWorker.CreateHost(HostArgs, options, _ => new FakeTextGenerator());
        await using var server = HttpApiHost.Create(new InferenceApi(new GeneratorProvider(), options), "http://127.0.0.1:0");
        var ours = server.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value;
        var theirs = worker.Services.GetRequiredService<IOptions<KestrelServerOptions>>().Value;

        Assert.Equal(ours.Limits.MaxRequestLineSize, theirs.Limits.MaxRequestLineSize);
        Assert.Equal(ours.Limits.MaxRequestHeadersTotalSize, theirs.Limits.MaxRequestHeadersTotalSize);
        Assert.Equal(ours.Limits.MaxRequestHeaderCount, theirs.Limits.MaxRequestHeaderCount);
        Assert.Equal(options.MaxRequestBytes, theirs.Limits.MaxRequestBodySize);
        Assert.Equal(ours.AddServerHeader, theirs.AddServerHeader);
        // Above the API's own limits, so that the API, not Kestrel, answers a request just over them.
        Assert.True(theirs.Limits.MaxRequestLineSize > InferenceApi.MaxTargetBytes);
        Assert.True(theirs.Limits.MaxRequestHeadersTotalSize > InferenceApi.MaxHeaderBytes);
        Assert.True(theirs.Limits.MaxRequestHeaderCount > InferenceApi.MaxHeaderCount);
    }

    [Fact]
    public async Task Through_the_worker_a_long_url_large_headers_and_many_header_fields_get_the_openai_error_shape()
    {
        await using var worker = await AzureWorker.StartAsync(new FakeTextGenerator());
        var url = await worker.Client.GetAsync("/v1/models?pad=" + new string('x', InferenceApi.MaxTargetBytes), Ct);
        var large = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        for (int i = 0; i < 5; i++)
            large.Headers.Add($"X-Pad-{i}", new string('h', InferenceApi.MaxHeaderBytes / 4));
        var many = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        for (int i = 0; i < InferenceApi.MaxHeaderCount + 20; i++)
            many.Headers.Add($"X-Field-{i}", "1");

        foreach (var (response, status, code) in new[]
        {
            (url, HttpStatusCode.RequestUriTooLong, "url_too_long"),
            (await worker.Client.SendAsync(large, Ct), HttpStatusCode.RequestHeaderFieldsTooLarge, "headers_too_large"),
            (await worker.Client.SendAsync(many, Ct), HttpStatusCode.RequestHeaderFieldsTooLarge, "too_many_headers"),
        })
        {
            Assert.Equal(status, response.StatusCode);
            string text = await response.Content.ReadAsStringAsync(Ct);
            Assert.True(text.Length > 0, $"{(int)status} with an empty body: Kestrel refused it, not the API");
            Assert.Equal(code, JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("code").GetString());
        }
    }

    [Fact]
    public async Task The_worker_program_starts_the_model_load_as_a_hosted_service_that_both_functions_share()
    {
        var fake = new FakeTextGenerator();
        using var host = BitNetWorker.CreateHost(HostArgs, new ApiOptions(), _ => fake);
        ModelStartup startup = Assert.Single(host.Services.GetServices<IHostedService>().OfType<ModelStartup>());
        var api = host.Services.GetRequiredService<InferenceApi>();
        Assert.Equal(GeneratorState.Loading, api.Provider.State);

        await startup.StartAsync(Ct);
        for (int i = 0; i < 200 && api.Provider.State == GeneratorState.Loading; i++)
            await Task.Delay(25, Ct);
        Assert.Equal(GeneratorState.Ready, api.Provider.State);

        // Functions the host creates from its services answer with the model the hosted service loaded.
        var openAi = ActivatorUtilities.CreateInstance<OpenAiFunction>(host.Services);
        var context = new DefaultHttpContext { RequestServices = host.Services };
        context.Request.Method = "GET";
        context.Request.Path = "/health";
        context.Response.Body = new MemoryStream();
        await openAi.RunAsync(context.Request);
        Assert.Equal(200, context.Response.StatusCode);

        await ActivatorUtilities.CreateInstance<KeepWarmFunction>(host.Services).RunAsync(new Microsoft.Azure.Functions.Worker.TimerInfo());
        Assert.Equal(1, fake.TouchCount);
    }
}
