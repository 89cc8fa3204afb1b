namespace BitNet.Inference.Api;

/// <summary>
/// First come, first served access to the one model: one request runs, at most
/// <see cref="MaxWaiting"/> wait in arrival order, any more are refused at once (429). A waiter
/// whose client leaves or whose deadline passes gives up its place. (SemaphoreSlim does not
/// promise FIFO, hence this small queue.)
/// </summary>
public sealed class RequestQueue(int maxWaiting)
{
    private readonly object _lock = new();
    private readonly LinkedList<TaskCompletionSource<Lease>> _waiting = new();
    private bool _running;

    public int MaxWaiting { get; } = maxWaiting;

    public int Waiting { get { lock (_lock) return _waiting.Count; } }
    public bool Busy { get { lock (_lock) return _running; } }

    /// <summary>Waits for the model. Throws <see cref="ApiException"/> 429 when the queue is full and
    /// <see cref="OperationCanceledException"/> when <paramref name="cancellationToken"/> fires first.</summary>
    public async ValueTask<Lease> EnterAsync(CancellationToken cancellationToken)
    {
        LinkedListNode<TaskCompletionSource<Lease>> node;
        lock (_lock)
        {
            cancellationToken.ThrowIfCancellationRequested();
            if (!_running)
            {
                _running = true;
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
            if (_waiting.First is { } first)
            {
                _waiting.RemoveFirst();
                next = first.Value;
            }
            else
            {
                _running = false;
            }
        }
        next?.TrySetResult(new Lease(this));
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
