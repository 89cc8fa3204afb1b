using BitNet.Inference.Threading;

namespace BitNet.Inference.Tests.Threading;

public class SplitInTwoTests
{
    [Theory]
    [InlineData(0, true)]
    [InlineData(1, true)]
    [InlineData(2, true)]
    [InlineData(100_001, true)]
    [InlineData(100_001, false)]
    public void Every_index_runs_exactly_once(int count, bool parallel)
    {
        var runs = new int[count];
        int calls = 0;
        SplitInTwo.Run(count, (from, to) =>
        {
            Interlocked.Increment(ref calls);
            for (int i = from; i < to; i++) Interlocked.Increment(ref runs[i]);
        }, parallel);
        Assert.All(runs, r => Assert.Equal(1, r));
        Assert.InRange(calls, count == 0 ? 0 : 1, 2);
        if (!parallel || count < 2) Assert.True(calls <= 1);
    }

    [Fact]
    public void A_failing_first_half_returns_only_after_the_second_half_ended()
    {
        int secondRunning = 0, secondEnded = 0;
        Assert.Throws<InvalidOperationException>(() => SplitInTwo.Run(10, (from, _) =>
        {
            if (from == 0)
            {
                SpinWait.SpinUntil(() => Volatile.Read(ref secondRunning) == 1, TimeSpan.FromSeconds(5));
                throw new InvalidOperationException("first");
            }
            Volatile.Write(ref secondRunning, 1);
            Thread.Sleep(200);
            Volatile.Write(ref secondEnded, 1);
        }));
        Assert.True(secondRunning == 0 || Volatile.Read(ref secondEnded) == 1, "returned while the second half was still running");
    }

    [Fact]
    public void A_failure_in_either_half_reaches_the_caller()
    {
        Assert.Throws<InvalidOperationException>(() => SplitInTwo.Run(10, (from, _) => { if (from == 0) throw new InvalidOperationException("first"); }));
        Assert.Throws<InvalidOperationException>(() => SplitInTwo.Run(10, (from, _) => { if (from == 5) throw new InvalidOperationException("second"); }));
    }
}
