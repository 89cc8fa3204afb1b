using System.Globalization;

namespace BitNet.Inference.Memory;

/// <summary>
/// Tells whether a file mapping reads the page cache's 2 MB folios whole (one page-table entry per
/// 2 MB, "FilePmdMapped" in /proc/self/smaps) or in 4 KB pieces. That depends on how the file came
/// into the cache: large reads or a MADV_HUGEPAGE mapping bring it in as 2 MB folios (Linux 6.x with
/// ext4 or xfs), small writes (a file just written or copied) leave 4 KB pages. It matters for
/// <see cref="Model.WeightStorage.Auto"/>: on some virtual machines, passes over 4 KB file pages are
/// many times slower than over the same bytes in 2 MB pages.
/// </summary>
internal static class HugeFolioProbe
{
    public const long HugePage = 2L << 20;

    /// <summary>Half or more of the sampled windows whole: enough for a move that takes the rest at load (<see cref="CountWholeHugeFolios"/>).</summary>
    public static bool MostlyWhole(int windows, int whole) => windows > 0 && 2 * whole >= windows;

    /// <summary>
    /// Map the first, middle and last whole 2 MB-aligned window of each range (the ranges must lie in one file mapping advised
    /// MADV_HUGEPAGE, none of it touched yet) and report whether every window came in as a whole
    /// 2 MB folio. Windows that did not are unmapped again (the page cache keeps them). False off
    /// Linux, for ranges without a whole window, and when smaps cannot be read.
    /// </summary>
    public static bool MapsWholeHugeFolios(IReadOnlyList<(nint Start, long Bytes)> ranges) =>
        CountWholeHugeFolios(ranges, keepPartial: false) is var (windows, whole) && windows > 0 && whole == windows;

    /// <summary>
    /// Like <see cref="MapsWholeHugeFolios"/>, with how many of the sampled windows came in whole: (windows
    /// sampled, of them whole 2 MB folios). The windows stay mapped when all are whole, or when half or
    /// more are and <paramref name="keepPartial"/>; otherwise they are unmapped again. (0, 0) off Linux, for ranges
    /// without a whole window, and when smaps cannot be read.
    /// </summary>
    public static (int Windows, int Whole) CountWholeHugeFolios(IReadOnlyList<(nint Start, long Bytes)> ranges, bool keepPartial)
    {
        if (!OperatingSystem.IsLinux()) return (0, 0);
        var windows = new List<nint>();
        foreach (var (start, bytes) in ranges)
        {
            // The first, middle and last whole window: a file read with large reads starts in smaller
            // folios (readahead grows its folios as it goes), and the head, at the file's start, is
            // streamed every token like the rest, so a tensor counts only if it is 2 MB throughout.
            long first = ((long)start + HugePage - 1) & ~(HugePage - 1);
            long last = (((long)start + bytes) & ~(HugePage - 1)) - HugePage;
            if (last < first) continue;
            long middle = Math.Clamp(((long)start + bytes / 2) & ~(HugePage - 1), first, last);
            foreach (long window in new[] { first, middle, last }.Distinct())
                windows.Add((nint)window);
        }
        if (windows.Count == 0 || PmdMappedBytes(windows[0]) is not long before) return (0, 0);
        foreach (nint window in windows) PageWarmup.PopulateOne(window, HugePage);
        int whole = PmdMappedBytes(windows[0]) is long after ? (int)Math.Clamp((after - before) / HugePage, 0, windows.Count) : 0;
        if (whole < windows.Count && !(keepPartial && MostlyWhole(windows.Count, whole)))
            foreach (nint window in windows) PageWarmup.ReleaseMapped(window, HugePage);
        return (windows.Count, whole);
    }

    /// <summary>FilePmdMapped of this process's mapping that holds <paramref name="address"/>, in bytes; null if unknown.</summary>
    public static long? PmdMappedBytes(nint address)
    {
        try { return PmdMappedBytes(File.ReadLines("/proc/self/smaps"), address); }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>
    /// Parse smaps text: find the mapping whose "start-end" header line holds <paramref name="address"/>
    /// and return its FilePmdMapped field in bytes (null when there is no such mapping or field).
    /// </summary>
    public static long? PmdMappedBytes(IEnumerable<string> smaps, nint address)
    {
        bool inside = false;
        foreach (string line in smaps)
        {
            int dash = line.IndexOf('-');
            int space = line.IndexOf(' ');
            // A mapping's header line: "start-end perms offset dev inode [path]", both bounds in hex.
            if (dash > 0 && space > dash
                && ulong.TryParse(line.AsSpan(0, dash), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong start)
                && ulong.TryParse(line.AsSpan(dash + 1, space - dash - 1), NumberStyles.HexNumber, CultureInfo.InvariantCulture, out ulong end))
            {
                if (inside) return null;   // left the mapping without seeing the field
                inside = (ulong)address >= start && (ulong)address < end;
                continue;
            }
            if (inside && line.StartsWith("FilePmdMapped:", StringComparison.Ordinal))
            {
                string value = line["FilePmdMapped:".Length..].Trim();
                int unit = value.IndexOf(' ');
                return long.TryParse(unit < 0 ? value : value[..unit], NumberStyles.Integer, CultureInfo.InvariantCulture, out long kb)
                    ? kb * 1024 : null;
            }
        }
        return null;
    }
}
