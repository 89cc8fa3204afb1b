using BitNet.Inference.Kernels;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Model;

/// <summary>
/// The single entry point for the forward pass's matrix products: every ternary (I2_S) matmul and the
/// F16 LM head go through here. The kernel set (KernelSet.All: avx512vnni … scalar) is chosen once,
/// at construction (<see cref="KernelSelector"/>); output rows are split across a persistent
/// <see cref="WorkerPool"/> in multiples of 4 (the kernels' row tile). Every output row is computed
/// whole by one thread with exact integer dots, so results do not depend on the thread count.
/// The static *Rows methods are the scalar reference the kernels are tested against.
/// </summary>
internal sealed unsafe class MatMul : IDisposable
{
    private readonly KernelSet _kernels;
    private readonly TernaryJob _ternaryJob;
    private readonly HeadJob _headJob;
    private readonly ScreenJob _screenJob;
    // One product at a time per model: the jobs are reused (no allocation), so concurrent sequences
    // sharing this model take turns here (they would compete for the same cores anyway).
    private readonly object _gate = new();
    private LmHeadQ8? _q8Head;

    public MatMul(int threads = 1, string? kernel = null, Action<string>? log = null)
    {
        _kernels = KernelSelector.Select(kernel, log);   // ArgumentException / NotSupportedException for a bad request
        Threads = Math.Max(1, threads);
        KernelName = _kernels.Name;
        Pool = new WorkerPool(Threads);
        _ternaryJob = new TernaryJob(_kernels);
        _headJob = new HeadJob(_kernels);
        _screenJob = new ScreenJob(_kernels);
    }

    public string KernelName { get; }
    public int Threads { get; }
    /// <summary>The worker threads (the caller included) the products run on; other row-parallel work may share them.</summary>
    public WorkerPool Pool { get; }
    /// <summary>Runs <paramref name="action"/> while no product runs (the lock every product takes).</summary>
    public void Exclusively(Action action)
    {
        lock (_gate) action();
    }

    /// <summary>Whether the kernels in use read ternary codes in <see cref="I2sCodeOrder.FourRowBlocks"/> order too.</summary>
    public bool ReadsFourRowBlocks => _kernels.DotI2sFourRowBlocks is not null;
    /// <summary>The int8 LM head when <see cref="LmHeadMode.Q8"/> or <see cref="LmHeadMode.Screened"/> is on, else null.</summary>
    public LmHeadQ8? QuantizedHead => _q8Head;
    /// <summary>The interval bounds of the screened head (<see cref="LmHeadMode.Screened"/>), else null.</summary>
    public LogitScreen? Screen { get; private set; }
    /// <summary>Where the exact F16 head rows are read from in screened mode (the pages are not kept mapped).</summary>
    internal HeadRows? ExactRows { get; private set; }

    /// <summary>y[t·W.Rows + r] = Σ_k W[r,k]·x[t,k] for every token t of <paramref name="x"/> and row r of W.</summary>
    public void Ternary(TernaryMatrix w, QuantizedActivations x, Span<float> y) => Ternary(x, w, y, null, default);

    /// <summary>
    /// Two or three products of the same input in one dispatch (q/k/v, gate/up): the workers split the
    /// matrices' rows laid end to end, so one handoff and one wait serve them all.
    /// </summary>
    public void Ternary(QuantizedActivations x, TernaryMatrix w1, Span<float> y1, TernaryMatrix? w2, Span<float> y2,
        TernaryMatrix? w3 = null, Span<float> y3 = default)
    {
        Check(w1, x, y1);
        if (w2 is not null) Check(w2, x, y2);
        if (w3 is not null) Check(w3, x, y3);
        if (w1.BlockScales is not null || w2?.BlockScales is not null || w3?.BlockScales is not null)
        {
            // Rare TQ tensors with per-block scales: reference path.
            TernaryRows(w1, x, y1, 0, w1.Rows);
            if (w2 is not null) TernaryRows(w2, x, y2, 0, w2.Rows);
            if (w3 is not null) TernaryRows(w3, x, y3, 0, w3.Rows);
            return;
        }
        lock (_gate)
        {
            fixed (float* p1 = y1)
            fixed (float* p2 = y2)
            fixed (float* p3 = y3)
            {
                _ternaryJob.Set(x, w1, p1, w2, p2, w3, p3);
                // A few tokens (decode steps of several sequences) stream the weights as one token does.
                if (x.Tokens <= PiecedTokens) Pool.ForPieces(_ternaryJob.TotalRows, _ternaryJob, TernaryPieceRows);
                else Pool.For(_ternaryJob.TotalRows, _ternaryJob, granule: 4);
                _ternaryJob.Clear();
            }
        }
    }

    private static void Check(TernaryMatrix w, QuantizedActivations x, Span<float> y)
    {
        if (x.Columns != w.Columns)
            throw new ArgumentException($"'{w.Name}' takes {w.Columns} inputs, the activations have {x.Columns}");
        if (y.Length < x.Tokens * w.Rows)
            throw new ArgumentException($"'{w.Name}' writes {x.Tokens}×{w.Rows} outputs, the destination holds {y.Length}");
    }

    private const int ReleasePieceRows = 1024;   // 5 MB of F16 rows at 2560 columns

    /// <summary>
    /// Quantize the LM head to int8 rows once (LmHeadMode.Q8); later <see cref="LmHead"/> calls use it.
    /// With <paramref name="releaseReadPages"/> (a memory-mapped file), the F16 pages of each piece of
    /// <see cref="ReleasePieceRows"/> rows are unmapped as soon as it is quantized, so the two copies are never resident together:
    /// peak RSS stays at the int8 copy plus a few pieces instead of growing by the whole F16 head.
    /// With <paramref name="exactRows"/> the head is screened (<see cref="LmHeadMode.Screened"/>): the int8
    /// copy only bounds the logits, and every logit the caller sees is the F16 head's, computed from rows
    /// read through <paramref name="exactRows"/>.
    /// </summary>
    internal void EnableQuantizedHead(Half* weights, int rows, int columns, bool releaseReadPages, HeadRows? exactRows)
    {
        _q8Head = LmHeadQ8.Quantize(new ReadOnlySpan<Half>(weights, checked(rows * columns)), rows, columns,
            // In pieces, so each piece's pages are released as soon as it is done, not at the end of a share.
            (count, body) => Pool.ForPieces(count, new RangeAction((start, end) =>
            {
                body(start, end);
                if (releaseReadPages)
                    Memory.PageWarmup.ReleaseMapped((nint)(weights + (long)start * columns), 2L * (end - start) * columns);
            }), ReleasePieceRows),
            errorFacts: exactRows is not null);
        if (exactRows is not null)
        {
            Screen = new LogitScreen(_q8Head);
            ExactRows = exactRows;
        }
    }

    /// <summary>
    /// I2_S products split by output rows: up to three matrices of one input, their rows laid end to
    /// end; each share runs the kernel on row chunks of the matrices it covers and rescales.
    /// </summary>
    [System.Runtime.CompilerServices.SkipLocalsInit]
    private sealed class TernaryJob(KernelSet kernels) : IRangeJob
    {
        /// <summary>Integer results staged on the stack per chunk: tokens × rows ≤ this many ints (64 KB).</summary>
        private const int StagedDots = 16384;
        private QuantizedActivations? _x;
        private readonly TernaryMatrix?[] _w = new TernaryMatrix?[3];
        private readonly float*[] _y = new float*[3];

        /// <summary>Rows of all the matrices together.</summary>
        public int TotalRows { get; private set; }

        public void Set(QuantizedActivations x, TernaryMatrix a, float* ya, TernaryMatrix? b, float* yb, TernaryMatrix? c, float* yc)
        {
            _x = x;
            _w[0] = a; _y[0] = ya;
            _w[1] = b; _y[1] = yb;
            _w[2] = c; _y[2] = yc;
            TotalRows = a.Rows + (b?.Rows ?? 0) + (c?.Rows ?? 0);
        }

        public void Clear()
        {
            _x = null;
            Array.Clear(_w);
            for (int i = 0; i < _y.Length; i++) _y[i] = null;
        }

        public void Run(int start, int end)
        {
            int offset = 0;
            for (int m = 0; m < _w.Length && _w[m] is { } w; m++)
            {
                int from = Math.Max(start, offset), to = Math.Min(end, offset + w.Rows);
                if (from < to) RunMatrix(w, _y[m], from - offset, to - offset);
                offset += w.Rows;
            }
        }

        private void RunMatrix(TernaryMatrix w, float* y, int start, int end)
        {
            QuantizedActivations x = _x!;
            int tokens = x.Tokens, columns = x.Columns, rows = w.Rows;
            var weights = w.AllCodes;
            I2sDotRowsKernel dot = w.CodeOrder == I2sCodeOrder.Rows ? kernels.DotI2s
                : kernels.DotI2sFourRowBlocks ?? throw new InvalidOperationException($"'{w.Name}' is in {w.CodeOrder} order, which the {kernels.Name} kernels do not read");
            ReadOnlySpan<sbyte> q = x.Values.AsSpan(0, tokens * columns);
            int chunk = Math.Max(4, (StagedDots / Math.Max(1, tokens)) & ~3);
            // Sized to this share's first chunk (≤ 64 KB, or one 4-row tile for very long batches);
            // [SkipLocalsInit] on the class spares zeroing it on every one of a token's ~120 calls.
            Span<int> dots = stackalloc int[tokens * Math.Min(chunk, end - start)];
            for (int r0 = start; r0 < end; r0 += chunk)
            {
                int count = Math.Min(chunk, end - r0);
                Span<int> d = dots[..(tokens * count)];
                dot(weights, columns, q, tokens, r0, count, d);
                for (int t = 0; t < tokens; t++)
                    I2sKernels.RescaleRow(d.Slice(t * count, count), x.Sums[t], x.Scales[t], w.Scale,
                        new Span<float>(y + (long)t * rows + r0, count));
            }
        }
    }

    /// <summary>
    /// Single-token matmuls hand out rows in pieces (<see cref="WorkerPool.ForPieces"/>) rather than one
    /// fixed share per thread: decode is memory-bound, and on a shared host one core's stream often runs
    /// slower than the other's for a while, so fixed halves leave the faster thread waiting. Piece sizes:
    /// 256 ternary rows (160 KB of codes at 2560 columns) and 1024 head rows (5 MB of F16); smaller
    /// pieces paid more in hand-offs than they won in balance (docs/performance.md).
    /// Prefill keeps fixed shares: its 64-row chunks are compute-bound and already even.
    /// </summary>
    internal const int TernaryPieceRows = 256, HeadPieceRows = 1024;

    /// <summary>Batches of up to this many tokens hand out ternary rows in pieces, as a single token does
    /// (a decode step of several sequences is memory-bound too); longer ones take fixed shares.</summary>
    internal const int PiecedTokens = 16;

    /// <summary>
    /// LM-head rows for one or more tokens: F16 in place, F16 read through <see cref="HeadRows"/>, or int8.
    /// Several tokens go through the rows in tiles of <see cref="HeadTileRows"/>: each tile is read from
    /// memory once and stays in cache while the single-token kernel runs on it for every token, so each
    /// logit is the single-token kernel's own result, bit for bit, and the head streams once per step.
    /// </summary>
    private sealed class HeadJob(KernelSet kernels) : IRangeJob
    {
        /// <summary>Rows per tile: 80 KB of F16 at 2560 columns, well inside L2.</summary>
        internal const int HeadTileRows = 16;
        private Half* _weights;
        private LmHeadQ8? _q8;
        private HeadRows? _rows;
        private int _columns, _tokens, _headRows;
        private float* _x, _logits;

        /// <param name="tokens">Inputs at x + t·columns, logits at logits + t·headRows.</param>
        public void Set(Half* weights, LmHeadQ8? q8, HeadRows? rows, int columns, float* x, float* logits, int tokens = 1, int headRows = 0)
        {
            _weights = weights; _q8 = q8; _rows = rows; _columns = columns; _x = x; _logits = logits;
            _tokens = tokens; _headRows = headRows;
        }

        public void Run(int start, int end)
        {
            if (_tokens == 1)
            {
                RunToken(0, start, end);
                return;
            }
            if (_q8 is null && _rows is null && kernels.DotF16Tokens is { } dotTokens)
            {
                dotTokens(new ReadOnlySpan<Half>(_weights, checked(end * _columns)), _columns, new ReadOnlySpan<float>(_x, _tokens * _columns),
                    _tokens, start, end - start, new Span<float>(_logits + start, checked((_tokens - 1) * _headRows + end - start)), _headRows);
                return;
            }
            for (int r0 = start; r0 < end; r0 += HeadTileRows)
            {
                int r1 = Math.Min(end, r0 + HeadTileRows);
                for (int t = 0; t < _tokens; t++) RunToken(t, r0, r1);
            }
        }

        private void RunToken(int t, int start, int end)
        {
            var x = new ReadOnlySpan<float>(_x + (long)t * _columns, _columns);
            var dst = new Span<float>(_logits + (long)t * _headRows + start, end - start);
            if (_q8 is { } q8)
                kernels.DotQ8(q8.Weights, q8.Scales, _columns, x, start, end - start, dst);
            else if (_rows is { } rows)
            {
                ReadRowsAndDot(kernels, rows, start, end - start, x, dst, StagedRows(_columns));
            }
            else
                kernels.DotF16(new ReadOnlySpan<Half>(_weights, checked(end * _columns)), _columns, x, start, end - start, dst);
        }
    }

    /// <summary>
    /// Bounds of every LM-head row for one or more head inputs (screened head): exact int8 × int16 dots per
    /// chunk of rows, every input's at once, then <see cref="LogitScreen.Bounds"/> for each usable input.
    /// </summary>
    [System.Runtime.CompilerServices.SkipLocalsInit]
    private sealed class ScreenJob(KernelSet kernels) : IRangeJob
    {
        private const int ChunkRows = 64;
        private LogitScreen? _screen;
        private LogitScreen.Input[] _inputs = [];
        private int _count;
        private short* _y16;
        private float* _lower, _upper;

        /// <summary>The inputs' prepared facts, grown to the most inputs seen (no allocation per step after that).</summary>
        public Span<LogitScreen.Input> Inputs(int count)
        {
            if (_inputs.Length < count) _inputs = new LogitScreen.Input[count];
            return _inputs.AsSpan(0, count);
        }

        public void Set(LogitScreen? screen, int count, short* y16, float* lower, float* upper)
        {
            _screen = screen; _count = count; _y16 = y16; _lower = lower; _upper = upper;
        }

        public void Run(int start, int end)
        {
            LogitScreen screen = _screen!;
            int columns = screen.Columns, rows = screen.Rows;
            var y16 = new ReadOnlySpan<short>(_y16, checked(_count * columns));
            Span<long> dots = stackalloc long[ChunkRows * Q8ExactDots.MaxTokensPerPass];
            for (int r0 = start; r0 < end; r0 += ChunkRows)
            {
                int count = Math.Min(ChunkRows, end - r0);
                for (int t0 = 0; t0 < _count; t0 += Q8ExactDots.MaxTokensPerPass)
                {
                    int tokens = Math.Min(Q8ExactDots.MaxTokensPerPass, _count - t0);
                    kernels.DotQ8ExactTokens(screen.Head.Weights, columns, y16.Slice(t0 * columns, tokens * columns), tokens, r0, count, dots, ChunkRows);
                    for (int t = 0; t < tokens; t++)
                    {
                        ref readonly LogitScreen.Input input = ref _inputs[t0 + t];
                        if (!input.IsUsable) continue;
                        long at = (long)(t0 + t) * rows + r0;
                        screen.Bounds(input, r0, dots.Slice(t * ChunkRows, count), new Span<float>(_lower + at, count), new Span<float>(_upper + at, count));
                    }
                }
            }
        }
    }

    /// <summary>
    /// Screened head, step 1: bounds lower[v] ≤ logit_v ≤ upper[v] of every row for <paramref name="count"/>
    /// inputs (y: count × columns) in one pass over the int8 rows: input i's bounds go to lower/upper[i · rows …],
    /// the same whatever inputs share the pass. usable[i] is false when input i is not finite (its bounds are
    /// left as they were; the caller uses the full head).
    /// </summary>
    internal void HeadBounds(ReadOnlySpan<float> y, int count, Span<short> y16, Span<float> lower, Span<float> upper, Span<bool> usable)
    {
        LogitScreen screen = Screen ?? throw new InvalidOperationException("the LM head is not screened");
        int columns = screen.Columns;
        long bounds = (long)count * screen.Rows;
        if (count <= 0 || y.Length < count * columns || y16.Length < count * columns || lower.Length < bounds || upper.Length < bounds || usable.Length < count)
            throw new ArgumentException("the screened head's buffers do not match its shape");
        lock (_gate)
        {
            Span<LogitScreen.Input> inputs = _screenJob.Inputs(count);
            for (int i = 0; i < count; i++)
            {
                Span<short> y16i = y16.Slice(i * columns, columns);
                inputs[i] = LogitScreen.Prepare(y.Slice(i * columns, columns), y16i);
                usable[i] = inputs[i].IsUsable;
                if (!usable[i]) y16i.Clear();   // the pass still runs over it; its dots are ignored
            }
            fixed (short* py = y16)
            fixed (float* pl = lower)
            fixed (float* pu = upper)
            {
                _screenJob.Set(screen, count, py, pl, pu);
                Pool.ForPieces(screen.Rows, _screenJob, HeadPieceRows);
                _screenJob.Set(null, 0, null, null, null);
            }
        }
    }

    /// <summary>
    /// Screened head, step 2: the exact F16 logits of rows <paramref name="ids"/> (ascending) for the
    /// input y, with the same kernel as the full head, so each equals the full head's value bit for bit.
    /// Runs of consecutive ids are read together, through a staging buffer of the calling thread's own, so
    /// several threads may ask at once (each for its own sequences).
    /// </summary>
    internal void ExactHeadRows(ReadOnlySpan<int> ids, ReadOnlySpan<float> y, Span<float> logits)
    {
        HeadRows rows = ExactRows ?? throw new InvalidOperationException("the LM head is not screened");
        Span<Half> staged = StagedRows(rows.Columns);
        for (int i = 0; i < ids.Length;)
        {
            int run = 1;
            while (i + run < ids.Length && ids[i + run] == ids[i] + run) run++;
            ReadRowsAndDot(_kernels, rows, ids[i], run, y, logits.Slice(i, run), staged);
            i += run;
        }
    }

    /// <summary>Staging for head rows read through <see cref="HeadRows"/>, one per thread (allocated once, then reused).</summary>
    [ThreadStatic] private static Half[]? _stagedRows;

    internal static Span<Half> StagedRows(int columns)
    {
        int length = HeadRows.StagedRows * columns;
        return _stagedRows is { } b && b.Length == length ? b : _stagedRows = new Half[length];
    }

    /// <summary>
    /// F16 head rows first … first + count − 1 read through <paramref name="rows"/> and multiplied by y,
    /// <see cref="HeadRows.StagedRows"/> at a time through <paramref name="staged"/>.
    /// </summary>
    private static void ReadRowsAndDot(KernelSet kernels, HeadRows rows, int first, int count, ReadOnlySpan<float> y, Span<float> dst, Span<Half> staged)
    {
        for (int done = 0; done < count; done += HeadRows.StagedRows)
        {
            int n = Math.Min(HeadRows.StagedRows, count - done);
            rows.Read(first + done, n, staged);
            kernels.DotF16(staged, rows.Columns, y, 0, n, dst.Slice(done, n));
        }
    }

    public void Dispose()
    {
        Pool.Dispose();
        _q8Head?.Dispose();
    }

    /// <summary>
    /// The reference I2_S × int8 product for output rows [rowStart, rowEnd) of every token:
    /// y = ((float)D − (float)act_sum) / s · w_scale (spec §4.3), D from the exact integer dot.
    /// </summary>
    public static void TernaryRows(TernaryMatrix w, QuantizedActivations x, Span<float> y, int rowStart, int rowEnd)
    {
        for (int t = 0; t < x.Tokens; t++)
        {
            ReadOnlySpan<sbyte> q = x.Row(t);
            Span<float> yt = y.Slice(t * w.Rows, w.Rows);
            for (int r = rowStart; r < rowEnd; r++)
            {
                yt[r] = w.BlockScales is null
                    ? I2sKernels.Rescale(I2sKernels.DotScalar(w.Row(r), q), x.Sums[t], x.Scales[t], w.Scale)
                    : BlockScaledDot(w, r, q, x.Scales[t]);
            }
        }
    }

    /// <summary>
    /// A TQ1_0/TQ2_0 row whose 256-element blocks carry different scales: Σ_b d_b·(D_b − S_b) / s,
    /// with D_b the code·q dot and S_b the activation sum of block b (exact integers).
    /// </summary>
    private static float BlockScaledDot(TernaryMatrix w, int row, ReadOnlySpan<sbyte> q, float activationScale)
    {
        const int block = TernaryFormats.BlockElements;
        int blocksPerRow = w.Columns / block;
        ReadOnlySpan<byte> codes = w.Row(row);
        float sum = 0;
        for (int b = 0; b < blocksPerRow; b++)
        {
            ReadOnlySpan<sbyte> qb = q.Slice(b * block, block);
            int d = I2sKernels.DotScalar(codes.Slice(b * block / 4, block / 4), qb);
            int s = 0;
            foreach (sbyte v in qb) s += v;
            sum += ((float)d - (float)s) / activationScale * w.BlockScales![row * blocksPerRow + b];
        }
        return sum;
    }

    /// <summary>
    /// logits[t·rows + v] = Σ_i W[v,i]·x[t,i] for the F16 LM head W [columns, rows] (row v at W + v·columns):
    /// F16 weights widened to F32, F32 input, F32 accumulation.
    /// </summary>
    public void LmHead(Half* weights, int rows, int columns, ReadOnlySpan<float> x, int tokens, Span<float> logits)
    {
        if (x.Length < tokens * columns || logits.Length < (long)tokens * rows)
            throw new ArgumentException($"LM head: {tokens} tokens need {tokens * columns} inputs and {(long)tokens * rows} logits");
        // Screened: the full head is the exact F16 one, its rows read through ExactRows.
        LmHeadQ8? q8 = Screen is null ? _q8Head : null;
        if (q8 is not null && (q8.Rows != rows || q8.Columns != columns))
            throw new ArgumentException($"the quantized head is {q8.Rows}×{q8.Columns}, asked for {rows}×{columns}");
        lock (_gate)
        {
            fixed (float* px = x)
            fixed (float* pl = logits)
            {
                if (ExactRows is not null && q8 is null)
                {
                    // Rows read from the file (screened head's full fallback): one token at a time, as the rows are staged per call.
                    for (int t = 0; t < tokens; t++)
                    {
                        _headJob.Set(weights, q8, ExactRows, columns, px + (long)t * columns, pl + (long)t * rows);
                        Pool.ForPieces(rows, _headJob, HeadPieceRows);
                    }
                }
                else
                {
                    _headJob.Set(weights, q8, null, columns, px, pl, tokens, rows);
                    Pool.ForPieces(rows, _headJob, HeadPieceRows);
                }
                _headJob.Set(null, null, null, 0, null, null);
            }
        }
    }

    /// <summary>The reference F16 dot for LM-head rows [rowStart, rowEnd) of one token.</summary>
    public static void LmHeadRows(Half* weights, int columns, ReadOnlySpan<float> x, Span<float> logits, int rowStart, int rowEnd)
    {
        for (int v = rowStart; v < rowEnd; v++)
        {
            Half* row = weights + (long)v * columns;
            float acc = 0;
            for (int i = 0; i < columns; i++)
                acc += HalfTable.ToFloat(row[i]) * x[i];
            logits[v] = acc;
        }
    }
}

/// <summary>F16 → F32 by table: exact (every half has an exact float) and fast in scalar code.</summary>
internal static class HalfTable
{
    private static readonly float[] Table = Build();

    private static float[] Build()
    {
        var table = new float[65536];
        for (int i = 0; i < table.Length; i++)
            table[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return table;
    }

    public static float ToFloat(Half h) => Table[BitConverter.HalfToUInt16Bits(h)];
}
