using BitNet.Inference.Generation;
using BitNet.Inference.Gguf;

namespace BitNet.Inference.Model;

/// <summary>
/// A ternary model and its forward pass: bitnet.cpp's build_bitnet_158 graph (spec §5) and, as data in
/// <see cref="ModelConfig.Graph"/>, build_bitnet and build_llama (shared/oracle/archs/ARCHS.md): the
/// config, the weights (views into the GGUF file, or into private copies: <see cref="WeightResidency"/>),
/// and <see cref="RunLayers"/>. Immutable after load: many
/// <see cref="InferenceState"/>s may run on one model, one thread per state.
/// </summary>
public sealed unsafe class BitNetModel : IDisposable
{
    private readonly BitNetWeights _weights;
    private readonly MatMul _matmul;
    private readonly ModelLoadOptions _options;
    /// <summary>Set when embedding rows are read from the file rather than the mapping (int8 head, tied).</summary>
    private readonly EmbeddingFile? _embeddingFile;

    private BitNetModel(GgufFile file, ModelConfig config, BitNetWeights weights, ModelLoadOptions options, MatMul matmul, WeightStorage storage)
    {
        File = file;
        Config = config;
        _weights = weights;
        _options = options;
        _matmul = matmul;
        var (fileStart, _) = file.Mapping;
        if (options.LmHead is LmHeadMode.Q8 or LmHeadMode.Screened)
        {
            // Quantizing reads the whole F16 head into our resident set; the int8 copy replaces it, so
            // its pages are unmapped piece by piece as they are done (the page cache keeps them), then
            // once more over the whole range for the pages at piece boundaries. A tied head is also the
            // embedding table: its rows are then read from the file (pread), not through the mapping,
            // where each lookup would map back the page cache's folio around the row, up to 2 MB.
            // Screened: the exact F16 rows are read back (pread) for the few candidates of each token.
            HeadRows? exactRows = options.LmHead != LmHeadMode.Screened ? null
                : weights.IsLmHeadMapped
                    ? HeadRows.FromFile(file, (byte*)weights.LmHead - (byte*)fileStart, config.VocabSize, config.EmbeddingLength)
                    : HeadRows.FromMemory(weights.LmHead, config.VocabSize, config.EmbeddingLength);
            _matmul.EnableQuantizedHead(weights.LmHead, config.VocabSize, config.EmbeddingLength, releaseReadPages: weights.IsLmHeadMapped, exactRows);
            if (weights.IsLmHeadMapped)
                Memory.PageWarmup.ReleaseMapped((nint)weights.LmHead, HeadBytes);
            if (weights.IsLmHeadTied && weights.IsLmHeadMapped)
                _embeddingFile = new EmbeddingFile(file, (byte*)weights.TokenEmbedding - (byte*)fileStart);
        }
        Residency = new WeightResidency(file, storage, StreamedRanges(), _matmul.Pool, options.Log);
        if (storage == WeightStorage.Move && matmul.ReadsFourRowBlocks)
            Residency.WhenMoved(stop => RearrangeMovedCodes(stop, options.Log));
    }

    /// <summary>
    /// <see cref="WeightStorage.Move"/> with kernels that read four-row blocks: once the codes are private pages,
    /// rearrange them matrix by matrix, each while no product runs (<see cref="MatMul.Exclusively"/>), so a
    /// product reads a matrix whole in one order or the other. A decode step waits for one matrix at most.
    /// </summary>
    private void RearrangeMovedCodes(Func<bool> stop, Action<string>? log)
    {
        int rearranged = 0;
        foreach (TernaryMatrix m in _weights.Layers.SelectMany(l => l.TernaryMatrices))
        {
            if (stop()) return;
            if (m.IsConverted || m.CodeOrder != Kernels.I2sCodeOrder.Rows) continue;
            Residency.WithWritable((nint)m.Codes, (long)m.Rows * m.RowBytes,
                () => _matmul.Exclusively(() => { if (m.RearrangeIntoFourRowBlocks()) rearranged++; }));
        }
        log?.Invoke($"weights: {rearranged} moved ternary matrices rearranged into four-row blocks");
    }

    /// <summary>Where the streamed weights live and their move into private memory (<see cref="WeightStorage"/>).</summary>
    public WeightResidency Residency { get; }
    /// <summary><see cref="WeightStorage.Memory"/>, <see cref="WeightStorage.Mapped"/> or <see cref="WeightStorage.Move"/> (Auto is resolved at load).</summary>
    public WeightStorage Storage => Residency.Storage;
    /// <summary><see cref="WeightResidency.MoveCompletion"/>.</summary>
    public Task WeightMove => Residency.MoveCompletion;
    /// <summary><see cref="WeightResidency.StartMove"/>.</summary>
    public void StartWeightMove() => Residency.StartMove();
    /// <summary><see cref="WeightResidency.MovedBytes"/>.</summary>
    public long MovedWeightBytes => Residency.MovedBytes;
    /// <summary><see cref="WeightResidency.BytesMovedAtLoad"/>.</summary>
    public long WeightBytesMovedAtLoad => Residency.BytesMovedAtLoad;
    /// <summary><see cref="WeightResidency.Touch"/>: a keep-warm ping's read of every streamed page.</summary>
    public long TouchStreamedWeights() => Residency.Touch();

    /// <summary>The memory every decoded token reads: each ternary matrix, and the F16 head unless it was quantized.</summary>
    private List<(nint Start, long Bytes)> StreamedRanges()
    {
        var ranges = new List<(nint, long)>();
        foreach (LayerWeights layer in _weights.Layers)
            foreach (TernaryMatrix m in layer.TernaryMatrices)
                ranges.Add(((nint)m.Codes, (long)m.Rows * m.RowBytes));
        if (_options.LmHead == LmHeadMode.F16)
            ranges.Add(((nint)_weights.LmHead, HeadBytes));
        return ranges;
    }

    /// <summary>Bytes of the F16 LM head (vocab × embedding halves).</summary>
    private long HeadBytes => 2L * Config.VocabSize * Config.EmbeddingLength;

    public GgufFile File { get; }
    public ModelConfig Config { get; }
    /// <summary>The matmul kernel in use ("scalar", …).</summary>
    public string KernelName => _matmul.KernelName;
    public int Threads => _matmul.Threads;
    /// <summary>How the LM head is computed (F16 by default).</summary>
    public LmHeadMode LmHeadMode => _options.LmHead;
    /// <summary>Whether <see cref="ForwardScreened"/> is available (<see cref="LmHeadMode.Screened"/>).</summary>
    public bool IsScreened => _matmul.Screen is not null;
    public BitNetWeights Weights => _weights;
    /// <summary>The worker threads the forward pass runs on (tests look at their allocations).</summary>
    internal Threading.WorkerPool Pool => _matmul.Pool;

    /// <summary>Open a GGUF model; throws <see cref="GgufFormatException"/> (or <see cref="ModelFormatException"/>) for bad files.</summary>
    public static BitNetModel Load(string path, ModelLoadOptions? options = null)
    {
        var file = GgufFile.Open(path);
        try
        {
            return Load(file, options);
        }
        catch
        {
            file.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Build the model on an opened file, which the model then owns (disposed with it). For callers
    /// that read other things from the file meanwhile (the tokenizer): when loading fails the file
    /// stays open, and the caller closes it once nothing reads its mapping any more.
    /// </summary>
    public static BitNetModel Load(GgufFile file, ModelLoadOptions? options = null)
    {
        ArgumentNullException.ThrowIfNull(file);
        options ??= new ModelLoadOptions();
        if (options.BatchSize is < 1 or > ModelLoadOptions.MaxBatchSize)
            throw new ArgumentOutOfRangeException(nameof(options), options.BatchSize, $"BatchSize must be 1 to {ModelLoadOptions.MaxBatchSize}");
        MatMul? matmul = null;
        try
        {
            var config = ModelConfig.FromGguf(file);
            int threads = options.Threads > 0 ? options.Threads : Threading.CpuBudget.DefaultThreads();
            matmul = new MatMul(threads, options.Kernel, options.Log);
            List<GgufTensorInfo> streamed = WeightResidency.StreamedTensors(file, config, options.LmHead);
            WeightStorage storage = WeightResidency.Prepare(file, streamed, options.Storage, matmul.Pool, options.Log);
            var weights = BitNetWeights.Load(file, config);
            if (matmul.ReadsFourRowBlocks)
                RearrangeWritableCodes(weights, privateCopies: storage == WeightStorage.Memory, matmul.Pool);
            return new BitNetModel(file, config, weights, options, matmul, storage);
        }
        catch
        {
            matmul?.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Puts the ternary codes the process may write (all of them when the weights are private copies, else
    /// the matrices converted at load) into <see cref="Kernels.I2sCodeOrder.FourRowBlocks"/> order, one matrix
    /// per piece on the pool. Codes still in the file's mapping keep row order for now: for good with
    /// <see cref="WeightStorage.Mapped"/> (the page cache's pages), until the move ends with
    /// <see cref="WeightStorage.Move"/> (<see cref="RearrangeMovedCodes"/>).
    /// </summary>
    private static void RearrangeWritableCodes(BitNetWeights weights, bool privateCopies, Threading.WorkerPool pool)
    {
        var matrices = weights.Layers.SelectMany(l => l.TernaryMatrices).Where(m => privateCopies || m.IsConverted).ToList();
        pool.ForPieces(matrices.Count, new Threading.RangeAction((start, end) =>
        {
            for (int i = start; i < end; i++) matrices[i].RearrangeIntoFourRowBlocks();
        }), piece: 1);
    }

    /// <summary>A fresh sequence state with a KV cache of <paramref name="contextLength"/> positions (≤ 0: the trained context).</summary>
    public InferenceState CreateState(int contextLength = 0)
    {
        int context = contextLength > 0 ? contextLength : Config.ContextLength;
        return new InferenceState(Config, context, Math.Min(_options.BatchSize, context), IsScreened);
    }

    /// <summary>
    /// A workspace for steps over many sequences of <paramref name="pool"/> (<see cref="EvaluateRows"/>):
    /// room for <paramref name="rows"/> rows per step, sequences of up to <paramref name="contextLength"/> positions.
    /// </summary>
    public InferenceState CreateBatchState(KvCachePool pool, int contextLength, int rows)
    {
        ArgumentNullException.ThrowIfNull(pool);
        if (!ReferenceEquals(pool.Config, Config)) throw new ArgumentException("the pool was created for another model", nameof(pool));
        ArgumentOutOfRangeException.ThrowIfLessThan(rows, 1);
        return new InferenceState(Config, contextLength, rows, IsScreened, pool);
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
        if (!IsScreened || state.ScreenInputs == 0) throw new InvalidOperationException("the LM head is not screened (LmHeadMode.Screened)");
        if (logits.Length < ids.Length) throw new ArgumentException($"{ids.Length} logits do not fit {logits.Length}", nameof(logits));
        for (int i = 0; i < ids.Length; i++)
            if ((uint)ids[i] >= (uint)Config.VocabSize || i > 0 && ids[i] <= ids[i - 1])
                throw new ArgumentException("row ids must be ascending vocabulary ids", nameof(ids));
        _matmul.ExactHeadRows(ids, state.Normed.AsSpan(0, Config.EmbeddingLength), logits);
        state.CountExactRows(ids.Length);
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
            KvSequence sequence = state.Sequence;
            int position = sequence.Length;
            if (!sequence.TryReserve(position + count))
                throw new InvalidOperationException("the KV cache pool has no free block for the state's sequence");
            bool round = RoundsOperand(count);
            for (int t = 0; t < count; t++)
            {
                state.RowTokens[t] = tokens[start + t];
                state.RowPositions[t] = position + t;
                state.RowSequences[t] = sequence;
                state.RowRoundsProbabilities[t] = round;
            }
            RunLayers(state, count);
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
            sequence.Length += count;
        }
        Residency.AfterForwardPass();
    }

    /// <summary>Whether an F32 operand of <paramref name="rows"/> rows is rounded to F16 (<see cref="Precision"/>, unless overridden).</summary>
    private bool RoundsOperand(int rows) => _options.RoundToF16Override ?? Precision.RoundsOperandToF16(rows);

    /// <summary>
    /// One step over rows of many sequences: state.RowTokens/RowPositions/RowSequences/RowRoundsProbabilities
    /// [0, <paramref name="rows"/>) describe them, each sequence's rows at consecutive positions from its
    /// length, its blocks already reserved (<see cref="KvSequence.TryReserve"/>). Their K and V go into
    /// their sequences, whose lengths the caller then advances. Every row is computed as it would be in a
    /// pass over its own sequence's rows alone: the matrix products and per-row steps do not mix rows,
    /// and attention reads only the row's sequence.
    /// </summary>
    public void EvaluateRows(InferenceState state, int rows)
    {
        ArgumentNullException.ThrowIfNull(state);
        if (!ReferenceEquals(state.Config, Config))
            throw new ArgumentException("the state was created by another model", nameof(state));
        if (rows < 1 || rows > state.BatchCapacity)
            throw new ArgumentOutOfRangeException(nameof(rows), rows, $"must be 1 … {state.BatchCapacity}");
        for (int t = 0; t < rows; t++)
        {
            KvSequence? sequence = state.RowSequences[t];
            if (sequence is null || state.RowPositions[t] >= sequence.BlockCount * sequence.Pool.BlockTokens)
                throw new InvalidOperationException($"row {t} has no reserved KV block for its position");
            if ((uint)state.RowTokens[t] >= (uint)Config.VocabSize)
                throw new ArgumentOutOfRangeException(nameof(state), state.RowTokens[t], $"token id outside the vocabulary (0..{Config.VocabSize - 1})");
        }
        RunLayers(state, rows);
        Residency.AfterForwardPass();
    }

    /// <summary>The per-row rounding of attention probabilities for a sequence that has <paramref name="rowsOfSequence"/> rows in a step.</summary>
    public bool RoundsAttentionProbabilities(int rowsOfSequence) => RoundsOperand(rowsOfSequence);

    /// <summary>
    /// After <see cref="EvaluateRows"/>: the head inputs of rows <paramref name="rows"/>, each as a single
    /// logits row (F16-rounded, as bitnet.cpp's last-token logits), into state.Normed rows 0 … rows.Length − 1.
    /// </summary>
    public void PrepareHeadInputs(InferenceState state, ReadOnlySpan<int> rows)
    {
        int embd = Config.EmbeddingLength;
        if (rows.Length > state.BatchCapacity) throw new ArgumentException("more head rows than the state holds", nameof(rows));
        bool round = RoundsOperand(1);
        for (int i = 0; i < rows.Length; i++)
        {
            Span<float> y = state.Normed.AsSpan(i * embd, embd);
            Kernels.VectorMath.RmsNormRow(state.Residual.AsSpan(rows[i] * embd, embd), _weights.OutputNorm, y, Config.RmsNormEpsilon);
            if (round) Kernels.F16.RoundThroughHalf(y);
        }
    }

    /// <summary>Full logits of head inputs [first, first + count) prepared by <see cref="PrepareHeadInputs"/> (count × VocabSize, row-major).</summary>
    public void HeadLogits(InferenceState state, int first, int count, Span<float> logits)
    {
        int embd = Config.EmbeddingLength;
        if (first < 0 || count < 0 || first + count > state.BatchCapacity) throw new ArgumentOutOfRangeException(nameof(count));
        if (logits.Length < (long)count * Config.VocabSize) throw new ArgumentException("logits too short", nameof(logits));
        _matmul.LmHead(_weights.LmHead, Config.VocabSize, embd, state.Normed.AsSpan(first * embd, count * embd), count, logits);
    }

    /// <summary>
    /// Screened head (<see cref="IsScreened"/>) on head inputs [first, first + count) prepared by
    /// <see cref="PrepareHeadInputs"/>, in one pass over the int8 head: input first + i's bounds into
    /// state.ScreenLowerOf(i)/ScreenUpperOf(i), the same whatever inputs share the pass. An input that is not
    /// finite has none (state.HasBounds(i) false): its logits come from <see cref="HeadLogits"/>.
    /// </summary>
    public void HeadBounds(InferenceState state, int first, int count)
    {
        if (!IsScreened) throw new InvalidOperationException("the LM head is not screened (LmHeadMode.Screened)");
        if (first < 0 || count <= 0 || first + count > state.BatchCapacity) throw new ArgumentOutOfRangeException(nameof(count));
        int embd = Config.EmbeddingLength;
        state.EnsureScreenInputs(count);
        _matmul.HeadBounds(state.Normed.AsSpan(first * embd, count * embd), count, state.ScreenInput, state.AllScreenLower, state.AllScreenUpper, state.ScreenUsable!);
    }

    /// <summary>After <see cref="HeadBounds(InferenceState, int, int)"/>: the exact F16 logits of rows <paramref name="ids"/> (ascending) for head input <paramref name="input"/>.</summary>
    public void ExactLogits(InferenceState state, int input, ReadOnlySpan<int> ids, Span<float> logits)
    {
        if (!IsScreened || state.ScreenInputs == 0) throw new InvalidOperationException("the LM head is not screened (LmHeadMode.Screened)");
        int embd = Config.EmbeddingLength;
        _matmul.ExactHeadRows(ids, state.Normed.AsSpan(input * embd, embd), logits);
        state.CountExactRows(ids.Length);
    }

    /// <summary>
    /// The transformer blocks for the state's n rows, each at its position in its sequence (spec §5.1). The
    /// matrix products split their rows over the worker pool; the per-token steps between them
    /// (<see cref="TokenStep"/>) split the batch's tokens; attention splits (token, KV group) pairs.
    /// </summary>
    private void RunLayers(InferenceState s, int n)
    {
        var c = Config;
        var pool = _matmul.Pool;
        var act = s.Quantized;
        TokenSteps steps = s.Steps;
        steps.Begin(_weights, _embeddingFile);

        // x = token_embd[token]
        steps.Run(pool, n, TokenStep.Embed);

        for (int l = 0; l < c.LayerCount; l++)
        {
            var w = _weights.Layers[l];

            // [x = d + x1 of the previous layer;] h = RMSNorm(x) ⊙ attn_norm, quantized to int8 once
            steps.Run(pool, n, TokenStep.AttentionInput, w, l, addResidual: l > 0);

            // Q = Wq·h, K = Wk·h, V = Wv·h, in one dispatch
            _matmul.Ternary(act, w.Query, s.Query, w.Key, s.Key, w.Value, s.Value);

            // [biases;] RoPE on every Q and K head; then K and V go into the cache as F16
            steps.Run(pool, n, TokenStep.RopeAndCache, w, l);

            // A_h = softmax(Q_h·K_hᵀ / √head_dim + causal mask) · V_h, heads concatenated
            // (each row's probabilities rounded to F16 or not by its sequence's row count: RowRoundsProbabilities)
            s.AttentionJob.Run(pool, s, l, n);

            // [A = RMSNorm(A) ⊙ attn_sub_norm: the sub-norm comes before the output projection]
            steps.Run(pool, n, TokenStep.AttentionOutputInput, w, l);

            // O = Wo·A
            _matmul.Ternary(w.Output, act, s.Projected);

            // x1 = O + x;  g = RMSNorm(x1) ⊙ ffn_norm
            steps.Run(pool, n, TokenStep.FeedForwardInput, w, l);

            // z = Wgate·g, u = Wup·g, in one dispatch (in file order, so the weights stream sequentially)
            _matmul.Ternary(act, w.Gate, s.Gate, w.Up, s.Up);

            // f = act(z) ⊙ u (relu² or SiLU) [, then RMSNorm(f) ⊙ ffn_sub_norm before the down projection]
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
        if (RoundsOperand(count))
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
        _matmul.HeadBounds(y, 1, s.ScreenInput, s.AllScreenLower, s.AllScreenUpper, s.ScreenUsable!);
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
        Residency.Dispose();   // first: a move writes into the file's mapping
        _matmul.Dispose();
        File.Dispose();
    }
}
