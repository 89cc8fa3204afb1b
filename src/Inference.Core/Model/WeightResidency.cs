using BitNet.Inference.Gguf;
using BitNet.Inference.Memory;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Model;

/// <summary>
/// Where the weights every token streams (the ternary matrices, and the F16 head unless it was
/// quantized) live while the model runs, and the work that keeps them there: choosing the storage
/// at load (<see cref="WeightStorage.Auto"/>), copying them (<see cref="WeightStorage.Memory"/>),
/// mapping their pages in bulk (<see cref="WeightStorage.Mapped"/>), or moving the mapping into
/// private memory behind the first token (<see cref="WeightStorage.Move"/>); and touching them
/// for a keep-warm ping. The forward pass only reads the pointers; this type owns what is behind them.
/// </summary>
public sealed class WeightResidency : IDisposable
{
    private readonly List<(nint Start, long Bytes)> _streamed;
    /// <summary><see cref="WeightStorage.Move"/>: the move into private memory, running in the background.</summary>
    private readonly MappingMove? _move;
    /// <summary>Move: the bytes of the windows moved at load (all of them were, when <see cref="BytesMovedAtLoad"/> equals it).</summary>
    private readonly long _bytesToMoveAtLoad;
    private readonly nint _mappingStart;
    private readonly long _mappingBytes;

    /// <summary>
    /// Resolves <paramref name="requested"/> (Auto → Memory or Move) and, for <see cref="WeightStorage.Memory"/>,
    /// reads <paramref name="streamed"/> into private memory. Runs before the weights' pointers are taken.
    /// </summary>
    internal static WeightStorage Prepare(GgufFile file, List<GgufTensorInfo> streamed, WeightStorage requested, WorkerPool pool, Action<string>? log)
    {
        // Ask for huge pages on the whole mapping first: when the file is read from disk through it (a
        // container's first start), the page cache then holds it in 2 MB folios, each mapped by one
        // entry instead of 512. The mapping runs to the end of the file's last page: advise all of it,
        // or the kernel splits off that last page as a mapping of its own.
        var (fileStart, fileBytes) = file.Mapping;
        long page = Environment.SystemPageSize;
        PageWarmup.PreferHugePages(fileStart, (fileBytes + page - 1) / page * page);
        WeightStorage storage = requested != WeightStorage.Auto ? requested : Choose(file, streamed, log);
        if (storage == WeightStorage.Memory)
        {
            // On every core the process may use, even when the model computes on fewer: filling fresh
            // memory waits on the OS (and, in a VM, on the host) more than on the copy itself, and
            // two threads overlap those waits.
            int copyThreads = Math.Max(pool.Threads, CpuBudget.DefaultThreads());
            using var copyPool = copyThreads > pool.Threads ? new WorkerPool(copyThreads) : null;
            WorkerPool workers = copyPool ?? pool;
            file.CopyTensorsToMemory(streamed, (count, read) => workers.ForPieces(count, new RangeAction(read), piece: 1));
        }
        return storage;
    }

    /// <summary>
    /// Takes over the <paramref name="streamed"/> ranges of a model loaded with <paramref name="storage"/>:
    /// maps them now (Mapped, Move), moves the 4 KB-page parts at load and plans the rest (Move).
    /// </summary>
    internal WeightResidency(GgufFile file, WeightStorage storage, List<(nint Start, long Bytes)> streamed, WorkerPool pool, Action<string>? log)
    {
        Storage = storage;
        _streamed = streamed;
        (_mappingStart, _) = file.Mapping;
        _mappingBytes = file.FileSize;
        // Mapped weights: map their pages now, in bulk and in parallel, instead of one fault per page
        // during the first token (the file is usually in the page cache already). Copies are resident.
        if (storage is WeightStorage.Mapped or WeightStorage.Move)
            PageWarmup.Populate(pool, streamed);
        if (storage != WeightStorage.Move)
            return;

        // Only what lies in the mapping: matrices converted at load (TQ1_0, TQ2_0, ternary floats)
        // and a converted head are owned arrays already.
        var (fileStart, _) = file.Mapping;
        long mappingEnd = fileStart + file.FileSize;
        var inMapping = streamed.Where(r => r.Start >= fileStart && r.Start + r.Bytes <= mappingEnd).ToList();
        // Windows as ranges for the plans below; the last one ends at the mapping's last page, past the file's end.
        var (now, later) = SplitBySmallPages(MappingMove.Windows(fileStart, file.FileSize, inMapping)
            .Select(w => (w.Start, Math.Min(w.Bytes, mappingEnd - w.Start))).ToList());
        if (now.Count > 0)
        {
            // Windows the page cache serves in 4 KB pages (a file partly cached so, or folios split
            // since): moved now, on every thread, so the first token streams nothing through 4 KB
            // file pages (several times slower than 2 MB ones on some virtual machines).
            long moved = 0, planned = 0;
            SplitInTwo.Run(now.Count, (from, to) =>
            {
                var part = MappingMove.Plan(fileStart, file.FileSize, now.GetRange(from, to - from), ReadUpToEnd, log);
                part.RunHere();
                Interlocked.Add(ref moved, part.MovedBytes);
                Interlocked.Add(ref planned, part.TotalBytes);
            }, parallel: pool.Threads > 1);
            BytesMovedAtLoad = moved;
            _bytesToMoveAtLoad = planned;
            log?.Invoke($"weights: {moved / (1 << 20)} MiB of the mapping in 4 KB pages moved into private memory at load");
        }
        _move = MappingMove.Plan(fileStart, file.FileSize, later, ReadUpToEnd, log);
        log?.Invoke($"weights: {_move.TotalBytes / (1 << 20)} MiB of the mapping to be moved into private memory in the background after the first forward pass");

        // The move's reads: the file's bytes at an offset, as many as it has (the last window runs to the end of its page).
        int ReadUpToEnd(long offset, Span<byte> destination)
        {
            int bytes = (int)Math.Clamp(file.FileSize - offset, 0, destination.Length);
            file.ReadAt(offset, destination[..bytes]);
            return bytes;
        }
    }

    /// <summary><see cref="WeightStorage.Memory"/>, <see cref="WeightStorage.Mapped"/> or <see cref="WeightStorage.Move"/> (Auto is resolved at load).</summary>
    public WeightStorage Storage { get; }

    /// <summary>Completes when the streamed weights have been moved into private memory (or the move stopped); already complete for the other storages.</summary>
    public Task MoveCompletion => _move?.Completion ?? Task.CompletedTask;

    /// <summary>Bytes of the mapping moved into private memory so far, at load and after (<see cref="WeightStorage.Move"/>), else 0.</summary>
    public long MovedBytes => BytesMovedAtLoad + (_move?.MovedBytes ?? 0);

    /// <summary><see cref="WeightStorage.Move"/>: bytes moved at load because the page cache served them in 4 KB pages; else 0.</summary>
    public long BytesMovedAtLoad { get; }

    /// <summary>
    /// Start the move now (an idle host between load and its first request) rather than after the first
    /// forward pass. Not at load: there the move competes with the tokenizer and the first token for the
    /// memory bus, and each window's mremap takes the address space's write lock, which the other
    /// threads' page faults wait for. Does nothing for the other storages, or once started.
    /// </summary>
    public void StartMove() => _move?.StartInBackground();

    /// <summary>
    /// <see cref="WeightStorage.Move"/>: <paramref name="rewrite"/> runs on the move's thread once every streamed
    /// window is private memory (at load and after), before <see cref="MoveCompletion"/> completes. Its argument
    /// says whether the model is being disposed (stop between pieces of work). Set before the move starts;
    /// nothing happens for the other storages, or when part of the move failed.
    /// </summary>
    internal void WhenMoved(Action<Func<bool>> rewrite)
    {
        if (_move is { } move && BytesMovedAtLoad == _bytesToMoveAtLoad) move.AfterMove = rewrite;
    }

    /// <summary>
    /// Runs <paramref name="write"/> with the moved pages holding [<paramref name="start"/>, + <paramref name="bytes"/>)
    /// writable (they are read-only, as the mapping they replaced), for a <see cref="WhenMoved"/> rewrite.
    /// </summary>
    internal void WithWritable(nint start, long bytes, Action write) =>
        MappingMove.WithWritableWindows(_mappingStart, _mappingBytes, start, bytes, write);

    /// <summary>Called after every forward pass: the first one starts the move.</summary>
    internal void AfterForwardPass()
    {
        if (_move is { IsStarted: false } move) move.StartInBackground();
    }

    /// <summary>
    /// Read one byte of every 4 KiB page of the streamed weights (a keep-warm ping): mapped pages the OS
    /// let go of are mapped again, private copies are touched. Only those ranges: touching a quantized
    /// head's F16 pages would map back what loading released. Starts a move not started yet (a ping comes
    /// while the model is idle). Returns the bytes covered.
    /// </summary>
    public long Touch()
    {
        StartMove();
        long touched = 0;
        foreach (var (start, bytes) in _streamed)
        {
            PageWarmup.TouchPages(start, bytes);
            touched += bytes;
        }
        return touched;
    }

    /// <summary>
    /// The tensors each token streams, to read into private memory under <see cref="WeightStorage.Memory"/>:
    /// the I2_S matrices (other ternary formats are repacked into owned arrays anyway) and, with the F16
    /// head, the head's F16 tensor. Not the head that q8/screened quantize: its F16 rows are read once at
    /// load through the mapping, then only by pread, so a copy would only add to the resident set; nor an
    /// untied embedding table, of which each token reads one row.
    /// </summary>
    internal static List<GgufTensorInfo> StreamedTensors(GgufFile file, ModelConfig config, LmHeadMode lmHead)
    {
        var tensors = new List<GgufTensorInfo>();
        for (int l = 0; l < config.LayerCount; l++)
            foreach (string name in GgufTensorNames.LayerMatrices(l))
                if (file.TryGetTensor(name, out GgufTensorInfo info) && info.Type == GgmlType.I2_S)
                    tensors.Add(info);
        if (lmHead == LmHeadMode.F16
            && (file.TryGetTensor(GgufTensorNames.Output, out GgufTensorInfo head) || file.TryGetTensor(GgufTensorNames.TokenEmbedding, out head))
            && head.Type == GgmlType.F16)
            tensors.Add(head);
        return tensors;
    }

    /// <summary>
    /// <see cref="WeightStorage.Auto"/>: start on the mapping and move it into memory in the background
    /// when the page cache serves the streamed tensors in 2 MB folios mapped whole (the first token
    /// needs no copy, and streams nearly as fast as private memory), else copy at load.
    /// Sampled in the first, middle and last streamed tensor: how a file came into the cache (large
    /// reads, or small writes) is usually the same throughout. (The probe reads /proc: Linux only.)
    /// </summary>
    private static WeightStorage Choose(GgufFile file, List<GgufTensorInfo> streamed, Action<string>? log)
    {
        var samples = new List<(nint, long)>();
        if (streamed.Count > 0)
            foreach (int i in new[] { 0, streamed.Count / 2, streamed.Count - 1 }.Distinct())
                unsafe { samples.Add(((nint)file.GetTensorPointer(streamed[i]), streamed[i].ByteSize)); }
        // Half the windows whole or more (a file whose first megabytes came in smaller folios, or whose
        // folios were split since): the move takes the 4 KB parts at load where the kernel can point them
        // out (PageTableScan), which costs a fraction of copying everything. Mostly 4 KB pages: a copy,
        // which needs no page-table entries for them first.
        bool partsAtLoad = PageTableScan.IsAvailable;
        var (windows, whole) = HugeFolioProbe.CountWholeHugeFolios(samples, keepPartial: partsAtLoad);
        bool move = windows > 0 && (whole == windows || (partsAtLoad && HugeFolioProbe.MostlyWhole(windows, whole)));
        log?.Invoke(move
            ? whole == windows ? "weights: mapped, then moved into memory (the page cache holds them in 2 MB folios)"
                               : $"weights: mapped, then moved into memory ({whole} of {windows} sampled 2 MB windows are whole folios; the rest move at load)"
            : "weights: copied to memory (the page cache holds them in 4 KB pages, or could not be checked)");
        return move ? WeightStorage.Move : WeightStorage.Memory;
    }

    /// <summary>
    /// The move's windows split into those with a page mapped in 4 KB entries (or not mapped), to move at
    /// load, and those mapped by 2 MB entries throughout, to move after the first pass. All of them
    /// later when the kernel cannot tell (<see cref="PageTableScan"/>).
    /// </summary>
    private static (List<(nint Start, long Bytes)> Now, List<(nint Start, long Bytes)> Later) SplitBySmallPages(List<(nint Start, long Bytes)> windows)
    {
        if (windows.Count == 0) return ([], windows);
        long from = windows[0].Start, to = windows[^1].Start + windows[^1].Bytes;
        if (PageTableScan.SmallPageRanges((nint)from, to - from) is not { } small) return ([], windows);
        List<(nint, long)> now = [], later = [];
        int next = 0;   // both lists are in address order: one sweep
        foreach (var window in windows)
        {
            long start = window.Start, end = start + window.Bytes;
            while (next < small.Count && small[next].Start + small[next].Bytes <= start) next++;
            bool hasSmall = next < small.Count && small[next].Start < end;
            (hasSmall ? now : later).Add(window);
        }
        return (now, later);
    }

    /// <summary>Stops a running move between windows; before the file's mapping goes away.</summary>
    public void Dispose() => _move?.Dispose();
}
