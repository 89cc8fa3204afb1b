using System.Globalization;

namespace BitNet.Inference.Tests.Model;

/// <summary>What /proc/self/smaps says about this process's mappings of one file (Linux only).</summary>
internal static class Smaps
{
    /// <summary>The Rss of this process's mappings of <paramref name="path"/>.</summary>
    public static long MappedResidentBytes(string path) =>
        Fields(path, "Rss:").Sum(value => 1024 * long.Parse(value.Split(' ')[0], CultureInfo.InvariantCulture));

    /// <summary>The VmFlags of each mapping of <paramref name="path"/> (two-letter codes such as "rd", "hg").</summary>
    public static IEnumerable<string[]> MappingFlags(string path) =>
        Fields(path, "VmFlags:").Select(value => value.Split(' ', StringSplitOptions.RemoveEmptyEntries));

    /// <summary>
    /// How many 4 KiB pages of [start, start + bytes) are mapped in this process (present in its page
    /// tables), from /proc/self/pagemap: bit 63 of each page's 8-byte entry.
    /// </summary>
    public static long PresentPages(nint start, long bytes) => CountPages(start, bytes, entry => (entry >> 63) != 0);

    /// <summary>
    /// How many 4 KiB pages of [start, start + bytes) are mapped and are pages of a file (the page cache)
    /// rather than private memory: pagemap bits 63 (present) and 61 (file page or shared anonymous).
    /// </summary>
    public static long FilePages(nint start, long bytes) => CountPages(start, bytes, entry => (entry >> 63) != 0 && ((entry >> 61) & 1) != 0);

    /// <summary>
    /// Whether /proc/self/pagemap tells this process's file pages from its private ones: a mapped page
    /// of a file reads as a present file page, a written page of private memory as a present private
    /// one. Not under qemu-user (the ARM64 tests), whose guest mappings are not laid out as the host's.
    /// </summary>
    public static bool ReportsPageKinds { get; } = ProbePageKinds();

    private static unsafe bool ProbePageKinds()
    {
        if (!OperatingSystem.IsLinux()) return false;
        string path = Path.Combine(Path.GetTempPath(), "bitnet-pagemap-probe-" + Guid.NewGuid().ToString("N")[..8]);
        try
        {
            File.WriteAllBytes(path, new byte[8192]);
            using var map = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
            using var view = map.CreateViewAccessor(0, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
            byte* pointer = null;
            view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            byte* page = (byte*)System.Runtime.InteropServices.NativeMemory.AlignedAlloc(4096, 4096);
            try
            {
                nint filePage = (nint)(pointer + view.PointerOffset);
                _ = Volatile.Read(ref *(byte*)filePage);
                *page = 1;
                return FilePages(filePage, 4096) == 1 && PresentPages((nint)page, 4096) == 1 && FilePages((nint)page, 4096) == 0;
            }
            finally
            {
                System.Runtime.InteropServices.NativeMemory.AlignedFree(page);
                view.SafeMemoryMappedViewHandle.ReleasePointer();
            }
        }
        catch (IOException) { return false; }
        catch (UnauthorizedAccessException) { return false; }
        finally
        {
            try { File.Delete(path); } catch (IOException) { }
        }
    }

    private static long CountPages(nint start, long bytes, Func<ulong, bool> counts)
    {
        const long page = 4096;
        long first = (long)start / page, last = ((long)start + bytes + page - 1) / page;
        var entries = new byte[(last - first) * 8];
        using (var pagemap = new FileStream("/proc/self/pagemap", FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1, FileOptions.None))
        {
            pagemap.Position = first * 8;
            pagemap.ReadExactly(entries);
        }
        long count = 0;
        for (int i = 0; i < entries.Length; i += 8)
            if (counts(BitConverter.ToUInt64(entries, i))) count++;
        return count;
    }

    /// <summary>
    /// How many bytes of the file's page cache are 2 MB folios: FilePmdMapped of a fresh mapping advised
    /// MADV_HUGEPAGE after mapping all of it (the file must be fully cached: mapping reads in what is
    /// not). Per file, so other tests writing files meanwhile do not count.
    /// </summary>
    public static unsafe long HugeFolioBytes(string path)
    {
        long bytes = new FileInfo(path).Length;
        using var map = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        using var view = map.CreateViewAccessor(0, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        try
        {
            nint start = (nint)(pointer + view.PointerOffset);
            BitNet.Inference.Memory.PageWarmup.PreferHugePages(start, (bytes + 4095) / 4096 * 4096);
            BitNet.Inference.Memory.PageWarmup.PopulateOne(start, bytes);
            return BitNet.Inference.Memory.HugeFolioProbe.PmdMappedBytes(start) ?? 0;
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
    }

    /// <summary>The value after <paramref name="field"/> in each mapping of <paramref name="path"/>.</summary>
    private static List<string> Fields(string path, string field)
    {
        var values = new List<string>();
        bool inFile = false;
        foreach (string line in File.ReadLines("/proc/self/smaps"))
        {
            if (line.Length > 0 && char.IsAsciiHexDigit(line[0]) && line.Contains('-'))
                inFile = line.EndsWith(path, StringComparison.Ordinal);
            else if (inFile && line.StartsWith(field, StringComparison.Ordinal))
                values.Add(line[field.Length..].Trim());
        }
        return values;
    }
}
