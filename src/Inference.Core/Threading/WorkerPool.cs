using System.Runtime.ExceptionServices;

namespace BitNet.Inference.Threading;

/// <summary>A piece of parallel work over an index range; implementations are reused across calls so
/// dispatching allocates nothing.</summary>
public interface IRangeJob
{
    /// <summary>Process indices [start, end). Called once per thread with disjoint ranges.</summary>
    void Run(int start, int end);
}

/// <summary>A range job from a delegate, for work done once (at load) where a reused job class is not worth writing.</summary>
internal sealed class RangeAction(Action<int, int> body) : IRangeJob
{
    public void Run(int start, int end) => body(start, end);
}

/// <summary>
/// Persistent worker threads for splitting matmul rows (spec §8.2: results never depend on the
/// split, because every output row is computed whole by one thread).
///
/// Why not Parallel.For or a Task per matmul: a decode step runs ~220 matmuls of 0.1–2 ms, so
/// per-call scheduling costs show up directly in tokens/s. Here the caller publishes the job by
/// bumping a generation counter; workers that are spinning (they spin for a short while after each
/// job, since the next matmul usually follows within microseconds) pick it up at once, sleeping
/// workers are woken through their own event. The calling thread runs the first share itself and
/// then waits, spinning first, for the rest. No allocation per call.
/// </summary>
public sealed class WorkerPool : IDisposable
{
    /// <summary>How long an idle thread spins before blocking. Long enough to bridge the gap between
    /// two matmuls of one token, short enough not to burn a core shared with other processes.</summary>
    private static readonly long SpinTicks = System.Diagnostics.Stopwatch.Frequency / 10_000; // 100 µs

    private readonly Worker[] _workers;
    private readonly WaitSignal _done = new();
    private int _callerSleeping;
    private int _generation;
    private int _remaining;
    private IRangeJob? _job;
    private int _count, _granule, _piece;
    /// <summary>Start of the next piece nobody has taken (dynamic jobs only).</summary>
    private int _nextPiece;
    private ExceptionDispatchInfo? _failure;
    private volatile bool _disposed;
    private readonly object _dispatchLock = new();

    /// <summary>Total threads that run a job, the calling thread included.</summary>
    public int Threads { get; }

    public WorkerPool(int threads)
    {
        if (threads < 1) throw new ArgumentOutOfRangeException(nameof(threads), threads, "a pool needs at least one thread");
        Threads = threads;
        _workers = new Worker[threads - 1];
        for (int i = 0; i < _workers.Length; i++)
        {
            var worker = new Worker(this, i + 1);
            _workers[i] = worker;
            worker.Thread.Start();
        }
    }

    /// <summary>
    /// Split [0, count) into <see cref="Threads"/> contiguous shares whose borders fall on multiples
    /// of <paramref name="granule"/> (so 4-row kernels keep whole tiles) and run them in parallel.
    /// Returns when every share is done; rethrows the first exception a share threw.
    /// </summary>
    public void For(int count, IRangeJob job, int granule = 1) => Run(count, job, granule, piece: 0);

    /// <summary>
    /// Run [0, count) in pieces of <paramref name="piece"/> indices that the threads take in turn from
    /// a shared counter until none are left. Where <see cref="For"/> fixes each thread's share up front,
    /// this lets a thread that was slowed (another process on its core, a page fault, a slower memory
    /// channel) take fewer pieces while the others take more, so the call ends when the work does rather
    /// than when the slowest fixed share does. Worth it for memory-bound single-token matmuls, whose
    /// pieces are long enough (tens of µs) that one atomic add each costs nothing; pieces must be a
    /// multiple of the kernels' row granule.
    /// </summary>
    public void ForPieces(int count, IRangeJob job, int piece)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(piece, 1);
        Run(count, job, granule: 1, piece);
    }

    private void Run(int count, IRangeJob job, int granule, int piece)
    {
        ArgumentNullException.ThrowIfNull(job);
        ObjectDisposedException.ThrowIf(_disposed, this);
        if (count <= 0) return;
        if (_workers.Length == 0 || count <= Math.Max(granule, piece))
        {
            job.Run(0, count);
            return;
        }
        // One job at a time: a second caller (another request on a shared model) waits its turn.
        lock (_dispatchLock)
        {
            _job = job; _count = count; _granule = Math.Max(1, granule); _piece = piece; _nextPiece = 0; _failure = null;
            Volatile.Write(ref _remaining, _workers.Length);
            Interlocked.Increment(ref _generation);
            foreach (Worker w in _workers)
                if (Volatile.Read(ref w.Sleeping) == 1) w.Wake.Set();

            RunShare(0);
            WaitForWorkers();
            _job = null;
            _failure?.Throw();
        }
    }

    /// <summary>Share <paramref name="index"/> of the current job: [start, end) for this thread.</summary>
    public static (int Start, int End) Share(int count, int threads, int index, int granule)
    {
        int units = (count + granule - 1) / granule;
        int start = (int)((long)units * index / threads) * granule;
        int end = (int)((long)units * (index + 1) / threads) * granule;
        return (Math.Min(start, count), Math.Min(end, count));
    }

    private void RunShare(int index)
    {
        try
        {
            if (_piece > 0)
            {
                int start;
                while ((start = Interlocked.Add(ref _nextPiece, _piece) - _piece) < _count)
                    _job!.Run(start, Math.Min(_count, start + _piece));
                return;
            }
            var (first, end) = Share(_count, Threads, index, _granule);
            if (first < end) _job!.Run(first, end);
        }
        catch (Exception ex) { Interlocked.CompareExchange(ref _failure, ExceptionDispatchInfo.Capture(ex), null); }
    }

    private void WaitForWorkers()
    {
        long spinUntil = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
        while (Volatile.Read(ref _remaining) != 0)
        {
            if (System.Diagnostics.Stopwatch.GetTimestamp() < spinUntil) { Thread.SpinWait(20); continue; }
            _done.Reset();   // a late Set from the previous job must not end this wait early
            Interlocked.Exchange(ref _callerSleeping, 1);
            if (Volatile.Read(ref _remaining) != 0) _done.Wait();
            Interlocked.Exchange(ref _callerSleeping, 0);
        }
    }

    private void WorkerFinished()
    {
        if (Interlocked.Decrement(ref _remaining) == 0 && Volatile.Read(ref _callerSleeping) == 1)
            _done.Set();
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        Interlocked.Increment(ref _generation);
        foreach (Worker w in _workers) w.Wake.Set();
        foreach (Worker w in _workers) w.Thread.Join();
    }

    private sealed class Worker
    {
        public readonly Thread Thread;
        public readonly WaitSignal Wake = new();
        public int Sleeping;
        private readonly WorkerPool _pool;
        private readonly int _index;

        public Worker(WorkerPool pool, int index)
        {
            _pool = pool; _index = index;
            Thread = new Thread(Loop) { IsBackground = true, Name = $"bitnet-worker-{index}" };
        }

        private void Loop()
        {
            // Generation 0 is "no job yet". Reading the counter here instead would lose the first job
            // when the thread starts after it was published (seen under qemu, where threads start slowly).
            int seen = 0;
            while (true)
            {
                long spinUntil = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
                while (Volatile.Read(ref _pool._generation) == seen)
                {
                    if (System.Diagnostics.Stopwatch.GetTimestamp() < spinUntil) { Thread.SpinWait(20); continue; }
                    Wake.Reset();
                    Interlocked.Exchange(ref Sleeping, 1);
                    if (Volatile.Read(ref _pool._generation) == seen) Wake.Wait();
                    Interlocked.Exchange(ref Sleeping, 0);
                    spinUntil = System.Diagnostics.Stopwatch.GetTimestamp() + SpinTicks;
                }
                seen = Volatile.Read(ref _pool._generation);
                if (_pool._disposed) return;
                _pool.RunShare(_index);
                _pool.WorkerFinished();
            }
        }
    }
}

/// <summary>
/// A manual-reset signal on Monitor.Wait/PulseAll. Unlike ManualResetEventSlim it allocates
/// nothing the first time a thread blocks, so a decode step stays allocation-free even when the
/// machine is busy and the pool's threads fall back from spinning to sleeping.
/// </summary>
internal sealed class WaitSignal
{
    private readonly object _gate = new();
    private bool _set;

    public void Set()
    {
        lock (_gate) { _set = true; Monitor.PulseAll(_gate); }
    }

    public void Reset()
    {
        lock (_gate) _set = false;
    }

    public void Wait()
    {
        lock (_gate)
            while (!_set) Monitor.Wait(_gate);
    }
}
