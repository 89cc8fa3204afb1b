using BitNet.Inference.Generation;
using BitNet.Inference.Gguf;

namespace BitNet.Inference.Model;

/// <summary>
/// A BitNet b1.58 model (architectures bitnet-b1.58 and bitnet-25) and its forward pass, bitnet.cpp's
/// build_bitnet_158 graph (spec §5). Weights are used where they lie in the memory-mapped GGUF file,
/// from private copies of the ones every token streams, or from the mapping while it is moved into
/// private memory in place (<see cref="WeightStorage"/>). Immutable after
/// load: many <see cref="InferenceState"/>s may run on one model, one thread per state.
/// </summary>
public sealed unsafe class BitNetModel : IDisposable
{
    private readonly BitNetWeights _weights;
    private readonly MatMul _matmul;
    private readonly ModelLoadOptions _options;
    /// <summary>Set when embedding rows are read from the file rather than the mapping (int8 head, tied).</summary>
    private readonly EmbeddingFile? _embeddingFile;
    /// <summary><see cref="WeightStorage.Move"/>: the streamed weights' move into private memory, running in the background.</summary>
    private readonly Threading.MappingMove? _move;

    private BitNetModel(GgufFile file, ModelConfig config, BitNetWeights weights, ModelLoadOptions options, MatMul matmul, WeightStorage storage)
    {
        File = file;
        Config = config;
        _weights = weights;
        _options = options;
        _matmul = matmul;
        Storage = storage;
        var (fileStart, _) = file.Mapping;
        if (options.LmHead is LmHeadMode.Q8 or LmHeadMode.Screened)
        {
            // Quantizing reads the whole F16 head into our resident set; the int8 copy replaces it, so
            // its pages are unmapped piece by piece as they are done (the page cache keeps them), then
            // once more over the whole range for the pages at piece boundaries. A tied head is also the
            // embedding table: its rows are then read from the file (pread), not through the mapping,
            // where each lookup would map back the page cache's folio around the row, up to 2 MB
            // (measured: 2-thread bench peak RSS 1078 MiB with the file cached in 2 MB folios, against
            // 902 MiB in 4 KB pages).
            // Screened: the exact F16 rows are read back (pread) for the few candidates of each token.
            HeadRows? exactRows = options.LmHead != LmHeadMode.Screened ? null
                : weights.IsLmHeadMapped
                    ? HeadRows.FromFile(file, (byte*)weights.LmHead - (byte*)fileStart, config.VocabSize, config.EmbeddingLength)
                    : HeadRows.FromMemory(weights.LmHead, config.VocabSize, config.EmbeddingLength);
            _matmul.EnableQuantizedHead(weights.LmHead, config.VocabSize, config.EmbeddingLength, releaseReadPages: weights.IsLmHeadMapped, exactRows);
            if (weights.IsLmHeadMapped)
                Threading.PageWarmup.ReleaseMapped((nint)weights.LmHead, HeadBytes);
            if (weights.IsLmHeadTied && weights.IsLmHeadMapped)
                _embeddingFile = new EmbeddingFile(file, (byte*)weights.TokenEmbedding - (byte*)fileStart);
        }
        // Mapped weights: map their pages now, in bulk and in parallel, instead of one fault per page
        // during the first token (the file is usually in the page cache already). Copies are resident.
        List<(nint Start, long Bytes)> streamed = StreamedRanges();
        if (storage is WeightStorage.Mapped or WeightStorage.Move)
            Threading.PageWarmup.Populate(_matmul.Pool, streamed);
        if (storage == WeightStorage.Move)
        {
            // Only what lies in the mapping: matrices converted at load (TQ1_0, TQ2_0, ternary floats)
            // and a converted head are owned arrays already.
            long mappingEnd = fileStart + file.FileSize;
            var inMapping = streamed.Where(r => r.Start >= fileStart && r.Start + r.Bytes <= mappingEnd).ToList();
            // Windows as ranges for the plans below; the last one ends at the mapping's last page, past the file's end.
            var (now, later) = SplitBySmallPages(Threading.MappingMove.Windows(fileStart, file.FileSize, inMapping)
                .Select(w => (w.Start, Math.Min(w.Bytes, mappingEnd - w.Start))).ToList());
            if (now.Count > 0)
            {
                // Windows the page cache serves in 4 KB pages (a file partly cached so, or folios split
                // since): moved now, on every thread, so the first token streams nothing through 4 KB
                // file pages (1-3 GB/s on this project's VM, against 26-30 from 2 MB pages).
                long moved = 0;
                Threading.SplitInTwo.Run(now.Count, (from, to) =>
                {
                    var part = Threading.MappingMove.Plan(fileStart, file.FileSize, now.GetRange(from, to - from), ReadUpToEnd, options.Log);
                    part.RunHere();
                    Interlocked.Add(ref moved, part.MovedBytes);
                }, parallel: _matmul.Threads > 1);
                WeightBytesMovedAtLoad = moved;
                options.Log?.Invoke($"weights: {moved / (1 << 20)} MiB of the mapping in 4 KB pages moved into private memory at load");
            }
            _move = Threading.MappingMove.Plan(fileStart, file.FileSize, later, ReadUpToEnd, options.Log);
            options.Log?.Invoke($"weights: {_move.TotalBytes / (1 << 20)} MiB of the mapping to be moved into private memory in the background after the first forward pass");
        }

        // The move's reads: the file's bytes at an offset, as many as it has (the last window runs to the end of its page).
        int ReadUpToEnd(long offset, Span<byte> destination)
        {
            int bytes = (int)Math.Clamp(file.FileSize - offset, 0, destination.Length);
            file.ReadAt(offset, destination[..bytes]);
            return bytes;
        }
    }

    /// <summary>
    /// <see cref="WeightStorage.Move"/>: completes when the streamed weights have been moved into private
    /// memory (or the move stopped); already complete for the other storages.
    /// </summary>
    public Task WeightMove => _move?.Completion ?? Task.CompletedTask;

    /// <summary>
    /// <see cref="WeightStorage.Move"/>: start moving the weights now rather than after the first forward
    /// pass (which starts it otherwise). A host that is idle between loading and its first request calls
    /// this. Does nothing for the other storages, or once started.
    /// </summary>
    /// <remarks>
    /// Why not at load: started there (on a thread of the lowest priority, as it then was), the move ran
    /// alongside the tokenizer and the first forward pass and delayed the first token (AOT start → first
    /// token, 2B4T, 2 threads: 339–350 ms against 210–217 ms mapped; started after the first pass:
    /// 225–232 ms). Each window's mremap takes the address space's write lock, which page faults of the
    /// other threads (new buffers) wait for, and flushes their TLBs.
    /// </remarks>
    public void StartWeightMove() => _move?.StartInBackground();

    /// <summary>Bytes of the mapping moved into private memory so far (<see cref="WeightStorage.Move"/>), at load and after, else 0.</summary>
    public long MovedWeightBytes => WeightBytesMovedAtLoad + (_move?.MovedBytes ?? 0);

    /// <summary><see cref="WeightStorage.Move"/>: bytes moved at load because the page cache served them in 4 KB pages; else 0.</summary>
    public long WeightBytesMovedAtLoad { get; }

    /// <summary>
    /// Read one byte of every 4 KiB page of the memory each decoded token reads (a keep-warm ping):
    /// mapped pages the OS let go of are mapped again, private copies are touched. Only those ranges:
    /// touching a quantized head's F16 pages would map back the 657 MB (2B4T) that loading released.
    /// Starts a <see cref="WeightStorage.Move"/> not started yet. Returns the bytes covered.
    /// </summary>
    public long TouchStreamedWeights()
    {
        StartWeightMove();   // a keep-warm ping comes while the model is idle: the time to move (WeightStorage.Move)
        long touched = 0;
        foreach (var (start, bytes) in StreamedRanges())
        {
            Threading.PageWarmup.TouchPages(start, bytes);
            touched += bytes;
        }
        return touched;
    }

    /// <summary>
    /// The move's windows split into those with a page mapped in 4 KB entries (or not mapped), to move at
    /// load, and those mapped by 2 MB entries throughout, to move after the first pass. All of them
    /// later when the kernel cannot tell (<see cref="Threading.PageTableScan"/>).
    /// </summary>
    private static (List<(nint Start, long Bytes)> Now, List<(nint Start, long Bytes)> Later) SplitBySmallPages(List<(nint Start, long Bytes)> windows)
    {
        if (windows.Count == 0) return ([], windows);
        long from = windows[0].Start, to = windows[^1].Start + windows[^1].Bytes;
        if (Threading.PageTableScan.SmallPageRanges((nint)from, to - from) is not { } small) return ([], windows);
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

    /// <summary>The memory every decoded token reads: each ternary matrix, and the F16 head unless it was quantized.</summary>
    private List<(nint Start, long Bytes)> StreamedRanges()
    {
        var ranges = new List<(nint, long)>();
        foreach (LayerWeights layer in _weights.Layers)
            foreach (TernaryMatrix m in new[] { layer.Query, layer.Key, layer.Value, layer.Output, layer.Gate, layer.Up, layer.Down })
                ranges.Add(((nint)m.Codes, (long)m.Rows * m.RowBytes));
        if (_options.LmHead == LmHeadMode.F16)
            ranges.Add(((nint)_weights.LmHead, HeadBytes));
        return ranges;
    }

    /// <summary>Bytes of the F16 LM head (vocab × embedding halves).</summary>
    private long HeadBytes => 2L * Config.VocabSize * Config.EmbeddingLength;

    /// <summary>
    /// <see cref="WeightStorage.Auto"/>: start on the mapping and move it into memory in the background
    /// when the page cache serves the streamed tensors in 2 MB folios mapped whole (the first token
    /// needs no copy, and streams nearly as fast as private memory), else copy at load.
    /// Sampled in the first, middle and last streamed tensor: how a file came into the cache (large
    /// reads, or small writes) is usually the same throughout. (The probe reads /proc: Linux only.)
    /// </summary>
    private static WeightStorage ChooseStorage(GgufFile file, List<GgufTensorInfo> streamed, Action<string>? log)
    {
        var samples = new List<(nint, long)>();
        if (streamed.Count > 0)
            foreach (int i in new[] { 0, streamed.Count / 2, streamed.Count - 1 }.Distinct())
                samples.Add(((nint)file.GetTensorPointer(streamed[i]), streamed[i].ByteSize));
        // Half the windows whole or more (a file whose first megabytes came in smaller folios, or whose
        // folios were split since): the move takes the 4 KB parts at load where the kernel can point them
        // out (Threading.PageTableScan), which costs a fraction of copying everything. Mostly 4 KB pages:
        // a copy, which needs no page-table entries for them first.
        bool partsAtLoad = Threading.PageTableScan.IsAvailable;
        var (windows, whole) = Threading.HugeFolioProbe.CountWholeHugeFolios(samples, keepPartial: partsAtLoad);
        bool move = windows > 0 && (whole == windows || (partsAtLoad && Threading.HugeFolioProbe.MostlyWhole(windows, whole)));
        log?.Invoke(move
            ? whole == windows ? "weights: mapped, then moved into memory (the page cache holds them in 2 MB folios)"
                               : $"weights: mapped, then moved into memory ({whole} of {windows} sampled 2 MB windows are whole folios; the rest move at load)"
            : "weights: copied to memory (the page cache holds them in 4 KB pages, or could not be checked)");
        return move ? WeightStorage.Move : WeightStorage.Memory;
    }

    /// <summary>
    /// The tensors to read into private memory under <see cref="WeightStorage.Memory"/>: the I2_S
    /// matrices (other ternary formats are repacked into owned arrays anyway) and, with the F16 head,
    /// the head's F16 tensor. Not the head that q8/screened quantize: its F16 rows are read once at
    /// load through the mapping, then only by pread, so a copy would only add to the resident set; nor
    /// an untied embedding table, of which each token reads one row.
    /// </summary>
    private static List<GgufTensorInfo> StreamedTensors(GgufFile file, ModelConfig config, LmHeadMode lmHead)
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

    public GgufFile File { get; }
    public ModelConfig Config { get; }
    /// <summary>The matmul kernel in use ("scalar", …).</summary>
    public string KernelName => _matmul.KernelName;
    public int Threads => _matmul.Threads;
    /// <summary>How the LM head is computed (F16 by default).</summary>
    public LmHeadMode LmHeadMode => _options.LmHead;
    /// <summary>Where the streamed weights live: <see cref="WeightStorage.Memory"/>, <see cref="WeightStorage.Mapped"/> or <see cref="WeightStorage.Move"/> (Auto is resolved at load).</summary>
    public WeightStorage Storage { get; }
    /// <summary>Whether <see cref="ForwardScreened"/> is available (<see cref="LmHeadMode.Screened"/>).</summary>
    public bool IsScreened => _matmul.Screen is not null;
    public BitNetWeights Weights => _weights;
    /// <summary>The worker threads the forward pass runs on (tests look at their allocations).</summary>
    internal Threading.WorkerPool Pool => _matmul.Pool;

    /// <summary>Open a GGUF model; throws <see cref="GgufFormatException"/> (or <see cref="ModelFormatException"/>) for bad files.</summary>
    public static BitNetModel Load(string path, ModelLoadOptions? options = null) => Load(GgufFile.Open(path), options);

    /// <summary>
    /// Build the model on an opened file, which the model then owns (disposed with it, or here if
    /// loading fails). For callers that read other things from the file meanwhile (the tokenizer).
    /// </summary>
    public static BitNetModel Load(GgufFile file, ModelLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        options ??= new ModelLoadOptions();
        if (options.BatchSize < 1)
        {
            file.Dispose();
            throw new ArgumentOutOfRangeException(nameof(options), "BatchSize must be at least 1");
        }
        MatMul? matmul = null;
        try
        {
            var config = ModelConfig.FromGguf(file);
            int threads = options.Threads > 0 ? options.Threads : Threading.CpuBudget.DefaultThreads();
            matmul = new MatMul(threads, options.Kernel, options.Log);
            // Ask for huge pages on the whole mapping first: when the file is read from disk through it (a
            // container's first start), the page cache then holds it in 2 MB folios, each mapped by one
            // entry instead of 512. Measured on 2B4T cached that way: mapping all weights 0.09–0.13 s
            // instead of 0.14–0.20 s. The mapping runs to the end of the file's last page: advise all of it,
            // or the kernel splits off that last page as a mapping of its own.
            var (fileStart, fileBytes) = file.Mapping;
            long page = Environment.SystemPageSize;
            Threading.PageWarmup.PreferHugePages(fileStart, (fileBytes + page - 1) / page * page);
            List<GgufTensorInfo> streamed = StreamedTensors(file, config, options.LmHead);
            WeightStorage storage = options.Storage != WeightStorage.Auto ? options.Storage : ChooseStorage(file, streamed, options.Log);
            if (storage == WeightStorage.Memory)
            {
                // On every core the process may use, even when the model computes on fewer: filling fresh
                // memory waits on the OS (and, in a VM, on the host) more than on the copy itself, and
                // two threads overlap those waits (2B4T on this project's 2-vCPU VM: 0.1 s on two
                // threads where one sometimes took 0.5–2 s).
                int copyThreads = Math.Max(threads, Threading.CpuBudget.DefaultThreads());
                using var copyPool = copyThreads > threads ? new Threading.WorkerPool(copyThreads) : null;
                Threading.WorkerPool pool = copyPool ?? matmul.Pool;
                file.CopyTensorsToMemory(streamed, (count, read) => pool.ForPieces(count, new Threading.RangeAction(read), piece: 1));
            }
            var weights = BitNetWeights.Load(file, config);
            return new BitNetModel(file, config, weights, options, matmul, storage);
        }
        catch
        {
            matmul?.Dispose();
            file.Dispose();
            throw;
        }
    }

    /// <summary>A fresh sequence state with a KV cache of <paramref name="contextLength"/> positions (≤ 0: the trained context).</summary>
    public InferenceState CreateState(int contextLength = 0)
    {
        int context = contextLength > 0 ? contextLength : Config.ContextLength;
        return new InferenceState(Config, context, Math.Min(_options.BatchSize, context), IsScreened);
    }

    /// <summary>
    /// Evaluate <paramref name="tokens"/> at state.Position onwards (one batch, processed in chunks) and
    /// return the last token's logits, valid until the next call on this state.
    /// </summary>
    public ReadOnlySpan<float> Forward(InferenceState state, scoped ReadOnlySpan<int> tokens)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        Evaluate(state, tokens, state.Logits, Output.Last);
        return state.Logits;
    }

    /// <summary>Evaluate <paramref name="tokens"/> into the KV cache without computing any logits (a prompt's earlier batches).</summary>
    public void Advance(InferenceState state, scoped ReadOnlySpan<int> tokens)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        Evaluate(state, tokens, default, Output.None);
    }

    /// <summary>
    /// Screened head (<see cref="IsScreened"/>): evaluate <paramref name="tokens"/>, then bound the last
    /// token's F16 logits, lower[v] ≤ logit_v ≤ upper[v] for every row v (state.ScreenLower/ScreenUpper,
    /// valid until the next call). Exact logits of chosen rows follow from <see cref="ExactLogits"/>.
    /// Returns false when no bound exists (a non-finite hidden state); state.Logits then holds the full F16 logits.
    /// </summary>
    public bool ForwardScreened(InferenceState state, scoped ReadOnlySpan<int> tokens)
    {
        if (!IsScreened) throw new InvalidOperationException("the LM head is not screened (LmHeadMode.Screened)");
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        Evaluate(state, tokens, default, Output.LastScreened);
        return state.ScreenIsValid;
    }

    /// <summary>
    /// After <see cref="ForwardScreened"/>: the exact F16 logits of rows <paramref name="ids"/> (ascending),
    /// equal bit for bit to what <see cref="Forward"/> would return for them.
    /// </summary>
    public void ExactLogits(InferenceState state, ReadOnlySpan<int> ids, Span<float> logits)
    {
        if (!IsScreened || state.ScreenInput is null) throw new InvalidOperationException("the LM head is not screened (LmHeadMode.Screened)");
        if (logits.Length < ids.Length) throw new ArgumentException($"{ids.Length} logits do not fit {logits.Length}", nameof(logits));
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)Config.VocabSize || i > 0 && ids[i] <= ids[i - 1])
                throw new ArgumentException("row ids must be ascending vocabulary ids", nameof(ids));
        _matmul.ExactHeadRows(ids, state.Normed.AsSpan(0, Config.EmbeddingLength), logits, state.StagedHeadRows!);
        state.ExactRowsComputed += ids.Length;
    }

    private enum Output { None, Last, All, LastScreened }

    /// <summary>Like <see cref="Forward"/>, writing every token's logits (tokens.Length × VocabSize, row-major).</summary>
    public void ForwardAll(InferenceState state, ReadOnlySpan<int> tokens, Span<float> logits)
    {
        if (tokens.IsEmpty) throw new ArgumentException("no tokens to evaluate", nameof(tokens));
        if (logits.Length < (long)tokens.Length * Config.VocabSize)
            throw new ArgumentException($"logits holds {logits.Length} floats, {tokens.Length} × {Config.VocabSize} are needed", nameof(logits));
        Evaluate(state, tokens, logits, Output.All);
    }

    private void Evaluate(InferenceState state, ReadOnlySpan<int> tokens, Span<float> logits, Output output)
    {
        if (!ReferenceEquals(state.Config, Config))
            throw new ArgumentException("the state was created by another model", nameof(state));
        if (state.Position + tokens.Length > state.ContextLength)
            throw new ContextLengthExceededException(state.Position, tokens.Length, state.ContextLength);
        foreach (int token in tokens)
            if ((uint)token >= (uint)Config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(tokens), token, $"token id outside the vocabulary (0..{Config.VocabSize - 1})");

        for (int start = 0, count; start < tokens.Length; start += count)
        {
            count = state.NextChunkLength(tokens.Length - start);
            bool isLastChunk = start + count == tokens.Length;
            RunLayers(state, tokens.Slice(start, count));
            switch (output)
            {
                case Output.Last when isLastChunk:
                    Logits(state, count - 1, 1, logits);
                    break;
                case Output.All:
                    Logits(state, 0, count, logits.Slice(start * Config.VocabSize, count * Config.VocabSize));
                    break;
                case Output.LastScreened when isLastChunk:
                    ScreenedLogits(state, count - 1);
                    break;
            }
            state.Position += count;
        }
        if (_move is { IsStarted: false } move) move.StartInBackground();   // after the first pass: see StartWeightMove
    }

    /// <summary>
    /// The transformer blocks for n tokens at positions state.Position … + n − 1 (spec §5.1). The
    /// matrix products split their rows over the worker pool; the per-token steps between them
    /// (<see cref="TokenStep"/>) split the batch's tokens; attention splits (token, KV group) pairs.
    /// </summary>
    private void RunLayers(InferenceState s, ReadOnlySpan<int> tokens)
    {
        var c = Config;
        int n = tokens.Length, pos0 = s.Position;
        var pool = _matmul.Pool;
        var act = s.Quantized;
        TokenSteps steps = s.Steps;
        steps.Begin(_weights, tokens, pos0, _embeddingFile);

        // x = token_embd[token]
        steps.Run(pool, n, TokenStep.Embed);

        for (int l = 0; l < c.LayerCount; l++)
        {
            var w = _weights.Layers[l];

            // [x = d + x1 of the previous layer;] h = RMSNorm(x) ⊙ attn_norm, quantized to int8 once
            steps.Run(pool, n, TokenStep.AttentionInput, w, l, addResidual: l > 0);

            // Q = Wq·h, K = Wk·h, V = Wv·h, in one dispatch
            _matmul.Ternary(act, w.Query, s.Query, w.Key, s.Key, w.Value, s.Value);

            // RoPE (NEOX) on every Q and K head; then K and V go into the cache as F16
            steps.Run(pool, n, TokenStep.RopeAndCache, w, l);

            // A_h = softmax(Q_h·K_hᵀ / √head_dim + causal mask) · V_h, heads concatenated
            bool roundProbabilities = _options.RoundToF16Override ?? Precision.RoundsOperandToF16(n);
            s.AttentionJob.Run(pool, c, s.Query, s.KeyCache[l], s.ValueCache[l], s.ContextLength, pos0, n, s.AttentionOut, roundProbabilities);

            // A = RMSNorm(A) ⊙ attn_sub_norm (the sub-norm comes before the output projection)
            steps.Run(pool, n, TokenStep.AttentionOutputInput, w, l);

            // O = Wo·A
            _matmul.Ternary(w.Output, act, s.Projected);

            // x1 = O + x;  g = RMSNorm(x1) ⊙ ffn_norm
            steps.Run(pool, n, TokenStep.FeedForwardInput, w, l);

            // z = Wgate·g, u = Wup·g, in one dispatch (in file order, so the weights stream sequentially)
            _matmul.Ternary(act, w.Gate, s.Gate, w.Up, s.Up);

            // f = RMSNorm(relu(z)² ⊙ u) ⊙ ffn_sub_norm (before the down projection)
            steps.Run(pool, n, TokenStep.DownInput, w, l);

            // d = Wdown·f (added to x1 at the start of the next layer)
            _matmul.Ternary(w.Down, act, s.Projected);
        }

        // x = d + x1 of the last layer
        steps.Run(pool, n, TokenStep.Residual);
    }

    /// <summary>
    /// y = RMSNorm(x) ⊙ output_norm; logits = LM head · y (F16 weights, F32 accumulation). y is rounded to
    /// F16 first only when bitnet.cpp does so: when a single row of logits is computed (see <see cref="Precision"/>).
    /// </summary>
    private void Logits(InferenceState s, int firstToken, int count, Span<float> logits) =>
        _matmul.LmHead(_weights.LmHead, Config.VocabSize, Config.EmbeddingLength, HeadInput(s, firstToken, count), count, logits);

    /// <summary>The LM head's input y for <paramref name="count"/> tokens from <paramref name="firstToken"/>, in state.Normed.</summary>
    private Span<float> HeadInput(InferenceState s, int firstToken, int count)
    {
        int embd = Config.EmbeddingLength;
        Span<float> y = s.Normed.AsSpan(0, count * embd);
        RmsNorm(s.Residual.AsSpan(firstToken * embd, count * embd), _weights.OutputNorm, y, count, Config.RmsNormEpsilon);
        if (_options.RoundToF16Override ?? Precision.RoundsOperandToF16(count))
            Kernels.F16.RoundThroughHalf(y);
        return y;
    }

    /// <summary>
    /// The last token's head input y (<see cref="HeadInput"/>, one row: F16-rounded), kept in
    /// state.Normed for <see cref="ExactLogits"/>; then the bounds of every row, or the full head if y is not finite.
    /// </summary>
    private void ScreenedLogits(InferenceState s, int token)
    {
        Span<float> y = HeadInput(s, token, 1);
        s.ScreenIsValid = _matmul.HeadBounds(y, s.ScreenInput!, s.ScreenLower!, s.ScreenUpper!);
        if (!s.ScreenIsValid)
            _matmul.LmHead(_weights.LmHead, Config.VocabSize, Config.EmbeddingLength, y, 1, s.Logits);
    }

    /// <summary>
    /// RMSNorm of each row, as ggml computes it (spec §5.2): Σ (float)(x·x) accumulated in double,
    /// mean = (float)(Σ/n), scale = 1/sqrtf(mean + eps), y = x·scale, then y·weight (two float roundings).
    /// <paramref name="output"/> may be the input.
    /// </summary>
    internal static void RmsNorm(ReadOnlySpan<float> input, ReadOnlySpan<float> weight, Span<float> output, int rows, float eps)
    {
        int width = weight.Length;
        for (int r = 0; r < rows; r++)
            Kernels.VectorMath.RmsNormRow(input.Slice(r * width, width), weight, output.Slice(r * width, width), eps);
    }

    public void Dispose()
    {
        _move?.Dispose();   // first: it writes into the file's mapping
        _matmul.Dispose();
        File.Dispose();
    }
}
