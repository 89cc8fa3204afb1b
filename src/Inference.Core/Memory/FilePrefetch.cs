using System.Diagnostics;

namespace BitNet.Inference.Memory;

/// <summary>Reading a model file into the page cache before the engine maps it.</summary>
public static class FilePrefetch
{
    /// <summary>
    /// Brings the whole file into the page cache once, front to back, 8 MiB at a time, and returns how
    /// long it took. On Lambda the container image is fetched in 512 KiB chunks on first touch; large
    /// sequential reads let the block device prefetch, where the engine's page faults during the
    /// first prompt would arrive in random order, 4 KiB at a time. The file is read through a mapping
    /// advised MADV_HUGEPAGE, each piece unmapped as soon as it is in: where the kernel and filesystem
    /// cache files in large folios (Linux 6.x, ext4/xfs) the pages not cached yet come in as 2 MB
    /// folios throughout (plain reads start small and grow), so the model can then start on the
    /// mapping (<see cref="WeightStorage.Auto"/>). Pages already cached stay as they are.
    /// </summary>
    public static unsafe TimeSpan Run(string path)
    {
        var clock = Stopwatch.StartNew();
        long bytes = new FileInfo(path).Length;
        if (bytes == 0) return clock.Elapsed;
        const long piece = 8L << 20;
        using var map = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(
            path, FileMode.Open, null, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        using var view = map.CreateViewAccessor(0, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        try
        {
            nint start = (nint)(pointer + view.PointerOffset);
            PageWarmup.PreferHugePages(start, (bytes + 4095) / 4096 * 4096);
            for (long offset = 0; offset < bytes; offset += piece)
            {
                long length = Math.Min(piece, bytes - offset);
                PageWarmup.PopulateOne(start + (nint)offset, length);
                PageWarmup.ReleaseMapped(start + (nint)offset, length);   // keep the resident set small
            }
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
        return clock.Elapsed;
    }
}
