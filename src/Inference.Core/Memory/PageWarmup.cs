using System.Runtime.InteropServices;

using BitNet.Inference.Threading;

namespace BitNet.Inference.Memory;

/// <summary>
/// Maps the pages of the memory-mapped weights into the process before the first token. With the
/// file in the page cache, the first forward pass otherwise takes one page fault per 4 KB page
/// (≈290,000 for 2B4T); madvise(MADV_POPULATE_READ) (Linux 5.14+) maps them in
/// bulk, and the worker threads do it in parallel, chunk by chunk. Elsewhere, or when the kernel
/// refuses, one byte per page is read instead. Nothing is copied: RSS is the same as after a
/// first token.
/// </summary>
internal static unsafe class PageWarmup
{
    private const long ChunkBytes = 16L << 20;
    private static volatile bool _madviseUsable = true;

    /// <summary>Populate every range (start, bytes); returns the bytes covered.</summary>
    public static long Populate(WorkerPool pool, IReadOnlyList<(nint Start, long Bytes)> ranges)
    {
        ArgumentNullException.ThrowIfNull(pool);
        var chunks = new List<(nint, long)>();
        long total = 0;
        foreach (var (start, bytes) in ranges)
        {
            total += bytes;
            for (long offset = 0; offset < bytes; offset += ChunkBytes)
                chunks.Add((start + (nint)offset, Math.Min(ChunkBytes, bytes - offset)));
        }
        pool.For(chunks.Count, new Job(chunks));
        return total;
    }

    private sealed class Job(List<(nint Start, long Bytes)> chunks) : IRangeJob
    {
        public void Run(int start, int end)
        {
            for (int i = start; i < end; i++) PopulateOne(chunks[i].Start, chunks[i].Bytes);
        }
    }

    internal static void PopulateOne(nint start, long bytes)
    {
        const long page = 4096;
        nint aligned = (nint)((long)start & ~(page - 1));
        long length = bytes + ((long)start - (long)aligned);
        if (TryMadvise(aligned, length, LinuxMemory.MadvPopulateRead)) return;
        // Fallback: touch one byte per page (a read fault maps it, and its neighbours, from the cache).
        TouchPages(start, bytes);
    }

    /// <summary>Read one byte of every 4 KiB page of [start, start + bytes) and its last byte.</summary>
    public static void TouchPages(nint start, long bytes)
    {
        const long page = 4096;
        byte* p = (byte*)start;
        int sink = 0;
        for (long offset = 0; offset < bytes; offset += page) sink += Volatile.Read(ref p[offset]);
        if (bytes > 0) sink += Volatile.Read(ref p[bytes - 1]);
        GC.KeepAlive(sink);
    }

    /// <summary>
    /// Drop this process's mapping of file-backed pages (MADV_DONTNEED): they leave our resident set,
    /// stay in the page cache, and a later read maps them again. False where that is not possible.
    /// Only for memory-mapped file ranges — on anonymous memory it would discard the contents.
    /// </summary>
    public static bool ReleaseMapped(nint start, long bytes) => AdviseWholePages(start, bytes, LinuxMemory.MadvDontNeed);

    /// <summary>
    /// Ask for transparent huge pages on a range (MADV_HUGEPAGE), best effort. Anonymous memory then
    /// gets 2 MB pages as it is touched. On a file mapping (Linux 6.x, a filesystem with large folios
    /// such as ext4 or xfs) pages the page cache reads through this mapping come in 2 MB folios and are
    /// mapped whole; pages already cached in 4 KB pieces stay as they are.
    /// </summary>
    public static bool PreferHugePages(nint start, long bytes) => AdviseWholePages(start, bytes, LinuxMemory.MadvHugePage);

    /// <summary>madvise on the whole pages inside [start, start + bytes): the range is rounded inwards,
    /// so pages shared with neighbouring data are left alone.</summary>
    private static bool AdviseWholePages(nint start, long bytes, int advice)
    {
        const long page = 4096;
        long first = ((long)start + page - 1) & ~(page - 1);
        long end = ((long)start + bytes) & ~(page - 1);
        return end > first && TryMadvise((nint)first, end - first, advice);
    }

    /// <summary>madvise on Linux; false elsewhere, when the kernel refuses, or when libc cannot be loaded.</summary>
    private static bool TryMadvise(nint start, long bytes, int advice)
    {
        if (!OperatingSystem.IsLinux() || !_madviseUsable) return false;
        try { return LinuxMemory.Madvise(start, (nuint)bytes, advice) == 0; }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            _madviseUsable = false;   // no loadable libc by that name (e.g. a minimal image)
            return false;
        }
    }

}
