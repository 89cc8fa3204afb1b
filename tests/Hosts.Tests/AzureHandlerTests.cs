using System.Net;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.AzureFunctions;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace BitNet.Hosts.Tests;

/// <summary>
/// The Azure Functions custom handler on FUNCTIONS_CUSTOMHANDLER_PORT, fed the payloads the Functions
/// host sends (serverless-platforms.md §C): forwarded HTTP requests at their original path, the
/// non-forwarded invocation JSON {"Data","Metadata"} for the HTTP and the timer trigger.
/// </summary>
public sealed class AzureHandlerTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    private sealed class Handler : IAsyncDisposable
    {
        public required WebApplication App { get; init; }
        public required HttpClient Client { get; init; }

        public static async Task<Handler> StartAsync(GeneratorProvider provider)
        {
            int port = FreePort();
            WebApplication app = AzureHandler.Create(new InferenceApi(provider, new ApiOptions()), port, LogLevel.Warning);
            await app.StartAsync();
            return new Handler { App = app, Client = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}") } };
        }

        public async ValueTask DisposeAsync()
        {
            Client.Dispose();
            await App.StopAsync();
            await App.DisposeAsync();
        }
    }

    private static int FreePort()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }

    /// <summary>Headers DefaultHttpWorkerService adds to every request it sends the handler.</summary>
    private static HttpRequestMessage FromHost(HttpMethod method, string path, string? body = null)
    {
        var request = new HttpRequestMessage(method, path);
        request.Headers.Add("X-Azure-Functions-InvocationId", Guid.NewGuid().ToString());
        request.Headers.Add("X-Azure-Functions-HostVersion", "4.1037.1.1");
        request.Headers.TryAddWithoutValidation("User-Agent", "Azure-Functions-Host/4.1037.1.1");
        if (body is not null)
            request.Content = new StringContent(body, Encoding.UTF8, "application/json");
        return request;
    }

    [Fact]
    public async Task Forwarded_openai_requests_are_served_at_their_original_path()
    {
        var fake = new FakeTextGenerator();
        await using var handler = await Handler.StartAsync(GeneratorProvider.Ready(fake));
        var response = await handler.Client.SendAsync(FromHost(HttpMethod.Post, "/v1/chat/completions",
            """{"messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        var (frames, done) = Sse.Parse(await response.Content.ReadAsStringAsync(Ct));
        Assert.True(done);
        Assert.Equal(FakeTextGenerator.Expected(fake.Tokenize(fake.ApplyChatTemplate([new ChatMessage(ChatRole.User, "hi")])), 3), Sse.ChatText(frames));
    }

    [Fact]
    public async Task Non_forwarded_http_invocation_json_gets_outputs_logs_and_return_value()
    {
        var fake = new FakeTextGenerator();
        await using var handler = await Handler.StartAsync(GeneratorProvider.Ready(fake));
        string body = JsonSerializer.Serialize("""{"prompt":"abc","max_tokens":2}""");
        string invocation = $$"""
            {
              "Data": {
                "req": {
                  "Url": "https://bitnet-app.azurewebsites.net/v1/completions",
                  "Method": "POST",
                  "Query": "{}",
                  "Headers": { "Content-Type": ["application/json"], "User-Agent": ["curl/8.5.0"] },
                  "Params": { "route": "v1/completions" },
                  "Identities": [],
                  "Body": {{body}}
                }
              },
              "Metadata": {
                "route": "v1/completions",
                "Query": {},
                "Headers": { "Content-Type": "application/json" },
                "sys": { "MethodName": "openai", "UtcNow": "2026-11-23T01:02:03Z", "RandGuid": "0f8fad5b-d9cb-469f-a165-70867728950e" }
              }
            }
            """;
        var response = await handler.Client.SendAsync(FromHost(HttpMethod.Post, "/openai", invocation), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        JsonElement result = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
        JsonElement res = result.GetProperty("Outputs").GetProperty("res");
        Assert.Equal(200, res.GetProperty("statusCode").GetInt32());
        Assert.Equal("application/json", res.GetProperty("headers").GetProperty("content-type").GetString());
        JsonElement completion = JsonDocument.Parse(res.GetProperty("body").GetString()!).RootElement;
        Assert.Equal(FakeTextGenerator.Expected(fake.Tokenize("abc"), 2), completion.GetProperty("choices")[0].GetProperty("text").GetString());
        Assert.Equal(JsonValueKind.Array, result.GetProperty("Logs").ValueKind);
        Assert.Equal(JsonValueKind.Null, result.GetProperty("ReturnValue").ValueKind);
    }

    [Fact]
    public async Task Timer_invocation_is_a_keep_warm_ping_answered_in_the_custom_handler_shape()
    {
        var fake = new FakeTextGenerator();
        await using var handler = await Handler.StartAsync(GeneratorProvider.Ready(fake));
        const string timer = """
            {
              "Data": {
                "timer": {
                  "Schedule": { "AdjustForDST": true },
                  "ScheduleStatus": { "Last": "2026-11-23T01:00:00+00:00", "Next": "2026-11-23T01:05:00+00:00", "LastUpdated": "2026-11-23T01:00:00+00:00" },
                  "IsPastDue": false
                }
              },
              "Metadata": {
                "sys": { "MethodName": "keepwarm", "UtcNow": "2026-11-23T01:05:00.0123Z", "RandGuid": "2f4b6e3c-4d5e-4f60-8a7b-9c0d1e2f3a4b" }
              }
            }
            """;
        for (int i = 0; i < 2; i++)
        {
            var response = await handler.Client.SendAsync(FromHost(HttpMethod.Post, "/keepwarm", timer), Ct);
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            JsonElement result = JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement;
            Assert.Equal(JsonValueKind.Object, result.GetProperty("Outputs").ValueKind);
            Assert.Empty(result.GetProperty("Outputs").EnumerateObject());
            Assert.Contains("warm", result.GetProperty("Logs")[0].GetString());
            Assert.Equal(JsonValueKind.Null, result.GetProperty("ReturnValue").ValueKind);
        }
        Assert.Equal(1, fake.TouchCount);
        Assert.Equal(0, fake.Generations);
    }

    [Fact]
    public async Task The_port_answers_at_once_and_health_is_503_until_the_model_is_loaded()
    {
        var provider = new GeneratorProvider();
        await using var handler = await Handler.StartAsync(provider);
        var loading = await handler.Client.SendAsync(FromHost(HttpMethod.Get, "/health"), Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, loading.StatusCode);
        var timer = await handler.Client.SendAsync(FromHost(HttpMethod.Post, "/keepwarm", """{"Data":{"timer":{}},"Metadata":{}}"""), Ct);
        Assert.Equal(HttpStatusCode.OK, timer.StatusCode); // a timer tick during load must not fail the invocation

        provider.SetReady(new FakeTextGenerator(), TimeSpan.Zero);
        Assert.Equal(HttpStatusCode.OK, (await handler.Client.SendAsync(FromHost(HttpMethod.Get, "/health"), Ct)).StatusCode);
    }

    [Fact]
    public void Host_json_and_function_json_are_shipped_with_the_handler_and_say_what_the_host_needs()
    {
        string root = AppContext.BaseDirectory;
        JsonElement host = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, "host.json"))).RootElement;
        JsonElement custom = host.GetProperty("customHandler");
        Assert.Equal("bitnet-azure-handler", custom.GetProperty("description").GetProperty("defaultExecutablePath").GetString());
        Assert.True(custom.GetProperty("enableForwardingHttpRequest").GetBoolean());
        Assert.True(custom.GetProperty("enableProxyingHttpRequest").GetBoolean());
        Assert.Equal("", host.GetProperty("extensions").GetProperty("http").GetProperty("routePrefix").GetString());

        JsonElement http = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, AzureHandler.HttpFunction, "function.json"))).RootElement.GetProperty("bindings");
        Assert.Equal("httpTrigger", http[0].GetProperty("type").GetString());
        Assert.Equal("{*route}", http[0].GetProperty("route").GetString());
        Assert.Contains("post", http[0].GetProperty("methods").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal("http", http[1].GetProperty("type").GetString());

        JsonElement timer = JsonDocument.Parse(File.ReadAllText(Path.Combine(root, AzureHandler.KeepWarmFunction, "function.json"))).RootElement.GetProperty("bindings");
        Assert.Equal("timerTrigger", timer[0].GetProperty("type").GetString());
        Assert.Equal($"%{EnvVars.KeepWarmSchedule}%", timer[0].GetProperty("schedule").GetString());
    }
}
