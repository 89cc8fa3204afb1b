using BitNet.Inference.Generation;
using BitNet.Inference.Model;
using BitNet.Inference.Sampling;
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
    [InlineData(2, LmHeadMode.Screened)]
    public void Decode_steps_allocate_nothing_after_warm_up(int threads, LmHeadMode head)
    {
        using var model = BitNetModel.Load(SharedData.OracleModelPath, new ModelLoadOptions { Threads = threads, LmHead = head });
        InferenceState state = model.CreateState(256);
        int[] prompt = [128000, 791, 6864, 315, 9822, 374];
        int[] next = [0];
        // The screened head decodes through the sampler's candidate path (top-k 40, a fixed seed).
        var sampler = new Sampler(new SamplingOptions { Seed = 3 }, model.Config.VocabSize);
        int[] history = new int[512];
        void Step(ReadOnlySpan<int> tokens)
        {
            if (head != LmHeadMode.Screened) { model.Forward(state, tokens); return; }
            tokens.CopyTo(history.AsSpan(state.Position));
            NextToken.Evaluate(model, state, sampler, tokens, history.AsSpan(0, state.Position + tokens.Length), allowScreening: true, out _);
        }
        Step(prompt);
        // Warm-up past the JIT's tier-up call count (30), so tiering work is not charged to the measured steps.
        for (int i = 0; i < 40; i++) { next[0] = 1000 + i; Step(next); }

        var probe = new AllocationProbe(model.Pool.Threads);
        // A per-step allocation shows up in every window of 32 steps. One-off runtime work (a tiered-JIT
        // background thread being started from a hot thread, seen under qemu) does not repeat, so up to
        // three windows are measured and one of them must be entirely clean, on every thread.
        var stepBytes = new long[32];
        var poolBytes = new long[model.Pool.Threads];
        for (int window = 0; window < 3; window++)
        {
            model.Pool.For(model.Pool.Threads, probe);
            probe.Bytes.CopyTo(poolBytes, 0);
            for (int i = 0; i < stepBytes.Length; i++)
            {
                next[0] = 2000 + i;
                long before = GC.GetAllocatedBytesForCurrentThread();
                Step(next);
                stepBytes[i] = GC.GetAllocatedBytesForCurrentThread() - before;
            }
            model.Pool.For(model.Pool.Threads, probe);
            // Share 0 is the calling thread (checked step by step); the others are the workers.
            for (int t = 0; t < poolBytes.Length; t++) poolBytes[t] = t == 0 ? 0 : probe.Bytes[t] - poolBytes[t];
            if (stepBytes.All(b => b == 0) && poolBytes.All(b => b == 0)) break;
            state.Rewind(state.Position - stepBytes.Length);
        }

        Assert.All(stepBytes, bytes => Assert.Equal(0, bytes));
        Assert.All(poolBytes, bytes => Assert.Equal(0, bytes));
        if (head == LmHeadMode.Screened) Assert.True(state.ExactRowsComputed > 0, "the steps should have taken the candidate path");
    }
}
