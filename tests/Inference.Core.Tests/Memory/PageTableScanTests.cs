using System.Runtime.InteropServices;
using BitNet.Inference.Memory;
using BitNet.Inference.Threading;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Memory;

public unsafe partial class PageTableScanTests
{
    private const long Window = 2L << 20;
    private const int MadvHugePage = 14, MadvNoHugePage = 15;

    [LibraryImport("libc.so.6", EntryPoint = "mmap")]
    private static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc.so.6", EntryPoint = "munmap")]
    private static partial int Munmap(nint address, nuint length);

    [LibraryImport("libc.so.6", EntryPoint = "madvise")]
    private static partial int Madvise(nint address, nuint length, int advice);

    [MachineDependent(TestCategories.NeedsPageTables)]
    [Fact]
    public void Pages_in_4_KB_entries_and_pages_not_mapped_are_reported_and_2_MB_pages_are_not()
    {
        if (PageTableScan.SmallPageRanges(0x10000, 4096) is null) Assert.Skip("no PAGEMAP_SCAN here (Linux 6.7+, not under an emulator)");
        // 8 windows of anonymous memory, 2 MB aligned: 0-1 huge pages, 2-3 4 KB pages, 4 untouched, 5-7 huge pages.
        nint reserved = Mmap(0, (nuint)(9 * Window), 3, 0x22, -1, 0);
        Assert.NotEqual(-1, reserved);
        try
        {
            nint start = (nint)(((long)reserved + Window - 1) & ~(Window - 1));
            Assert.Equal(0, Madvise(start, (nuint)(8 * Window), MadvHugePage));
            Assert.Equal(0, Madvise(start + (nint)(2 * Window), (nuint)(2 * Window), MadvNoHugePage));
            foreach (int w in new[] { 0, 1, 2, 3, 5, 6, 7 })
                new Span<byte>((void*)(start + (nint)(w * Window)), (int)Window).Fill(1);

            var small = PageTableScan.SmallPageRanges(start, 8 * Window)!;
            long Reported(int w) => small.Sum(r => Math.Max(0, Math.Min((long)r.Start + r.Bytes, (long)start + (w + 1) * Window) - Math.Max((long)r.Start, (long)start + w * Window)));
            Assert.Equal(Window, Reported(2));   // 4 KB entries
            Assert.Equal(Window, Reported(3));
            Assert.Equal(Window, Reported(4));   // nothing mapped
            foreach (int w in new[] { 0, 1, 5, 6, 7 })   // the kernel may have had no free huge page for one: then all of it is small
                Assert.True(Reported(w) is 0 or Window, $"window {w}: {Reported(w)} bytes reported");
            Assert.Equal(small.Sum(r => r.Bytes), Enumerable.Range(0, 8).Sum(Reported));   // nothing outside the range
            for (int i = 1; i < small.Count; i++)
                Assert.True(small[i - 1].Start + (nint)small[i - 1].Bytes < small[i].Start, "ranges are merged and in order");
        }
        finally
        {
            Assert.Equal(0, Munmap(reserved, (nuint)(9 * Window)));
        }
    }

    [MachineDependent(TestCategories.NeedsPageTables)]
    [Fact]
    public void Many_separate_runs_are_all_reported_over_several_calls()
    {
        if (PageTableScan.SmallPageRanges(0x10000, 4096) is null) Assert.Skip("no PAGEMAP_SCAN here (Linux 6.7+, not under an emulator)");
        // Every other page touched: 2,400 runs of mapped and unmapped 4 KB pages, more than one call's 512 regions.
        const int pages = 2400;
        nint start = Mmap(0, (nuint)(pages * 4096L), 3, 0x22, -1, 0);
        Assert.NotEqual(-1, start);
        try
        {
            Assert.Equal(0, Madvise(start, (nuint)(pages * 4096L), MadvNoHugePage));
            for (int p = 0; p < pages; p += 2) ((byte*)start)[p * 4096L] = 1;
            var small = PageTableScan.SmallPageRanges(start, pages * 4096L)!;
            // Every page is small (4 KB entries or none), so it all comes back, merged into one range.
            Assert.Single(small);
            Assert.Equal((start, pages * 4096L), small[0]);
        }
        finally
        {
            Assert.Equal(0, Munmap(start, (nuint)(pages * 4096L)));
        }
    }
}
