using System.Runtime.InteropServices;
using BitNet.Inference.Memory;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Tests.Memory;

public class PageWarmupTests
{
    [Fact]
    public unsafe void Populating_unaligned_ranges_covers_every_byte_and_leaves_the_data_unchanged()
    {
        const int bytes = 40 << 20;   // several 16 MB chunks and a ragged end
        byte* buffer = (byte*)NativeMemory.Alloc(bytes);
        try
        {
            new Span<byte>(buffer, bytes).Fill(7);
            using var pool = new WorkerPool(2);
            long covered = PageWarmup.Populate(pool, [((nint)(buffer + 123), bytes - 1000), ((nint)buffer, 10)]);
            Assert.Equal(bytes - 1000 + 10, covered);
            Assert.True(new Span<byte>(buffer, bytes).IndexOfAnyExcept((byte)7) < 0);
        }
        finally { NativeMemory.Free(buffer); }
    }
}
