using System.Runtime.InteropServices;

namespace BitNet.Inference.Memory;

/// <summary>
/// Which parts of this process's address space are mapped by huge (2 MB) page-table entries, asked of
/// the kernel with the PAGEMAP_SCAN ioctl on /proc/self/pagemap (Linux 6.7+; unprivileged for a
/// process's own memory, and fast). <see cref="Model.WeightStorage.Move"/> uses it to find the windows
/// of a file mapping that the page cache serves in 4 KB pages, however it came to that: a file cached in
/// 2 MB folios can lose some of them over time with nothing evicted, and passes over 4 KB file pages are
/// several times slower on some virtual machines (docs/weight-storage.md).
/// </summary>
internal static unsafe class PageTableScan
{
    // linux/fs.h: struct pm_scan_arg, struct page_region, PAGE_IS_* categories.
    private const ulong PageIsPresent = 1 << 3, PageIsHuge = 1 << 6;
    // _IOWR('f', 16, struct pm_scan_arg): read + write, the 96-byte argument, type 'f', number 16.
    private const ulong PagemapScan = (3UL << 30) | (96UL << 16) | ((ulong)'f' << 8) | 16;
    private const int RegionsPerCall = 512;

    [StructLayout(LayoutKind.Sequential)]
    private struct ScanArguments
    {
        public ulong Size, Flags, Start, End, WalkEnd, Vector, VectorLength, MaxPages;
        public ulong CategoryInverted, CategoryMask, CategoryAnyOfMask, ReturnMask;
    }

    [StructLayout(LayoutKind.Sequential)]
    private struct PageRegion
    {
        public ulong Start, End, Categories;
    }

    private static volatile bool _unavailable;

    private static readonly Lazy<bool> AvailableHere = new(() => SmallPageRanges(0x10000, 4096) is not null);

    /// <summary>Whether <see cref="SmallPageRanges"/> can answer here (asks the kernel once).</summary>
    public static bool IsAvailable => AvailableHere.Value;

    /// <summary>
    /// The parts of [<paramref name="start"/>, + <paramref name="bytes"/>) not mapped by huge pages (4 KB
    /// entries, or nothing mapped yet), in address order; null when the kernel cannot tell (not Linux,
    /// a kernel before 6.7, an emulator that does not pass the ioctl on).
    /// </summary>
    public static List<(nint Start, long Bytes)>? SmallPageRanges(nint start, long bytes)
    {
        if (!OperatingSystem.IsLinux() || _unavailable) return null;
        var ranges = new List<(nint, long)>();
        if (bytes <= 0) return ranges;
        Microsoft.Win32.SafeHandles.SafeFileHandle pagemap;
        try { pagemap = File.OpenHandle("/proc/self/pagemap", FileMode.Open, FileAccess.Read); }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException) { _unavailable = true; return null; }
        using (pagemap)
        {
            int fd = (int)pagemap.DangerousGetHandle();
            var regions = new PageRegion[RegionsPerCall];
            ulong at = (ulong)start, end = (ulong)start + (ulong)bytes;
            fixed (PageRegion* vector = regions)
            {
                while (at < end)
                {
                    // Pages whose HUGE category, inverted, is set: every page that is not huge.
                    var arguments = new ScanArguments
                    {
                        Size = 96,
                        Start = at,
                        End = end,
                        Vector = (ulong)vector,
                        VectorLength = RegionsPerCall,
                        CategoryInverted = PageIsHuge,
                        CategoryMask = PageIsHuge,
                        // Present as well: runs then break where mapped and unmapped pages meet (merged again below),
                        // which keeps the paging over several calls exercised by tests with small mappings.
                        ReturnMask = PageIsHuge | PageIsPresent,
                    };
                    int found;
                    try { found = LinuxMemory.Ioctl(fd, (nuint)PagemapScan, &arguments); }
                    catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException) { found = -1; }
                    if (found < 0)
                    {
                        _unavailable = true;   // ENOTTY / EINVAL: this kernel has no PAGEMAP_SCAN
                        return null;
                    }
                    for (int i = 0; i < found; i++)
                    {
                        var (from, to) = ((long)regions[i].Start, (long)regions[i].End);
                        if (ranges.Count > 0 && ranges[^1].Item1 + ranges[^1].Item2 == from)
                            ranges[^1] = (ranges[^1].Item1, to - ranges[^1].Item1);   // the kernel may split one run over calls
                        else
                            ranges.Add(((nint)from, to - from));
                    }
                    if (arguments.WalkEnd <= at) break;   // no progress: should not happen
                    at = arguments.WalkEnd;
                }
            }
            return ranges;
        }
    }
}
