using BitNet.Inference.Model;
using BitNet.Inference.Threading;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Threading;

/// <summary>After warm-up a decode step allocates nothing, on the calling thread or on the pool's threads.</summary>
public class DecodeAllocationTests
{
    /// <summary>Records each pool thread's allocation counter; share i always runs on the same thread.</summary>
    private sealed class AllocationProbe(int threads) : IRangeJob
    {
        public readonly long[] Bytes = new long[threads];
        public void Run(int start, int end) => Bytes[start] = GC.GetAllocatedBytesForCurrentThread();
    }

    [Theory]
    [InlineData(1, LmHeadMode.F16)]
    [InlineData(2, LmHeadMode.F16)]
    [InlineData(2, LmHeadMode.Q8)]
    public void Decode_steps_allocate_nothing_after_warm_up(int threads, LmHeadMode head)
    {
        using var model = BitNetModel.Load(SharedData.OracleModelPath, new ModelLoadOptions { Threads = threads, LmHead = head });
        InferenceState state = model.CreateState(256);
        int[] prompt = [128000, 791, 6864, 315, 9822, 374];
        int[] next = [0];
        model.Forward(state, prompt);
        // Warm-up past the JIT's tier-up call count (30), so tiering work is not charged to the measured steps.
        for (int i = 0; i < 40; i++) { next[0] = 1000 + i; model.Forward(state, next); }

        var probe = new AllocationProbe(model.Pool.Threads);
        model.Pool.For(model.Pool.Threads, probe);
        long[] poolBefore = (long[])probe.Bytes.Clone();
        var stepBytes = new long[32];
        for (int i = 0; i < stepBytes.Length; i++)
        {
            next[0] = 2000 + i;
            long before = GC.GetAllocatedBytesForCurrentThread();
            model.Forward(state, next);
            stepBytes[i] = GC.GetAllocatedBytesForCurrentThread() - before;
        }
        model.Pool.For(model.Pool.Threads, probe);

        Assert.All(stepBytes, bytes => Assert.Equal(0, bytes));
        // Share 0 is the calling thread (checked step by step above); the others are the workers.
        for (int t = 1; t < poolBefore.Length; t++)
            Assert.Equal(0, probe.Bytes[t] - poolBefore[t]);
    }
}
