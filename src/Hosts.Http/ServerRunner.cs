using System.Net.Sockets;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Hosting;

namespace BitNet.Hosts.Http;

/// <summary>
/// The plain server, as `bitnet-server` and `bitnet serve` run it: bind first, then load the model
/// in the background (/health answers 503 "Loading model" meanwhile), serve until SIGTERM/Ctrl+C
/// (drained: see <see cref="DrainingLifetime"/>). A host that is not this machine's, a port that
/// cannot be bound, or a model that fails to load ends the process with one line on stderr and exit 1
/// (a bad setting: 2).
/// </summary>
public static class ServerRunner
{
    /// <summary>"http://host:port" with IPv6 literals bracketed.</summary>
    public static string Url(string host, int port) =>
        host.Contains(':') && !host.StartsWith('[') ? $"http://[{host}]:{port}" : $"http://{host}:{port}";

    /// <summary>
    /// The one line for a listen socket Kestrel could not open, or null when <paramref name="ex"/> is another failure.
    /// A port in use arrives as an IOException naming the address; a refusal by the OS (a port below 1024
    /// without the privilege: EACCES) as a bare SocketException, which does not.
    /// </summary>
    public static string? ListenFailure(Exception ex, string urls) => ex switch
    {
        IOException => $"cannot listen: {ex.Message}",
        SocketException socket => $"cannot listen on {urls.Replace(";", ", ")}: {socket.Message} ({socket.SocketErrorCode})",
        _ => null,
    };

    public static async Task<int> RunAsync(ApiOptions options, Func<ApiOptions, ITextGenerator>? load = null,
        TextWriter? output = null, TextWriter? error = null, CancellationToken cancellationToken = default)
    {
        output ??= Console.Out;
        error ??= Console.Error;
        string urls;
        try
        {
            urls = BindAddress.Urls(options.Host, options.Port);
        }
        catch (ConfigurationException ex)
        {
            await error.WriteLineAsync($"bitnet: cannot listen: {ex.Message}");
            return 2;
        }

        load ??= o => ModelLoading.LoadGenerator(o, ModelLoading.ResolveOrDownloadPath(o, error));
        var provider = new GeneratorProvider();
        var api = new InferenceApi(provider, options);
        WebApplication app = HttpApiHost.Create(api, urls, drainOnSignal: true);
        try
        {
            await app.StartAsync(cancellationToken);
        }
        catch (Exception ex) when (ListenFailure(ex, urls) is string failure)
        {
            await error.WriteLineAsync($"bitnet: {failure}");
            await app.DisposeAsync();
            return 1;
        }
        await output.WriteLineAsync($"bitnet: listening on {string.Join(", ", app.Urls)}; loading the model");

        int exitCode = 0;
        _ = provider.LoadInBackground(() => load(options)).ContinueWith(_ =>
        {
            if (provider.State == GeneratorState.Ready)
            {
                output.WriteLine($"bitnet: {provider.ReadySummary}");
                return;
            }
            // Serving 503s forever helps nobody: a supervisor restarts a process that exits, not one that answers.
            error.WriteLine($"bitnet: the model failed to load: {provider.FailureReason}");
            exitCode = 1;
            app.Lifetime.StopApplication();
        }, TaskScheduler.Default);
        await app.WaitForShutdownAsync(cancellationToken);
        await app.DisposeAsync();
        return exitCode;
    }
}
