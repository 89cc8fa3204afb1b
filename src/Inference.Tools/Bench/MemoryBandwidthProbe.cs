using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Bench;

/// <summary>
/// Measures streaming-read bandwidth the way decode uses memory: each thread sums its share of a
/// buffer much larger than the last-level cache (256 MiB by default, 8× a 32 MiB L3), so every pass
/// comes from DRAM. The figure is the
/// ceiling for bytes-per-token × tokens/s.
/// </summary>
public static class MemoryBandwidthProbe
{
    /// <summary>Best-of-<paramref name="passes"/> read bandwidth in bytes/s over a buffer of <paramref name="bufferBytes"/>.</summary>
    public static unsafe double Measure(WorkerPool pool, long bufferBytes = 256L << 20, int passes = 5)
    {
        ArgumentNullException.ThrowIfNull(pool);
        int vectors = (int)(bufferBytes / Vector256<byte>.Count);
        nint buffer = (nint)NativeMemory.AlignedAlloc((nuint)vectors * (nuint)Vector256<byte>.Count, 64);
        try
        {
            NativeMemory.Fill((void*)buffer, (nuint)vectors * 32, 1);   // touch every page first
            var job = new ReadJob(buffer);
            double best = 0;
            for (int p = 0; p < passes; p++)
            {
                long start = Stopwatch.GetTimestamp();
                pool.For(vectors, job, granule: 1024);
                double seconds = Stopwatch.GetElapsedTime(start).TotalSeconds;
                best = Math.Max(best, (double)vectors * Vector256<byte>.Count / seconds);
            }
            GC.KeepAlive(job.Sink);
            return best;
        }
        finally
        {
            NativeMemory.AlignedFree((void*)buffer);
        }
    }

    private sealed class ReadJob(nint buffer) : IRangeJob
    {
        public long Sink;

        public unsafe void Run(int start, int end)
        {
            var p = (Vector256<long>*)buffer;
            Vector256<long> a = default, b = default, c = default, d = default;
            int i = start;
            for (; i + 4 <= end; i += 4)
            {
                a += p[i]; b += p[i + 1]; c += p[i + 2]; d += p[i + 3];
            }
            for (; i < end; i++) a += p[i];
            Interlocked.Add(ref Sink, Vector256.Sum(a + b + c + d));
        }
    }
}
