using System.Diagnostics;
using BitNet.Hosts.Http;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using BitNet.Tests.Shared;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BitNet.Hosts.Tests;

/// <summary>
/// The plain server's stop on a signal (<see cref="DrainingLifetime"/>, driven in process): with a stream
/// that would run for minutes, one signal stops it within the shutdown timeout in all, drain and Kestrel's
/// stop together, and a second signal stops it at once.
/// </summary>
public sealed class DrainingLifetimeTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    private sealed class Server(WebApplication app, FakeTextGenerator fake) : IAsyncDisposable
    {
        public FakeTextGenerator Fake => fake;
        public DrainingLifetime Lifetime => (DrainingLifetime)app.Services.GetRequiredService<IHostLifetime>();
        public Task WaitForShutdownAsync() => app.WaitForShutdownAsync(Ct);

        public static async Task<(Server Server, HttpResponseMessage Stream)> StartWithStreamAsync(TimeSpan shutdownTimeout)
        {
            var fake = new FakeTextGenerator(contextLength: 100_000) { TokenDelay = TimeSpan.FromMilliseconds(20) };
            var api = new InferenceApi(GeneratorProvider.Ready(fake), new ApiOptions { ShutdownTimeout = shutdownTimeout });
            WebApplication app = HttpApiHost.Create(api, "http://127.0.0.1:0", LogLevel.Warning, drainOnSignal: true);
            await app.StartAsync(Ct);
            var client = new HttpClient { BaseAddress = new Uri(app.Urls.First()) };
            // 50 000 tokens at 20 ms each: the stream outlives any shutdown timeout here.
            HttpResponseMessage stream = await client.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
            {
                Content = Sse.Json("""{"prompt":"x","max_tokens":50000,"stream":true}"""),
            }, HttpCompletionOption.ResponseHeadersRead, Ct);
            var reader = new StreamReader(await stream.Content.ReadAsStreamAsync(Ct));
            Assert.StartsWith("data: ", await reader.ReadLineAsync(Ct)); // generating
            return (new Server(app, fake), stream);
        }

        public async ValueTask DisposeAsync()
        {
            await app.StopAsync(CancellationToken.None);
            await app.DisposeAsync();
        }
    }

    [MachineDependent(TestCategories.NeedsTiming)]
    [Fact]
    public async Task One_signal_stops_the_server_within_the_shutdown_timeout_though_a_stream_runs_on()
    {
        var (server, stream) = await Server.StartWithStreamAsync(TimeSpan.FromSeconds(3));
        await using (server)
        using (stream)
        {
            var clock = Stopwatch.StartNew();
            server.Lifetime.Signal();
            await server.WaitForShutdownAsync().WaitAsync(TimeSpan.FromSeconds(30), Ct);
            clock.Stop();

            // The drain waits for the stream the whole timeout; Kestrel's stop then has nothing left to wait.
            Assert.InRange(clock.Elapsed, TimeSpan.FromSeconds(2.5), TimeSpan.FromSeconds(5));
            await server.Fake.CancellationObserved.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
        }
    }

    [MachineDependent(TestCategories.NeedsTiming)]
    [Fact]
    public async Task A_second_signal_stops_the_server_at_once()
    {
        var (server, stream) = await Server.StartWithStreamAsync(TimeSpan.FromSeconds(60));
        await using (server)
        using (stream)
        {
            var clock = Stopwatch.StartNew();
            server.Lifetime.Signal();
            await Task.Delay(200, Ct);
            server.Lifetime.Signal();
            await server.WaitForShutdownAsync().WaitAsync(TimeSpan.FromSeconds(30), Ct);
            clock.Stop();

            Assert.InRange(clock.Elapsed, TimeSpan.Zero, TimeSpan.FromSeconds(10));
            await server.Fake.CancellationObserved.Task.WaitAsync(TimeSpan.FromSeconds(10), Ct);
            Assert.InRange(server.Fake.TokensAfterCancel, 0, 1);
        }
    }
}
