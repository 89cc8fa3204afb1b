namespace BitNet.Inference.Threading;

/// <summary>
/// Runs a loop's two halves at once: the first on the calling thread, the second on a thread-pool
/// thread, for one-off work at load (decoding a vocabulary, looking up a merge list) where a
/// <see cref="WorkerPool"/> does not exist yet. If the pool has not started the second half by the
/// time the first is done (a busy pool), the calling thread runs it too, so nothing ever waits on a
/// thread the pool has yet to provide.
/// </summary>
internal static class SplitInTwo
{
    /// <summary>body(from, to) over [0, count): two halves when <paramref name="parallel"/> and there are two CPUs, else one call.</summary>
    public static void Run(int count, Action<int, int> body, bool parallel = true)
    {
        ArgumentNullException.ThrowIfNull(body);
        int half = count / 2;
        if (!parallel || half == 0 || Environment.ProcessorCount < 2)
        {
            body(0, count);
            return;
        }
        int claimed = 0;   // 1 once some thread has taken the second half
        Task second = Task.Run(() =>
        {
            if (Interlocked.Exchange(ref claimed, 1) == 0) body(half, count);
        });
        try
        {
            body(0, half);
        }
        catch
        {
            // Never return while the other half may still run: it may read memory the caller frees next.
            Interlocked.Exchange(ref claimed, 1);
            try { second.Wait(); } catch (AggregateException) { }
            throw;
        }
        if (Interlocked.Exchange(ref claimed, 1) == 0) body(half, count);   // the pool had not started it
        second.GetAwaiter().GetResult();   // done, or about to return without work; rethrows its failure
    }
}
