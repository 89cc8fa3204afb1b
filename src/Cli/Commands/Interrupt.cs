using System.Runtime.InteropServices;

namespace BitNet.Cli.Commands;

/// <summary>
/// Ctrl+C (SIGINT) while a generation runs: the first one stops the generation, so the command can end its line
/// and print its timings (generate) or go back to the prompt (chat); a second one ends the process at once, as
/// if nothing handled it. Outside such a scope Ctrl+C ends the process as usual.
/// System.CommandLine 2.0.0 does not handle the signal (its ProcessTerminationTimeout defaults to null), and turning
/// that on for every command would also cut short `serve`, which drains on SIGINT itself.
/// </summary>
internal sealed class Interrupt : IDisposable
{
    private readonly CancellationTokenSource _stop;
    private readonly PosixSignalRegistration _registration;
    private int _signals;

    private Interrupt(CancellationToken outer)
    {
        _stop = CancellationTokenSource.CreateLinkedTokenSource(outer);
        _registration = PosixSignalRegistration.Create(PosixSignal.SIGINT, context =>
        {
            if (Interlocked.Increment(ref _signals) > 1)
                return; // the second Ctrl+C: not cancelled, so the runtime ends the process
            context.Cancel = true;
            try
            {
                _stop.Cancel();
            }
            catch (ObjectDisposedException)
            {
                // the scope ended while the signal was on its way
            }
        });
    }

    /// <summary>Cancelled by the first Ctrl+C, or by <paramref name="outer"/>, from now until disposed.</summary>
    public static Interrupt Start(CancellationToken outer) => new(outer);

    public CancellationToken Token => _stop.Token;

    /// <summary>Whether Ctrl+C was pressed in this scope.</summary>
    public bool Pressed => Volatile.Read(ref _signals) > 0;

    public void Dispose()
    {
        _registration.Dispose();
        _stop.Dispose();
    }
}
