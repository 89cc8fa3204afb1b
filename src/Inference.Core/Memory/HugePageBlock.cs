using System.Runtime.InteropServices;

namespace BitNet.Inference.Memory;

/// <summary>
/// Native memory for a large table that every token streams (the int8 head, the weight copies):
/// aligned to a transparent huge page and advised MADV_HUGEPAGE before its first write, so the OS
/// can back it with 2 MB pages (fewer page faults while it is filled, one TLB entry per 2 MB while it
/// is read; on some virtual machines, 4 KB pages also cost a slow first pass). Freed by Dispose.
/// </summary>
internal sealed unsafe class HugePageBlock : IDisposable
{
    public const nuint HugePage = 2 << 20;
    private byte* _start;

    public HugePageBlock(long bytes)
    {
        ArgumentOutOfRangeException.ThrowIfNegative(bytes);
        Bytes = bytes;
        nuint size = ((nuint)Math.Max(bytes, 1) + HugePage - 1) & ~(HugePage - 1);
        _start = (byte*)NativeMemory.AlignedAlloc(size, HugePage);
        PageWarmup.PreferHugePages((nint)_start, (long)size);
    }

    /// <summary>The bytes asked for (the block itself is rounded up to whole huge pages).</summary>
    public long Bytes { get; }

    public byte* Start
    {
        get
        {
            ObjectDisposedException.ThrowIf(_start is null, this);
            return _start;
        }
    }

    public bool IsDisposed => _start is null;

    public void Dispose()
    {
        if (_start is null) return;
        NativeMemory.AlignedFree(_start);
        _start = null;
        GC.SuppressFinalize(this);
    }

    ~HugePageBlock() => Dispose();
}
