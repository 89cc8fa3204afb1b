using System.Runtime.InteropServices;

namespace BitNet.Cli.Commands;

/// <summary>
/// Ctrl+C (SIGINT), and for a measuring run SIGTERM too, while a command works: the first signal cancels
/// <see cref="Token"/>, so the command can finish cleanly (generate ends its line and prints its timings, chat goes back
/// to the prompt, bench-cost and tiers report what they measured); a second one ends the process at once, as if nothing
/// handled it. Outside such a scope the signals end the process as usual.
/// System.CommandLine 2.0.0 does not handle the signals (its ProcessTerminationTimeout defaults to null), and turning
/// that on for every command would also cut short `serve`, which drains on SIGINT itself.
/// </summary>
internal sealed class Interrupt : IDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly PosixSignalRegistration[] _registrations;
    private int _signals;

    private Interrupt(PosixSignal[] signals, CancellationToken outer)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(outer);
        _registrations = Array.ConvertAll(signals, signal => PosixSignalRegistration.Create(signal, context =>
        {
            if (Interlocked.Increment(ref _signals) > 1)
                return; // the second signal: not cancelled, so the runtime ends the process
            context.Cancel = true;
            try
            {
                _stop.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // the scope ended while the signal was on its way
            }
        }));
    }

    /// <summary>Cancelled by the first Ctrl+C, or by <paramref name="outer"/>, from now until disposed.</summary>
    public static Interrupt Start(CancellationToken outer) => new([PosixSignal.SIGINT], outer);

    /// <summary>As <see cref="Start"/>, and by SIGTERM too: a run that may be stopped by a supervisor reports first.</summary>
    public static Interrupt StartWithTermination(CancellationToken outer) => new([PosixSignal.SIGINT, PosixSignal.SIGTERM], outer);

    public CancellationToken Token => _stop.Token;

    /// <summary>Whether a signal came in this scope.</summary>
    public bool Pressed => Volatile.Read(ref _signals) > 0;

    public void Dispose()
    {
        foreach (PosixSignalRegistration registration in _registrations)
            registration.Dispose();
        _stop.Dispose();
    }
}
