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
        var waiters = Enumerable.Range(0, 5).Select(async i =>
        {
            await Task.Delay(i * 20, Ct); // arrive in order
            using RequestQueue.Lease lease = await queue.EnterAsync(Ct);
            lock (order) order.Add(i);
        }).ToArray();
        await Task.Delay(150, Ct);
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
