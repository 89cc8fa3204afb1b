namespace BitNet.Inference.Api;

/// <summary>
/// First come, first served access to the model: up to <see cref="Slots"/> requests run (the
/// generator's parallelism: they decode together), at most <see cref="MaxWaiting"/> wait in arrival
/// order, any more are refused at once (429). A waiter whose client leaves or whose deadline passes
/// gives up its place. (SemaphoreSlim does not promise FIFO, hence this small queue.)
/// </summary>
public sealed class RequestQueue(int maxWaiting, int slots = 1)
{
    private readonly object _lock = new();
    private readonly LinkedList<TaskCompletionSource<Lease>> _waiting = new();
    private int _running;
    private int _slots = Math.Max(1, slots);

    public int MaxWaiting { get; } = maxWaiting;

    /// <summary>Requests that may run at once (at least 1). Raising it lets waiters in.</summary>
    public int Slots
    {
        get { lock (_lock) return _slots; }
        set
        {
            ArgumentOutOfRangeException.ThrowIfLessThan(value, 1);
            List<TaskCompletionSource<Lease>>? admitted = null;
            lock (_lock)
            {
                _slots = value;
                while (_running < _slots && _waiting.First is { } first)
                {
                    _waiting.RemoveFirst();
                    _running++;
                    (admitted ??= []).Add(first.Value);
                }
            }
            if (admitted is not null)
                foreach (var waiter in admitted)
                    if (!waiter.TrySetResult(new Lease(this))) Release();
        }
    }

    public int Waiting { get { lock (_lock) return _waiting.Count; } }
    /// <summary>Requests running now.</summary>
    public int Running { get { lock (_lock) return _running; } }
    public bool Busy { get { lock (_lock) return _running > 0; } }

    /// <summary>Waits for the model. Throws <see cref="ApiException"/> 429 when the queue is full and
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> fires first.</summary>
    public async ValueTask<Lease> EnterAsync(CancellationToken cancellationToken)
    {
        LinkedListNode<TaskCompletionSource<Lease>> node;
        lock (_lock)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (_running < _slots && _waiting.Count == 0)
            {
                _running++;
                return new Lease(this);
            }
            if (_waiting.Count >= MaxWaiting)
                throw ApiException.QueueFull(MaxWaiting);
            node = _waiting.AddLast(new TaskCompletionSource<Lease>(TaskCreationOptions.RunContinuationsAsynchronously));
        }

        await using var registration = cancellationToken.Register(() =>
        {
            lock (_lock)
            {
                if (node.List is null)
                    return; // already granted: the caller owns a lease and will release it
                _waiting.Remove(node);
            }
            node.Value.TrySetCanceled(cancellationToken);
        });
        return await node.Value.Task.ConfigureAwait(false);
    }

    private void Release()
    {
        TaskCompletionSource<Lease>? next = null;
        lock (_lock)
        {
            if (_running <= _slots && _waiting.First is { } first)
            {
                _waiting.RemoveFirst();
                next = first.Value;   // the running count passes to it
            }
            else
            {
                _running--;
            }
        }
        if (next is not null && !next.TrySetResult(new Lease(this)))
            Release();
    }

    /// <summary>The right to run one generation; dispose exactly once to hand the model to the next waiter.</summary>
    public sealed class Lease(RequestQueue queue) : IDisposable
    {
        private int _released;

        public void Dispose()
        {
            if (Interlocked.Exchange(ref _released, 1) == 0)
                queue.Release();
        }
    }
}
