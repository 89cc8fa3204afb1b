using BitNet.Inference.Api;

namespace BitNet.Hosts.Tests;

public sealed class RequestQueueTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    [Fact]
    public async Task Waiters_are_served_in_arrival_order_and_one_at_a_time()
    {
        var queue = new RequestQueue(maxWaiting: 8);
        RequestQueue.Lease first = await queue.EnterAsync(Ct);
        var order = new List<int>();
        var waiters = new List<Task>();
        for (int i = 0; i < 5; i++)
        {
            int id = i;
            waiters.Add(Task.Run(async () =>
            {
                using RequestQueue.Lease lease = await queue.EnterAsync(Ct);
                lock (order) order.Add(id);
            }, Ct));
            // Arrival order is made certain by waiting until this waiter is queued before the next starts
            // (timed delays are not an order on a loaded machine).
            for (var spin = System.Diagnostics.Stopwatch.StartNew(); queue.Waiting < id + 1; await Task.Delay(5, Ct))
                Assert.True(spin.Elapsed < TimeSpan.FromSeconds(10), $"waiter {id} never queued");
        }
        Assert.Equal(5, queue.Waiting);
        first.Dispose();
        await Task.WhenAll(waiters);
        Assert.Equal([0, 1, 2, 3, 4], order);
        Assert.False(queue.Busy);
    }

    [Fact]
    public async Task A_full_queue_refuses_with_429_and_a_cancelled_waiter_gives_up_its_place()
    {
        var queue = new RequestQueue(maxWaiting: 1);
        RequestQueue.Lease running = await queue.EnterAsync(Ct);
        using var cancel = new CancellationTokenSource();
        ValueTask<RequestQueue.Lease> waiting = queue.EnterAsync(cancel.Token);
        ApiException full = await Assert.ThrowsAsync<ApiException>(async () => await queue.EnterAsync(Ct));
        Assert.Equal(429, full.Status);
        Assert.NotNull(full.RetryAfter);

        cancel.Cancel();
        await Assert.ThrowsAnyAsync<OperationCanceledException>(async () => await waiting);
        Assert.Equal(0, queue.Waiting);
        ValueTask<RequestQueue.Lease> next = queue.EnterAsync(Ct); // the freed place is usable
        running.Dispose();
        (await next).Dispose();
        Assert.False(queue.Busy);
    }
}

public sealed class RequestQueueSlotTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    [Fact]
    public async Task Up_to_the_slots_run_at_once_and_the_next_waiter_runs_when_one_leaves()
    {
        var queue = new RequestQueue(maxWaiting: 1, slots: 2);
        RequestQueue.Lease a = await queue.EnterAsync(Ct), b = await queue.EnterAsync(Ct);
        Assert.Equal(2, queue.Running);
        ValueTask<RequestQueue.Lease> third = queue.EnterAsync(Ct);
        Assert.False(third.IsCompleted);
        Assert.Equal(429, (await Assert.ThrowsAsync<ApiException>(async () => await queue.EnterAsync(Ct))).Status);
        a.Dispose();
        RequestQueue.Lease c = await third;
        Assert.Equal(2, queue.Running);
        b.Dispose();
        c.Dispose();
        Assert.Equal(0, queue.Running);
        Assert.False(queue.Busy);
    }

    [Fact]
    public async Task Raising_the_slots_lets_waiters_in_and_lowering_them_drains_before_admitting()
    {
        var queue = new RequestQueue(maxWaiting: 4);
        RequestQueue.Lease first = await queue.EnterAsync(Ct);
        ValueTask<RequestQueue.Lease> second = queue.EnterAsync(Ct);
        Assert.False(second.IsCompleted);
        queue.Slots = 3;
        RequestQueue.Lease admitted = await second;
        Assert.Equal(2, queue.Running);

        queue.Slots = 1;
        ValueTask<RequestQueue.Lease> next = queue.EnterAsync(Ct);
        first.Dispose();                 // 1 still runs: that fills the single slot
        Assert.False(next.IsCompleted);
        admitted.Dispose();
        (await next).Dispose();
        Assert.Equal(0, queue.Running);
    }
}
