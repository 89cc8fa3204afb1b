using System.Runtime.InteropServices;

namespace BitNet.Cli.Cost;

/// <summary>
/// Ctrl-C (SIGINT) and SIGTERM during a measuring run (bench-cost, tiers): the first one cancels
/// <see cref="Token"/>, so the run reports what it measured and exits 130; the next one ends the process
/// at once, as usual. System.CommandLine 2.0 leaves these signals alone (its ProcessTerminationTimeout is
/// null unless set), so without this a Ctrl-C would end the process before the report is written.
/// </summary>
internal sealed class StopSignals : IDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly List<PosixSignalRegistration> _registrations = [];
    private int _signals;

    /// <param name="cancellationToken">The command's own token; <see cref="Token"/> follows it too.</param>
    public StopSignals(CancellationToken cancellationToken)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        foreach (PosixSignal signal in new[] { PosixSignal.SIGINT, PosixSignal.SIGTERM })
            _registrations.Add(PosixSignalRegistration.Create(signal, context =>
            {
                if (Interlocked.Increment(ref _signals) > 1)
                    return;   // the default action: the process ends
                context.Cancel = true;
                try { _stop.Cancel(); }
                catch (ObjectDisposedException) { }   // the run ended meanwhile
            }));
    }

    /// <summary>Cancelled by the first signal, or by the command's token.</summary>
    public CancellationToken Token => _stop.Token;

    public void Dispose()
    {
        foreach (PosixSignalRegistration registration in _registrations)
            registration.Dispose();
        _stop.Dispose();
    }
}
