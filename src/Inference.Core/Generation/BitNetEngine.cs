using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Inference.Sampling;
using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Generation;

/// <summary>
/// One loaded BitNet model serving generations: tokenizer + forward pass + sampler + stop rules.
/// Generations are serialized (one model, one KV cache, a semaphore); each runs on its own
/// dedicated thread and streams updates back through a channel, so the caller's thread never does
/// the CPU work. The prompt is evaluated in batches, then one token at a time.
/// </summary>
public sealed class BitNetEngine : ITextGenerator, IDisposable
{
    private readonly BitNetModel _model;
    private readonly InferenceState _state;
    private readonly SemaphoreSlim _gate = new(1, 1);
    private readonly bool _reusePrefix;
    // _history[0.._state.Position) are the tokens whose keys and values are in the cache.
    private readonly int[] _history;
    private readonly Sampler _sampler;                 // buffers reused by every generation (they are serialized)
    private bool _disposed;

    private BitNetEngine(BitNetModel model, Tokenizer tokenizer, ChatTemplate chatTemplate, EngineOptions options, int contextLength)
    {
        _model = model;
        Tokenizer = tokenizer;
        ChatTemplate = chatTemplate;
        _state = model.CreateState(contextLength);
        _reusePrefix = options.ReusePromptPrefix;
        _history = new int[contextLength + 1];
        _sampler = new Sampler(SamplingOptions.Greedy, tokenizer.VocabSize);
        var config = model.Config;
        Model = new ModelInfo(
            Id: options.ModelId ?? Path.GetFileNameWithoutExtension(options.ModelPath),
            Path: Path.GetFullPath(options.ModelPath),
            Architecture: config.Architecture,
            ContextLength: contextLength,
            VocabSize: config.VocabSize,
            EmbeddingLength: config.EmbeddingLength,
            LayerCount: config.LayerCount,
            FileSizeBytes: new FileInfo(options.ModelPath).Length,
            KernelName: model.KernelName,
            Threads: model.Threads);
    }

    /// <summary>Load the model and its tokenizer. Bad files throw the reader's typed exceptions.</summary>
    public static BitNetEngine Load(EngineOptions options)
    {
        ArgumentNullException.ThrowIfNull(options);
        ArgumentException.ThrowIfNullOrWhiteSpace(options.ModelPath);
        ArgumentOutOfRangeException.ThrowIfNegative(options.ContextLength);
        PreTokenizerKind? pre = options.PreTokenizer is null ? null : Tokenization.PreTokenizer.Parse(options.PreTokenizer);

        var file = GgufFile.Open(options.ModelPath);
        // The tokenizer is built from the metadata while the model reads its weights, instead of after
        // them: it shortens a cold start.
        // Both only read the parsed file. A model that fails to load leaves the task to finish alone.
        Task<Tokenizer> tokenizerTask = Task.Run(() => Tokenizer.FromGguf(file, pre));
        var model = BitNetModel.Load(file, new ModelLoadOptions
        {
            Threads = options.Threads,
            LmHead = options.LmHead,
            Storage = options.Storage,
            Kernel = options.Kernel,
        });
        try
        {
            var tokenizer = tokenizerTask.GetAwaiter().GetResult();
            if (tokenizer.VocabSize != model.Config.VocabSize)
                throw new TokenizerException(
                    $"the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {model.Config.VocabSize}");
            int context = options.ContextLength > 0 ? options.ContextLength : Math.Min(model.Config.ContextLength, 4096);
            var chatTemplate = ChatTemplate.Choose(file, text => tokenizer.TryGetId(text, out _), options.ChatTemplate);
            return new BitNetEngine(model, tokenizer, chatTemplate, options, context);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    public ModelInfo Model { get; }
    public Tokenizer Tokenizer { get; }
    /// <summary>The network itself (for logits-level work such as the oracle tests).</summary>
    public BitNetModel Network => _model;
    public int ContextLength => _state.ContextLength;

    /// <summary>Prompt tokens the last generation actually evaluated (the rest came from the cached prefix).</summary>
    internal int LastPromptTokensEvaluated { get; private set; }

    /// <summary>BOS is added only when asked and the file wants it (`tokenizer.ggml.add_bos_token`).</summary>
    public IReadOnlyList<int> Tokenize(string text, bool addBos = true, bool parseSpecial = true) =>
        Tokenizer.Encode(text, addBos && Tokenizer.AddBos, parseSpecial);

    public IReadOnlyList<int> Tokenize(IReadOnlyList<PromptPiece> pieces, bool addBos = true) =>
        Tokenizer.Encode(pieces, addBos && Tokenizer.AddBos);

    public string Detokenize(IReadOnlyList<int> tokens, bool renderSpecial = false) => Tokenizer.Decode(tokens, renderSpecial);

    public byte[] TokenBytes(int token) => Tokenizer.TokenBytes(token, renderSpecial: true).ToArray();

    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages) => ChatTemplate.Render(messages);

    /// <summary>The model's chat format: named by the caller, else chosen from the file (<see cref="ChatTemplate.Choose"/>).</summary>
    public ChatTemplate ChatTemplate { get; }

    public long TouchWeights()
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        return _model.TouchStreamedWeights();
    }

    /// <summary>
    /// Stream one generation. Every sampled token yields an update (its text may be empty while a
    /// character or a possible stop string is incomplete); the last update has
    /// <see cref="GenerationUpdate.Final"/> set, carries any text still held back, and its TokenId is
    /// the token that ended the generation (an end-of-generation token or the one completing a stop
    /// string) or -1. Completion tokens count every sampled token, the ending one included.
    /// </summary>
    public async IAsyncEnumerable<GenerationUpdate> GenerateAsync(
        GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Validate(request);
        long started = Stopwatch.GetTimestamp();

        bool entered = false;
        try
        {
            await _gate.WaitAsync(cancellationToken).ConfigureAwait(false);
            entered = true;
        }
        catch (OperationCanceledException)
        {
        }
        if (!entered)
        {
            yield return new GenerationUpdate("", -1,
                new GenerationStats(request.PromptTokens.Count, 0, FinishReason.Cancelled, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero));
            yield break;
        }

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        Task? worker = null;
        try
        {
            var channel = Channel.CreateUnbounded<GenerationUpdate>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
            worker = Task.Factory.StartNew(
                () => Run(request, started, channel.Writer, stop.Token),
                CancellationToken.None, TaskCreationOptions.LongRunning, TaskScheduler.Default);
            // Not cancellable on purpose: on cancellation the worker ends the stream itself with a
            // final Cancelled update within one token.
            await foreach (var update in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
                yield return update;
        }
        finally
        {
            // The consumer may leave early: stop the worker and wait for it before the next
            // generation may touch the KV cache.
            if (worker is not null)
            {
                stop.Cancel();
                try { await worker.ConfigureAwait(false); } catch { /* already surfaced through the channel */ }
            }
            _gate.Release();
        }
    }

    private void Validate(GenerationRequest request)
    {
        ArgumentNullException.ThrowIfNull(request);
        ArgumentNullException.ThrowIfNull(request.PromptTokens);
        ArgumentNullException.ThrowIfNull(request.Sampling);
        ArgumentNullException.ThrowIfNull(request.Stop);
        if (request.PromptTokens.Count == 0)
            throw new ArgumentException("the prompt has no tokens", nameof(request));
        if (request.MaxTokens < 1)
            throw new ArgumentOutOfRangeException(nameof(request), request.MaxTokens, "MaxTokens must be at least 1");
        int vocab = Tokenizer.VocabSize;
        foreach (int token in request.PromptTokens)
            if ((uint)token >= (uint)vocab)
                throw new ArgumentOutOfRangeException(nameof(request), token, $"prompt token id outside the vocabulary (0..{vocab - 1})");
        // The prompt plus at least one generated token must fit; beyond that, generation simply
        // stops at the end of the context with FinishReason.Length.
        if (request.PromptTokens.Count + 1 > ContextLength)
            throw new ContextLengthExceededException(request.PromptTokens.Count, 1, ContextLength);
        if (request.TopLogprobs is int top && (top < 0 || top > Sampling.LogProbabilities.MaxTop))
            throw new ArgumentOutOfRangeException(nameof(request), top, $"TopLogprobs must be 0 … {Sampling.LogProbabilities.MaxTop}");
    }

    // The generation loop, on its own thread. Allocates nothing per token beyond the update itself.
    private void Run(GenerationRequest request, long started, ChannelWriter<GenerationUpdate> output, CancellationToken cancel)
    {
        try
        {
            output.TryWrite(Generate(request, started, output, cancel));
            output.TryComplete();
        }
        catch (Exception e)
        {
            _state.Reset();             // the cache may be half-written
            output.TryComplete(e);
        }
    }

    private GenerationUpdate Generate(GenerationRequest request, long started, ChannelWriter<GenerationUpdate> output, CancellationToken cancel)
    {
        var prompt = request.PromptTokens;
        int n = prompt.Count;
        var sampler = _sampler;
        sampler.Reset(request.Sampling);
        var detokenizer = new StreamingDetokenizer(Tokenizer);
        var stops = new StopStringMatcher(request.Stop);
        DateTimeOffset? deadline = request.Deadline;

        // Reuse the cached prefix: evaluate only what differs. At least the last two prompt tokens are
        // evaluated again: bitnet.cpp computes a multi-token batch slightly differently from a single
        // token (F32 vs F16-rounded operands, see Model/Precision), so re-running only the last token
        // would give other logits than a fresh cache, and a repeated greedy request other text.
        int reuse = 0;
        if (_reusePrefix)
        {
            int limit = Math.Min(_state.Position, n - 2);
            while (reuse < limit && _history[reuse] == prompt[reuse]) reuse++;
        }
        _state.Rewind(Math.Min(reuse, _state.Position));
        LastPromptTokensEvaluated = n - reuse;
        for (int i = 0; i < n; i++) _history[i] = prompt[i];

        // Screening needs only the sampler's candidates; log-probabilities need every logit.
        bool allowScreening = request.TopLogprobs is null;

        // Prompt, in batches, so cancellation and the deadline are honoured between batches; the last
        // batch also chooses the first token.
        long promptStart = Stopwatch.GetTimestamp();
        ReadOnlySpan<float> logits = default;
        int token = -1;
        for (int at = reuse, count; at < n; at += count)
        {
            if (cancel.IsCancellationRequested)
                return Final("", -1, FinishReason.Cancelled, n, 0, promptStart, promptStart, 0, started);
            if (deadline is { } d && DateTimeOffset.UtcNow >= d)
                return Final("", -1, FinishReason.Length, n, 0, promptStart, promptStart, 0, started);
            count = _state.NextChunkLength(n - at);
            if (at + count < n)
                _model.Advance(_state, _history.AsSpan(at, count));
            else
                token = NextToken.Evaluate(_model, _state, sampler, _history.AsSpan(at, count), _history.AsSpan(0, n), allowScreening, out logits);
        }
        long promptEnd = Stopwatch.GetTimestamp();

        int generated = 0;
        long firstToken = 0, lastStep = 0;   // duration of the last single-token step (unknown before the first)
        while (true)
        {
            _history[n + generated] = token;
            generated++;
            if (generated == 1) firstToken = Stopwatch.GetTimestamp();

            if (request.StopOnEndOfGeneration && Tokenizer.IsEndOfGeneration(token))
                return Final(FlushText(detokenizer, stops), token, FinishReason.Stop, n, generated, promptStart, promptEnd, firstToken, started);

            // Only when asked: a pass over the vocabulary and an allocation per token.
            Sampling.TokenLogprobs? logprobs = request.TopLogprobs is int top ? Sampling.LogProbabilities.Of(logits, token, top) : null;
            string text = stops.Push(detokenizer.Push(token), out bool stopped);
            if (stopped)
                return Final(text, token, FinishReason.Stop, n, generated, promptStart, promptEnd, firstToken, started, logprobs);
            output.TryWrite(new GenerationUpdate(text, token, Logprobs: logprobs));

            FinishReason? end = null;
            if (generated >= request.MaxTokens || _state.Position >= _state.ContextLength)
                end = FinishReason.Length;
            else if (cancel.IsCancellationRequested)
                end = FinishReason.Cancelled;
            else if (deadline is { } d && DateTimeOffset.UtcNow + Stopwatch.GetElapsedTime(0, lastStep) >= d)
                end = FinishReason.Length;       // the next token would finish after the deadline
            if (end is FinishReason reason)
                return Final(FlushText(detokenizer, stops), -1, reason, n, generated, promptStart, promptEnd, firstToken, started);

            long stepStart = Stopwatch.GetTimestamp();
            token = NextToken.Evaluate(_model, _state, sampler, _history.AsSpan(n + generated - 1, 1), _history.AsSpan(0, n + generated),
                allowScreening, out logits);
            lastStep = Stopwatch.GetTimestamp() - stepStart;
        }
    }

    private static string FlushText(StreamingDetokenizer detokenizer, StopStringMatcher stops)
    {
        string tail = stops.Push(detokenizer.Flush(), out bool stopped);
        return stopped ? tail : tail + stops.Flush();
    }

    private static GenerationUpdate Final(string text, int token, FinishReason reason, int promptTokens, int completionTokens,
        long promptStart, long promptEnd, long firstToken, long started, Sampling.TokenLogprobs? logprobs = null)
    {
        long now = Stopwatch.GetTimestamp();
        var stats = new GenerationStats(
            promptTokens,
            completionTokens,
            reason,
            PromptEvalTime: Stopwatch.GetElapsedTime(promptStart, promptEnd),
            GenerationTime: completionTokens > 0 ? Stopwatch.GetElapsedTime(promptEnd, now) : TimeSpan.Zero,
            TimeToFirstToken: completionTokens > 0 ? Stopwatch.GetElapsedTime(started, firstToken) : TimeSpan.Zero);
        return new GenerationUpdate(text, token, stats, logprobs);
    }

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        _gate.Wait();
        try { _model.Dispose(); }
        finally { _gate.Release(); }
    }
}
