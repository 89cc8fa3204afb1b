using BitNet.Hosts.Http;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace BitNet.Hosts.Tests.Support;

/// <summary>The real Kestrel host (HttpApiHost) on a free loopback port.</summary>
internal sealed class TestServer : IAsyncDisposable
{
    private readonly WebApplication _app;

    private TestServer(WebApplication app, InferenceApi api)
    {
        _app = app;
        Api = api;
        BaseUrl = app.Urls.First().TrimEnd('/');
        Client = new HttpClient { BaseAddress = new Uri(BaseUrl), Timeout = TimeSpan.FromSeconds(60) };
    }

    public InferenceApi Api { get; }
    public string BaseUrl { get; }
    public HttpClient Client { get; }

    public static Task<TestServer> StartAsync(ITextGenerator generator, ApiOptions? options = null) =>
        StartAsync(GeneratorProvider.Ready(generator), options);

    public static async Task<TestServer> StartAsync(GeneratorProvider provider, ApiOptions? options = null)
    {
        var api = new InferenceApi(provider, options ?? new ApiOptions());
        WebApplication app = HttpApiHost.Create(api, "http://127.0.0.1:0", logLevel: LogLevel.Warning);
        await app.StartAsync();
        return new TestServer(app, api);
    }

    /// <summary>What SIGTERM does (ConsoleLifetime → StopApplication → host stop).</summary>
    public Task StopAsync() => _app.StopAsync();

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
