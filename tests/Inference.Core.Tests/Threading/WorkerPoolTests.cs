using BitNet.Inference.Kernels;
using BitNet.Inference.Threading;
using static BitNet.Inference.Tests.Kernels.KernelTestData;

namespace BitNet.Inference.Tests.Threading;

public class WorkerPoolTests
{
    private sealed class MarkJob(int[] hits) : IRangeJob
    {
        public void Run(int start, int end)
        {
            for (int i = start; i < end; i++) Interlocked.Increment(ref hits[i]);
        }
    }

    [Theory]
    [InlineData(1, 1, 1)]
    [InlineData(2, 1000, 4)]
    [InlineData(3, 7, 4)]
    [InlineData(4, 1, 1)]
    [InlineData(4, 130, 64)]
    public void Every_index_is_run_exactly_once(int threads, int count, int granule)
    {
        using var pool = new WorkerPool(threads);
        var hits = new int[count];
        for (int repeat = 0; repeat < 50; repeat++) pool.For(count, new MarkJob(hits), granule);
        Assert.All(hits, h => Assert.Equal(50, h));
    }

    [Theory]
    [InlineData(10, 3, 4)]
    [InlineData(6912, 2, 4)]
    [InlineData(5, 4, 1)]
    public void Shares_are_contiguous_disjoint_and_aligned_to_the_granule(int count, int threads, int granule)
    {
        int expectedStart = 0;
        for (int i = 0; i < threads; i++)
        {
            var (start, end) = WorkerPool.Share(count, threads, i, granule);
            Assert.Equal(expectedStart, start);
            Assert.True(start % granule == 0 || start == count);
            expectedStart = end;
        }
        Assert.Equal(count, expectedStart);
    }

    [Theory]
    [InlineData(1, 1000, 256)]
    [InlineData(2, 1000, 256)]
    [InlineData(2, 100, 256)]
    [InlineData(3, 7, 1)]
    [InlineData(4, 130, 64)]
    public void Pieces_run_every_index_exactly_once(int threads, int count, int piece)
    {
        using var pool = new WorkerPool(threads);
        var hits = new int[count];
        for (int repeat = 0; repeat < 50; repeat++) pool.ForPieces(count, new MarkJob(hits), piece);
        Assert.All(hits, h => Assert.Equal(50, h));
    }

    private sealed class RecordJob(int slowPieceMs) : IRangeJob
    {
        public readonly List<(int Start, int End, bool Caller)> Ranges = [];
        public int CallerThread = Environment.CurrentManagedThreadId;

        public void Run(int start, int end)
        {
            bool caller = Environment.CurrentManagedThreadId == CallerThread;
            lock (Ranges) Ranges.Add((start, end, caller));
            if (!caller) Thread.Sleep(slowPieceMs);
        }
    }

    [Fact]
    public void Pieces_start_on_multiples_of_the_piece_size_and_end_at_the_next_or_at_the_count()
    {
        using var pool = new WorkerPool(3);
        var job = new RecordJob(slowPieceMs: 0);
        pool.ForPieces(1000, job, 64);
        Assert.All(job.Ranges, r =>
        {
            Assert.Equal(0, r.Start % 64);
            Assert.Equal(Math.Min(1000, r.Start + 64), r.End);
        });
        Assert.Equal(16, job.Ranges.Count);
    }

    /// <summary>What pieces are for: a worker slowed down (here it sleeps on each piece it takes, as a
    /// thread whose core another process holds would stall) leaves the rest to the calling thread, where
    /// <see cref="WorkerPool.For"/> would have made the caller wait for the worker's fixed half.</summary>
    [Fact]
    public void A_slowed_thread_takes_fewer_pieces_and_the_others_take_the_rest()
    {
        using var pool = new WorkerPool(2);
        var job = new RecordJob(slowPieceMs: 200);
        pool.ForPieces(40, job, 1);
        Assert.Equal(40, job.Ranges.Count);
        Assert.True(job.Ranges.Count(r => r.Caller) >= 30, $"the caller ran {job.Ranges.Count(r => r.Caller)} of 40 pieces");
    }

    [Fact]
    public void An_exception_in_a_piece_reaches_the_caller_and_the_pool_keeps_working()
    {
        using var pool = new WorkerPool(2);
        var ex = Assert.Throws<InvalidOperationException>(() => pool.ForPieces(100, new ThrowingJob(), 10));
        Assert.Equal("share failed", ex.Message);
        var hits = new int[100];
        pool.ForPieces(100, new MarkJob(hits), 10);
        Assert.All(hits, h => Assert.Equal(1, h));
        Assert.Throws<ArgumentOutOfRangeException>(() => pool.ForPieces(100, new MarkJob(hits), 0));
    }

    private sealed class MatMulJob(KernelSet set, byte[] weights, int columns, sbyte[] q, int tokens, int rows, int[] dots) : IRangeJob
    {
        public void Run(int start, int end)
        {
            // Each share writes its own token-major block; gathered below into [t, row] order.
            var local = new int[tokens * (end - start)];
            set.DotI2s(weights, columns, q, tokens, start, end - start, local);
            for (int t = 0; t < tokens; t++)
                for (int r = start; r < end; r++)
                    dots[t * rows + r] = local[t * (end - start) + (r - start)];
        }
    }

    [Fact]
    public void Matmul_results_do_not_depend_on_the_thread_count()
    {
        KernelSet set = KernelSelector.Select();
        var rng = new Random(5);
        const int rows = 203, columns = 2560, tokens = 5;
        byte[] weights = RandomCodes(rng, rows, columns);
        sbyte[] q = RandomActivations(rng, tokens, columns);
        int[]? first = null;
        foreach (int threads in new[] { 1, 2, 3, 4 })
        {
            using var pool = new WorkerPool(threads);
            var dots = new int[tokens * rows];
            pool.For(rows, new MatMulJob(set, weights, columns, q, tokens, rows, dots), granule: 4);
            first ??= dots;
            Assert.Equal(first, dots);
            var pieceDots = new int[tokens * rows];
            pool.ForPieces(rows, new MatMulJob(set, weights, columns, q, tokens, rows, pieceDots), piece: 16);
            Assert.Equal(first, pieceDots);
        }
        Assert.Equal(Reference(weights, columns, q, tokens, 0, rows), first);
    }

    private sealed class ThrowingJob : IRangeJob
    {
        public void Run(int start, int end)
        {
            if (start > 0) throw new InvalidOperationException("share failed");
        }
    }

    [Fact]
    public void An_exception_in_a_worker_share_reaches_the_caller_and_the_pool_keeps_working()
    {
        using var pool = new WorkerPool(2);
        var ex = Assert.Throws<InvalidOperationException>(() => pool.For(100, new ThrowingJob()));
        Assert.Equal("share failed", ex.Message);
        var hits = new int[100];
        pool.For(100, new MarkJob(hits));
        Assert.All(hits, h => Assert.Equal(1, h));
    }

    [Fact]
    public void Workers_that_went_to_sleep_wake_for_the_next_job()
    {
        using var pool = new WorkerPool(3);
        var hits = new int[64];
        pool.For(64, new MarkJob(hits));
        Thread.Sleep(50);   // far past the spin window: workers block on their events
        pool.For(64, new MarkJob(hits));
        Assert.All(hits, h => Assert.Equal(2, h));
    }

    private sealed class NoOpJob : IRangeJob
    {
        public void Run(int start, int end) { }
    }

    [Fact]
    public void Dispatching_a_reused_job_allocates_nothing_on_the_calling_thread()
    {
        using var pool = new WorkerPool(2);
        var job = new NoOpJob();
        // Both paths warmed up: a first call (JIT, tiering stubs) may allocate on this thread, a dispatch must not.
        for (int i = 0; i < 200; i++) pool.For(1000, job, 4);
        for (int i = 0; i < 200; i++) pool.ForPieces(1000, job, 64);
        // A per-dispatch allocation shows in every window. One-off runtime work on this thread (seen once in a
        // full parallel run: 8 KB) does not repeat, so up to three windows are measured and one must be clean.
        long allocated = 0;
        for (int window = 0; window < 3; window++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 1000; i++) pool.For(1000, job, 4);
            for (int i = 0; i < 1000; i++) pool.ForPieces(1000, job, 64);
            allocated = GC.GetAllocatedBytesForCurrentThread() - before;
            if (allocated == 0) break;
        }
        Assert.Equal(0, allocated);
    }

    [Fact]
    public void A_pool_needs_at_least_one_thread()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => new WorkerPool(0));
    }
}
