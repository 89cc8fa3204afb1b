using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;

namespace BitNet.Hosts.Http;

/// <summary>
/// The plain server, as `bitnet-server` and `bitnet serve` run it: bind first, then load the model
/// in the background (/health answers 503 "Loading model" meanwhile), serve until SIGTERM/Ctrl+C.
/// </summary>
public static class ServerRunner
{
    /// <summary>"http://host:port" with IPv6 literals bracketed.</summary>
    public static string Url(string host, int port) =>
        host.Contains(':') && !host.StartsWith('[') ? $"http://[{host}]:{port}" : $"http://{host}:{port}";

    public static async Task<int> RunAsync(ApiOptions options, Func<ApiOptions, ITextGenerator>? load = null, CancellationToken cancellationToken = default)
    {
        load ??= o => ModelLoading.LoadGenerator(o, ModelLoading.ResolveOrDownloadPath(o, Console.Error));
        var provider = new GeneratorProvider();
        var api = new InferenceApi(provider, options);
        WebApplication app = HttpApiHost.Create(api, Url(options.Host, options.Port));
        await app.StartAsync(cancellationToken);
        Console.WriteLine($"bitnet: listening on {string.Join(", ", app.Urls)}; loading the model");
        _ = provider.LoadInBackground(() => load(options)).ContinueWith(_ =>
            Console.WriteLine(provider.State == GeneratorState.Ready
                ? $"bitnet: model '{provider.Generator!.Model.Id}' ready in {provider.LoadTime?.TotalSeconds:F2} s ({provider.Generator.Model.KernelName}, {provider.Generator.Model.Threads} threads)"
                : $"bitnet: the model failed to load: {provider.FailureReason}"), TaskScheduler.Default);
        await app.WaitForShutdownAsync(cancellationToken);
        await app.DisposeAsync();
        return 0;
    }
}
