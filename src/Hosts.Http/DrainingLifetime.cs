using System.Runtime.InteropServices;
using BitNet.Inference.Api;
using Microsoft.Extensions.Hosting;

namespace BitNet.Hosts.Http;

/// <summary>
/// How the plain server stops on SIGTERM or Ctrl+C: it refuses new generations with 503 at once
/// but keeps listening while the requests it is answering finish, so a request racing the signal
/// gets its 503 instead of a refused connection; then the host stops. The drain and the host's stop
/// share one deadline, the shutdown timeout after the signal. A second signal stops at once:
/// running requests are aborted and the host stops without waiting.
/// </summary>
public sealed class DrainingLifetime(InferenceApi api, InFlightRequests inFlight, IHostApplicationLifetime lifetime,
    HostOptions hostOptions, TimeSpan timeout) : IHostLifetime, IDisposable
{
    /// <summary>Least time the server keeps answering 503 after the signal, even when idle (capped by the shutdown timeout).</summary>
    public static readonly TimeSpan Grace = TimeSpan.FromSeconds(2);

    private readonly List<PosixSignalRegistration> _registrations = [];
    private readonly Lock _gate = new();
    private int _signals;

    public Task WaitForStartAsync(CancellationToken cancellationToken)
    {
        foreach (PosixSignal signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGQUIT, PosixSignal.SIGTERM })
            _registrations.Add(PosixSignalRegistration.Create(signal, context =>
            {
                context.Cancel = true; // the host stops itself, after the drain
                Signal();
            }));
        return Task.CompletedTask;
    }

    /// <summary>What SIGTERM, SIGINT and SIGQUIT do: the first drains, then stops; the next stops at once.</summary>
    public void Signal()
    {
        lock (_gate)
        {
            if (++_signals > 1)
            {
                hostOptions.ShutdownTimeout = TimeSpan.Zero; // for a host stop not begun yet
                inFlight.AbortAll();                          // for one already waiting on them
                lifetime.StopApplication();
                return;
            }
        }
        DateTimeOffset deadline = DateTimeOffset.UtcNow + timeout;
        _ = Task.Run(async () =>
        {
            await DrainAsync(api, inFlight, timeout, lifetime.ApplicationStopping).ConfigureAwait(false);
            lock (_gate)
            {
                if (_signals == 1)
                {
                    // The host's stop (Kestrel's wait for open connections) gets what the drain left of the deadline.
                    TimeSpan left = deadline - DateTimeOffset.UtcNow;
                    hostOptions.ShutdownTimeout = left > TimeSpan.Zero ? left : TimeSpan.Zero;
                }
            }
            lifetime.StopApplication();
        });
    }

    /// <summary>Refuses new generations, then waits until no request is being answered (at least
    /// <see cref="Grace"/>, at most <paramref name="timeout"/>).</summary>
    public static async Task DrainAsync(InferenceApi api, InFlightRequests inFlight, TimeSpan timeout, CancellationToken stopping = default)
    {
        api.BeginShutdown();
        DateTimeOffset start = DateTimeOffset.UtcNow;
        TimeSpan grace = timeout < Grace ? timeout : Grace;
        try
        {
            while (!stopping.IsCancellationRequested)
            {
                TimeSpan elapsed = DateTimeOffset.UtcNow - start;
                if (elapsed >= timeout || elapsed >= grace && inFlight.Count == 0)
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
