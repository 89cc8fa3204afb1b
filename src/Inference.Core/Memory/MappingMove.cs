using System.Runtime.InteropServices;
using static BitNet.Inference.Memory.LinuxMemory;

namespace BitNet.Inference.Memory;

/// <summary>
/// Moves ranges of a read-only file mapping into private memory <em>in place</em>: each 2 MB window
/// is read (pread) into fresh anonymous memory with 2 MB pages, which mremap(MREMAP_FIXED) then puts at
/// the window's own addresses, replacing the file pages there. Every pointer into the mapping stays
/// valid and keeps reading the same bytes, so a model can compute on the mapping from the first token
/// while this runs, on a thread of its own, and later tokens stream from private memory.
/// <para>
/// Why: on some virtual machines passes over mapped file pages are slower than over private memory,
/// yet copying at load delays the first token (docs/weight-storage.md).
/// </para>
/// <para>
/// Why it is safe while other threads read the range: mremap replaces the old pages with the new ones
/// under the address space's write lock, after a TLB flush; a read lands either on the file page or on
/// the private page, both holding the file's bytes. Page-cache pages are not freed by unmapping.
/// The mapping must stay mapped until <see cref="Dispose"/> has returned (which stops between windows).
/// </para>
/// Linux only (<see cref="IsSupported"/>); a window that cannot be moved ends the move and leaves the
/// rest mapped as it was.
/// </summary>
internal sealed unsafe class MappingMove : IDisposable
{
    /// <summary>Bytes moved per step: one transparent huge page.</summary>
    public const long Window = 2L << 20;
    private const long Page = 4096;

    /// <summary>Reads <c>destination.Length</c> bytes at <paramref name="fileOffset"/> of the mapped file (fewer past its end).</summary>
    public delegate int FileReader(long fileOffset, Span<byte> destination);

    private readonly nint _mappingStart;
    private readonly FileReader _read;
    private readonly List<(nint Start, long Bytes)> _windows;
    private readonly Action<string>? _log;
    private readonly object _threadLock = new();
    private Thread? _thread;
    private int _started;
    private readonly TaskCompletionSource _done = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private volatile bool _stop;
    private long _movedBytes;

    /// <summary>
    /// Runs on the move's thread once every window was moved, before <see cref="Completion"/> completes (and
    /// before <see cref="Dispose"/> returns, which it should poll: its argument says whether a stop was asked).
    /// Set before the move starts.
    /// </summary>
    public Action<Func<bool>>? AfterMove { get; set; }

    private MappingMove(nint mappingStart, long mappingBytes, IEnumerable<(nint Start, long Bytes)> ranges, FileReader read, Action<string>? log)
    {
        _mappingStart = mappingStart;
        _read = read;
        _log = log;
        _windows = Windows(mappingStart, mappingBytes, ranges);
        TotalBytes = _windows.Sum(w => w.Bytes);
    }

    /// <summary>Whether moves can run here (Linux; elsewhere a move moves nothing).</summary>
    public static bool IsSupported => OperatingSystem.IsLinux();

    /// <summary>
    /// A move of the 2 MB windows that hold <paramref name="ranges"/> (addresses inside the mapping of a
    /// file from offset 0, <paramref name="mappingStart"/> … + <paramref name="mappingBytes"/>), to run
    /// later: <see cref="StartInBackground"/> or <see cref="RunHere"/>.
    /// </summary>
    public static MappingMove Plan(nint mappingStart, long mappingBytes, IEnumerable<(nint Start, long Bytes)> ranges, FileReader read, Action<string>? log = null) =>
        new(mappingStart, mappingBytes, ranges, read, log);

    /// <summary>
    /// Run the move on a background thread. Once: later calls do nothing. Normal priority: at the lowest
    /// (nice 19) a move beside busy computing threads can starve for many times its own length, and every
    /// window's TLB flush and address-space lock touches those threads for as long as it runs.
    /// </summary>
    public void StartInBackground()
    {
        if (Interlocked.Exchange(ref _started, 1) != 0) return;
        lock (_threadLock)
        {
            if (_stop) { _done.TrySetResult(); return; }
            _thread = new Thread(MoveAll) { IsBackground = true, Name = "weights-move" };
            _thread.Start();
        }
    }

    /// <summary>Run the move on the calling thread; returns when done, or when a window could not be moved. Once.</summary>
    public void RunHere()
    {
        if (Interlocked.Exchange(ref _started, 1) != 0) return;
        MoveAll();
    }

    /// <summary>Whether the move was started (<see cref="StartInBackground"/> or <see cref="RunHere"/>).</summary>
    public bool IsStarted => Volatile.Read(ref _started) != 0;

    /// <summary>Bytes of the windows to move (whole pages: ranges rounded out to 2 MB, clipped to the mapping).</summary>
    public long TotalBytes { get; }
    /// <summary>Bytes moved so far.</summary>
    public long MovedBytes => Interlocked.Read(ref _movedBytes);
    /// <summary>Completes when the move ended: all moved, stopped (or never started) by <see cref="Dispose"/>, or a window refused.</summary>
    public Task Completion => _done.Task;
    /// <summary>True once every window was moved.</summary>
    public bool IsComplete => MovedBytes == TotalBytes;

    /// <summary>
    /// The windows holding <paramref name="ranges"/>: each 2 MB-aligned stretch of addresses any range
    /// touches, clipped to the mapping's whole pages, in address order, each once.
    /// </summary>
    public static List<(nint Start, long Bytes)> Windows(nint mappingStart, long mappingBytes, IEnumerable<(nint Start, long Bytes)> ranges)
    {
        long low = mappingStart, high = mappingStart + (mappingBytes + Page - 1) / Page * Page;
        var starts = new SortedSet<long>();
        foreach (var (start, bytes) in ranges)
        {
            if (bytes <= 0) continue;
            if (start < low || start + bytes > low + mappingBytes)
                throw new ArgumentOutOfRangeException(nameof(ranges), $"range {start:x}+{bytes} is outside the mapping {low:x}+{mappingBytes}");
            for (long w = (long)start & ~(Window - 1); w < start + bytes; w += Window)
                starts.Add(w);
        }
        var windows = new List<(nint, long)>(starts.Count);
        foreach (long w in starts)
        {
            long from = Math.Max(w, low), to = Math.Min(w + Window, high);
            windows.Add(((nint)from, to - from));
        }
        return windows;
    }


    private void MoveAll()
    {
        try
        {
            if (!IsSupported) return;
            if (_windows.Count > 0) MoveWindows();
            if (IsComplete && !_stop) AfterMove?.Invoke(() => _stop);
        }
        catch (Exception e)
        {
            _log?.Invoke($"weights: moving into memory stopped ({e.GetType().Name}: {e.Message}); the rest stays mapped");
        }
        finally
        {
            _done.TrySetResult();
        }
    }

    /// <summary>
    /// One anonymous reservation spans the windows, laid out so each window's piece has the same offset
    /// within 2 MB as the window (mremap keeps a 2 MB page whole only between 2 MB-aligned addresses);
    /// untouched parts of it cost nothing (MAP_NORESERVE). The reservation is released front to back:
    /// gaps before each piece, each piece by being moved out, whatever is left at the end. Never all at
    /// once: a piece's old addresses are free as soon as it moves, and another mapping of this process
    /// (the GC's, a thread stack) may take them meanwhile.
    /// </summary>
    private void MoveWindows()
    {
        long first = _windows[0].Start, span = _windows[^1].Start + _windows[^1].Bytes - (first & ~(Window - 1));
        nuint reservedBytes = (nuint)(span + Window);
        nint reserved = Mmap(0, reservedBytes, ProtRead | ProtWrite, MapPrivate | MapAnonymous | MapNoReserve, -1, 0);
        if (reserved == MapFailed) throw new InvalidOperationException($"mmap of {span} bytes failed (errno {Marshal.GetLastPInvokeError()})");
        long released = reserved, end = reserved + (long)reservedBytes;   // [released, end) is still ours
        try
        {
            long pieceBase = (((long)reserved + Window - 1) & ~(Window - 1)) - (first & ~(Window - 1));   // piece of address a: pieceBase + a
            PageWarmup.PreferHugePages(reserved, (long)reservedBytes);   // best effort: without it, 4 KB pages
            foreach (var (start, bytes) in _windows)
            {
                if (_stop) return;
                nint piece = (nint)(pieceBase + start);
                if (piece > released) Munmap((nint)released, (nuint)(piece - released));
                released = piece;
                int read = _read((long)start - _mappingStart, new Span<byte>((void*)piece, (int)bytes));
                if (read < 0) throw new IOException($"reading {bytes} bytes at file offset {(long)start - _mappingStart} failed");
                // Read-only like the mapping it replaces: a stray write faults instead of diverging from the file.
                Protect(piece, (nuint)bytes, ProtRead);
                nint moved = Mremap(piece, (nuint)bytes, (nuint)bytes, MremapMayMove | MremapFixed, start);
                if (moved != start)
                    throw new InvalidOperationException($"mremap onto {start:x} failed (errno {Marshal.GetLastPInvokeError()})");
                released = piece + (nint)bytes;
                // The first read of a page whose mapping just changed is slow on some hypervisors: pay it
                // here, once per page, rather than in the next token.
                for (long offset = 0; offset < bytes; offset += bytes == Window ? Window : Page)
                    _ = Volatile.Read(ref ((byte*)start)[offset]);
                Interlocked.Add(ref _movedBytes, bytes);
            }
        }
        finally
        {
            if (end > released) Munmap((nint)released, (nuint)(end - released));
        }
    }

    /// <summary>Stop between windows and wait for the thread: the caller may unmap the file afterwards.</summary>
    /// <summary>
    /// Runs <paramref name="write"/> with the moved windows that hold [<paramref name="start"/>, + <paramref name="bytes"/>)
    /// writable, then makes them read-only again. The windows are whole 2 MB pages of private memory (or the
    /// mapping's ends), so changing their protection splits no huge page.
    /// </summary>
    public static void WithWritableWindows(nint mappingStart, long mappingBytes, nint start, long bytes, Action write)
    {
        var windows = Windows(mappingStart, mappingBytes, [(start, bytes)]);
        nint from = windows[0].Start;
        nuint length = (nuint)(windows[^1].Start + (nint)windows[^1].Bytes - from);
        Protect(from, length, ProtRead | ProtWrite);
        try
        {
            write();
        }
        catch
        {
            Mprotect(from, length, ProtRead);
            throw;
        }
        Protect(from, length, ProtRead);
    }

    private static void Protect(nint start, nuint length, int protection)
    {
        if (Mprotect(start, length, protection) != 0)
            throw new InvalidOperationException($"mprotect failed (errno {Marshal.GetLastPInvokeError()})");
    }

    public void Dispose()
    {
        Thread? thread;
        lock (_threadLock)
        {
            _stop = true;
            thread = _thread;
            if (Volatile.Read(ref _started) == 0) _done.TrySetResult();   // never started: nothing will run
        }
        if (thread is not null && thread.IsAlive && Thread.CurrentThread != thread) thread.Join();
    }
}
