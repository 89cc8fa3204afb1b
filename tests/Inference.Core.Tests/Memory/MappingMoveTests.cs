using System.IO.MemoryMappedFiles;
using BitNet.Inference.Memory;
using BitNet.Inference.Tests.Gguf;
using BitNet.Inference.Tests.Model;
using BitNet.Inference.Threading;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Memory;

/// <summary>
/// MappingMove: windows of a read-only file mapping replaced, at the same addresses, by private pages
/// holding the same bytes, while other threads may be reading them.
/// </summary>
public unsafe class MappingMoveTests
{
    private const long MiB = 1 << 20;

    [Fact]
    public void Windows_are_the_2_MB_stretches_the_ranges_touch_each_once_and_clipped_to_the_mapping()
    {
        nint start = unchecked((nint)0x7f0000100000);   // 1 MiB into a 2 MB window
        long bytes = 9 * MiB + 100;                     // ends 100 bytes into a page
        var windows = MappingMove.Windows(start, bytes,
        [
            (start + (nint)(2 * MiB), 10),              // one 2 MB window…
            (start + (nint)(2 * MiB + 5), 3 * MiB),     // …again, and the next two
            (start, 1),                                 // the mapping's first (partial) window
            (start + (nint)(9 * MiB), 100),             // the last: clipped to the end of its page
            (start + (nint)(4 * MiB), 0),               // empty: nothing
        ]);
        Assert.Equal(
        [
            (start, MiB),
            (start + (nint)MiB, 2 * MiB),
            (start + (nint)(3 * MiB), 2 * MiB),
            (start + (nint)(5 * MiB), 2 * MiB),
            (start + (nint)(9 * MiB), 4096),
        ], windows);
        Assert.Throws<ArgumentOutOfRangeException>(() => MappingMove.Windows(start, bytes, [(start + (nint)bytes - 1, 2)]));
    }

    [MachineDependent(TestCategories.NeedsPageTables)]
    [Fact]
    public void Pagemap_tells_file_pages_from_private_ones_on_a_native_linux_x64_run()
    {
        // The page-kind checks below are skipped where pagemap cannot tell (qemu-user); make sure that
        // is never the case on the x86-64 runs, so the checks there cannot silently fall away.
        if (!OperatingSystem.IsLinux() || System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture != System.Runtime.InteropServices.Architecture.X64)
            Assert.Skip("native Linux x64 only");
        Assert.True(Smaps.ReportsPageKinds);
    }

    /// <summary>A file of <paramref name="bytes"/> pseudo-random bytes, mapped read-only, huge pages advised and every page mapped.</summary>
    private sealed class MappedFile : IDisposable
    {
        private readonly MemoryMappedFile _map;
        private readonly MemoryMappedViewAccessor _view;
        private readonly FileStream _reader;

        public MappedFile(TempFolder temp, long bytes, int seed)
        {
            Path = temp.File($"mapped-{seed}.bin");
            Bytes = new byte[bytes];
            new Random(seed).NextBytes(Bytes);
            using (var stream = new BitNet.Inference.Gguf.AlignedWriteStream(File.Create(Path)))   // 2 MB folios, as the project's files
                stream.Write(Bytes);
            _map = MemoryMappedFile.CreateFromFile(Path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            Start = (nint)(pointer + _view.PointerOffset);
            PageWarmup.PreferHugePages(Start, (bytes + 4095) / 4096 * 4096);
            PageWarmup.TouchPages(Start, bytes);   // every page mapped (qemu-user accepts MADV_POPULATE_READ but maps nothing)
            _reader = new FileStream(Path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        }

        public string Path { get; }
        public byte[] Bytes { get; }
        public nint Start { get; }
        public ReadOnlySpan<byte> View => new((void*)Start, Bytes.Length);

        public int Read(long offset, Span<byte> destination)
        {
            int bytes = (int)Math.Clamp(Bytes.Length - offset, 0, destination.Length);
            return RandomAccess.Read(_reader.SafeFileHandle, destination[..bytes], offset) == bytes ? bytes : -1;
        }

        public void Dispose()
        {
            _reader.Dispose();
            _view.SafeMemoryMappedViewHandle.ReleasePointer();
            _view.Dispose();
            _map.Dispose();
        }
    }

    [Fact]
    public void Moved_windows_hold_the_files_bytes_in_private_pages_and_the_rest_stays_file_pages()
    {
        if (!MappingMove.IsSupported) Assert.Skip("Linux only");
        using var temp = new TempFolder();
        using var file = new MappedFile(temp, 11 * MiB + 1234, seed: 1);   // the last page is partly past the end
        nint middle = file.Start + (nint)(5 * MiB);
        nint tail = file.Start + (nint)(11 * MiB);
        (nint, long)[] ranges = [(middle, 1), (tail, 1234)];
        using var move = Moved(file.Start, file.Bytes.Length, ranges, file.Read);

        Assert.True(move.IsComplete);
        Assert.Equal(move.TotalBytes, move.MovedBytes);
        Assert.True(move.Completion.IsCompletedSuccessfully);
        Assert.True(file.View.SequenceEqual(file.Bytes), "the mapping reads the file's bytes after the move");
        // The 2 MB windows holding the ranges are private now; the rest is the file's. (Where the file
        // is mapped at a 2 MB boundary, as Linux maps large files: [4, 6) MiB, and [10 MiB, the end of
        // the last page).)
        var windows = MappingMove.Windows(file.Start, file.Bytes.Length, ranges);
        Assert.Equal(windows.Sum(w => w.Bytes), move.TotalBytes);
        if (file.Start % (2 * MiB) == 0)
            Assert.Equal([(file.Start + (nint)(4 * MiB), 2 * MiB), (file.Start + (nint)(10 * MiB), MiB + 4096)], windows);
        if (!Smaps.ReportsPageKinds) return;   // qemu-user: the bytes above are what can be checked
        foreach (var (start, bytes) in windows)
        {
            Assert.Equal(0, Smaps.FilePages(start, bytes));
            Assert.Equal(bytes / 4096, Smaps.PresentPages(start, bytes));
        }
        long pages = (file.Bytes.Length + 4095) / 4096;
        Assert.Equal(pages - move.TotalBytes / 4096, Smaps.FilePages(file.Start, file.Bytes.Length));
    }

    [Fact]
    public void Readers_see_the_files_bytes_throughout_a_background_move()
    {
        if (!MappingMove.IsSupported) Assert.Skip("Linux only");
        using var temp = new TempFolder();
        using var file = new MappedFile(temp, 96 * MiB, seed: 2);
        ulong expected = Checksum(file.View);
        using var move = Moving(file.Start, file.Bytes.Length, [(file.Start, file.Bytes.Length)], file.Read);
        int passes = 0, wrong = 0;
        var readers = Enumerable.Range(0, 2).Select(_ => Task.Run(() =>
        {
            do
            {
                if (Checksum(file.View) != expected) Interlocked.Increment(ref wrong);
                Interlocked.Increment(ref passes);
            } while (!move.Completion.IsCompleted);
        })).ToArray();
        Assert.True(SpinWait.SpinUntil(() => readers.All(r => r.IsCompleted), TimeSpan.FromMinutes(2)), "the move did not finish");
        Assert.Equal(0, wrong);
        Assert.True(move.IsComplete, $"{move.MovedBytes} of {move.TotalBytes} bytes moved");
        if (Smaps.ReportsPageKinds) Assert.Equal(0, Smaps.FilePages(file.Start, file.Bytes.Length));
        Assert.True(passes >= 2);
    }

    [Fact]
    public void A_mapping_made_where_a_moved_piece_was_survives_the_move()
    {
        // A moved piece's old addresses are free at once, and the kernel may hand them to the next mmap
        // of any thread (the GC's, a thread stack): the move must never unmap them afterwards (it once
        // ended by unmapping its whole reservation, and the process crashed). Here a page is mapped at
        // the addresses the second window's piece left, while the third window is read.
        if (!MappingMove.IsSupported) Assert.Skip("Linux only");
        using var temp = new TempFolder();
        using var file = new MappedFile(temp, 16 * MiB, seed: 5);
        nint claimed = 0;
        int reads = 0;
        using var move = Moved(file.Start, file.Bytes.Length, [(file.Start, file.Bytes.Length)], (offset, destination) =>
        {
            if (++reads == 3)
                fixed (byte* piece = destination)
                {
                    nint hole = (nint)piece - (nint)(2 * MiB);   // the windows are contiguous: so are their pieces
                    claimed = Mmap(hole, 4096, 3, 0x22 | 0x100000, -1, 0);   // RW, PRIVATE|ANONYMOUS|FIXED_NOREPLACE
                    if (claimed == hole) *(byte*)claimed = 1;
                }
            return file.Read(offset, destination);
        });
        Assert.True(move.IsComplete);
        Assert.NotEqual(-1, claimed);   // the hole was free
        try
        {
            Assert.Equal(1, Smaps.PresentPages(claimed, 4096));
            Assert.Equal(1, *(byte*)claimed);
        }
        finally
        {
            Assert.Equal(0, Munmap(claimed, 4096));
        }
    }

    [System.Runtime.InteropServices.DllImport("libc.so.6", EntryPoint = "mmap")]
    private static extern nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [System.Runtime.InteropServices.DllImport("libc.so.6", EntryPoint = "munmap")]
    private static extern int Munmap(nint address, nuint length);

    /// <summary>A move run to its end on this thread.</summary>
    private static MappingMove Moved(nint start, long bytes, IEnumerable<(nint, long)> ranges, MappingMove.FileReader read, Action<string>? log = null)
    {
        var move = MappingMove.Plan(start, bytes, ranges, read, log);
        move.RunHere();
        return move;
    }

    /// <summary>A move started on its background thread.</summary>
    private static MappingMove Moving(nint start, long bytes, IEnumerable<(nint, long)> ranges, MappingMove.FileReader read)
    {
        var move = MappingMove.Plan(start, bytes, ranges, read);
        move.StartInBackground();
        return move;
    }

    [Fact]
    public void A_planned_move_waits_for_its_start_and_disposing_it_unstarted_completes_it()
    {
        if (!MappingMove.IsSupported) Assert.Skip("Linux only");
        using var temp = new TempFolder();
        using var file = new MappedFile(temp, 4 * MiB, seed: 6);
        var planned = MappingMove.Plan(file.Start, file.Bytes.Length, [(file.Start, file.Bytes.Length)], file.Read);
        Thread.Sleep(50);
        Assert.False(planned.IsStarted);
        Assert.Equal(0, planned.MovedBytes);
        if (Smaps.ReportsPageKinds) Assert.Equal(file.Bytes.Length / 4096, Smaps.FilePages(file.Start, file.Bytes.Length));
        planned.Dispose();
        Assert.True(planned.Completion.IsCompleted);
        planned.StartInBackground();   // after Dispose: nothing moves
        Assert.Equal(0, planned.MovedBytes);

        using var twice = MappingMove.Plan(file.Start, file.Bytes.Length, [(file.Start, file.Bytes.Length)], file.Read);
        twice.RunHere();
        twice.RunHere();
        twice.StartInBackground();
        Assert.True(twice.IsComplete);
        Assert.Equal(4 * MiB, twice.MovedBytes);
    }

    private static ulong Checksum(ReadOnlySpan<byte> bytes)
    {
        ulong sum = 0;
        foreach (ulong word in System.Runtime.InteropServices.MemoryMarshal.Cast<byte, ulong>(bytes))
            sum = (sum ^ word) * 0x100000001B3UL;
        return sum;
    }

    [Fact]
    public void Disposing_stops_a_move_between_windows_and_the_mapping_keeps_the_files_bytes()
    {
        if (!MappingMove.IsSupported) Assert.Skip("Linux only");
        using var temp = new TempFolder();
        using var file = new MappedFile(temp, 64 * MiB, seed: 3);
        int reads = 0;
        var move = Moving(file.Start, file.Bytes.Length, [(file.Start, file.Bytes.Length)], (offset, destination) =>
        {
            if (Interlocked.Increment(ref reads) == 3) Thread.Sleep(200);   // still moving when disposed
            return file.Read(offset, destination);
        });
        SpinWait.SpinUntil(() => Volatile.Read(ref reads) >= 3, TimeSpan.FromSeconds(10));
        move.Dispose();   // returns once the thread has stopped

        Assert.True(move.Completion.IsCompleted);
        Assert.False(move.IsComplete);
        Assert.InRange(move.MovedBytes, 1, 3 * 2 * MiB);   // two or three windows (the first may be partial)
        Assert.True(file.View.SequenceEqual(file.Bytes));
        if (Smaps.ReportsPageKinds)
            Assert.Equal(move.MovedBytes / 4096, file.Bytes.Length / 4096 - Smaps.FilePages(file.Start, file.Bytes.Length));
    }

    [Fact]
    public void A_failed_read_ends_the_move_with_a_note_and_leaves_the_rest_mapped()
    {
        if (!MappingMove.IsSupported) Assert.Skip("Linux only");
        using var temp = new TempFolder();
        using var file = new MappedFile(temp, 8 * MiB, seed: 4);
        var notes = new List<string>();
        int reads = 0;
        using var move = Moved(file.Start, file.Bytes.Length, [(file.Start, file.Bytes.Length)],
            (offset, destination) => ++reads == 2 ? throw new IOException("disk gone") : file.Read(offset, destination), notes.Add);

        long firstWindow = MappingMove.Windows(file.Start, file.Bytes.Length, [(file.Start, file.Bytes.Length)])[0].Bytes;
        Assert.Equal(firstWindow, move.MovedBytes);   // 2 MB where the file is mapped at a 2 MB boundary
        Assert.False(move.IsComplete);
        Assert.Contains(notes, n => n.Contains("disk gone", StringComparison.Ordinal) && n.Contains("stays mapped", StringComparison.Ordinal));
        Assert.True(file.View.SequenceEqual(file.Bytes));
        if (Smaps.ReportsPageKinds) Assert.Equal((8 * MiB - firstWindow) / 4096, Smaps.FilePages(file.Start, file.Bytes.Length));
    }
}
