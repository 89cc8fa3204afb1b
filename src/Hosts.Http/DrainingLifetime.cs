using System.Runtime.InteropServices;
using BitNet.Inference.Api;
using Microsoft.Extensions.Hosting;

namespace BitNet.Hosts.Http;

/// <summary>
/// How the plain server stops on SIGTERM or Ctrl+C: it refuses new generations with 503 at once
/// but keeps listening while the requests it is answering finish (up to the shutdown timeout), so a
/// request racing the signal gets its 503 instead of a refused connection; then the host stops.
/// A second signal stops at once.
/// </summary>
public sealed class DrainingLifetime(InferenceApi api, IHostApplicationLifetime lifetime, TimeSpan timeout) : IHostLifetime, IDisposable
{
    /// <summary>Least time the server keeps answering 503 after the signal, even when idle (capped by the shutdown timeout).</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);

    private readonly List<PosixSignalRegistration> _registrations = [];
    private int _signals;

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        foreach (PosixSignal signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGQUIT, PosixSignal.SIGTERM })
            _registrations.Add(PosixSignalRegistration.Create(signal, OnSignal));
        return Task.CompletedTask;
    }

    private void OnSignal(PosixSignalContext context)
    {
        context.Cancel = true; // the host stops itself, after the drain
        if (Interlocked.Increment(ref _signals) > 1)
        {
            lifetime.StopApplication();
            return;
        }
        _ = Task.Run(async () =>
        {
            await DrainAsync(api, timeout, lifetime.ApplicationStopping).ConfigureAwait(false);
            lifetime.StopApplication();
        });
    }

    /// <summary>Refuses new generations, then waits until no request is being answered (at least
    /// <see cref="Grace"/>, at most <paramref name="timeout"/>).</summary>
    public static async Task DrainAsync(InferenceApi api, TimeSpan timeout, CancellationToken stopping = default)
    {
        api.BeginShutdown();
        DateTimeOffset start = DateTimeOffset.UtcNow;
        TimeSpan grace = timeout < Grace ? timeout : Grace;
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                TimeSpan elapsed = DateTimeOffset.UtcNow - start;
                if (elapsed >= timeout || elapsed >= grace && HttpApiHost.InFlight == 0)
                    return;
                await Task.Delay(TimeSpan.FromMilliseconds(50), stopping).ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;

    public void Dispose()
    {
        foreach (PosixSignalRegistration registration in _registrations)
            registration.Dispose();
    }
}
