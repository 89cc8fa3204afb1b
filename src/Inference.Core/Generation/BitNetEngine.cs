using System.Diagnostics;
using System.Runtime.CompilerServices;
using System.Threading.Channels;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Generation;

/// <summary>
/// One loaded BitNet model serving generations: tokenizer + forward pass + sampler + stop rules.
/// Generations run together: a scheduler thread (<see cref="StepScheduler"/>) decodes up to
/// <see cref="EngineOptions.Parallel"/> of them in one batch per step over a shared paged KV cache
/// (<see cref="KvCachePool"/>), evaluating prompts in chunks within the same steps; more wait. Each
/// generation streams its updates back through a channel, so the caller's thread never does the CPU work.
/// A generation's tokens and logits do not depend on what runs beside it.
/// </summary>
public sealed class BitNetEngine : ITextGenerator, IDisposable
{
    private readonly BitNetModel _model;
    private readonly StepScheduler _scheduler;
    private readonly int _contextLength;
    private bool _disposed;

    private BitNetEngine(BitNetModel model, Tokenizer tokenizer, ChatTemplate chatTemplate, EngineOptions options, KvSize kv)
    {
        _model = model;
        Tokenizer = tokenizer;
        ChatTemplate = chatTemplate;
        int contextLength = kv.ContextLength;
        _contextLength = contextLength;
        var config = model.Config;
        int parallel = Math.Max(1, options.Parallel);
        var pool = new KvCachePool(config, KvBudget.Blocks(kv.Tokens, contextLength));
        _scheduler = new StepScheduler(model, tokenizer, pool, contextLength, parallel, Math.Max(3, options.PromptTokensPerStep), options.ReusePromptPrefix);
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
            Threads: model.Threads)
        {
            KvCacheNote = kv.Note,
        };
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
        // Both only read the parsed file.
        Task<Tokenizer> tokenizerTask = Task.Run(() => Tokenizer.FromGguf(file, pre));
        BitNetModel model;
        KvSize kv;
        try
        {
            kv = SizeKvCache(file, ModelConfig.FromGguf(file), options);   // before the weights load, which takes seconds
            model = BitNetModel.Load(file, new ModelLoadOptions
            {
                Threads = options.Threads,
                LmHead = options.LmHead,
                Storage = options.Storage,
                Kernel = options.Kernel,
            });
        }
        catch
        {
            // The tokenizer reads its texts straight from the file's mapping: unmapping it under them is a crash.
            try { tokenizerTask.Wait(); } catch (AggregateException) { }
            file.Dispose();
            throw;
        }
        try
        {
            var tokenizer = tokenizerTask.GetAwaiter().GetResult();
            if (tokenizer.VocabSize != model.Config.VocabSize)
                throw new TokenizerException(
                    $"the tokenizer has {tokenizer.VocabSize} tokens but the model's vocabulary is {model.Config.VocabSize}");
            var chatTemplate = ChatTemplate.Choose(file, text => tokenizer.TryGetId(text, out _), options.ChatTemplate);
            return new BitNetEngine(model, tokenizer, chatTemplate, options, kv);
        }
        catch
        {
            model.Dispose();
            throw;
        }
    }

    /// <summary>The context window: the one asked for, else the model's up to 4096.</summary>
    private static int ContextOf(EngineOptions options, ModelConfig config) =>
        options.ContextLength > 0 ? options.ContextLength : Math.Min(config.ContextLength, 4096);

    /// <summary>
    /// The KV cache holds at least one context, and at most <see cref="KvCachePool.MaxTokens"/> positions; more is
    /// an <see cref="ArgumentException"/> saying so (its message without a parameter name: hosts show it as it is).
    /// Within that, <see cref="KvBudget.Size"/> sizes it by the memory the process may use, or refuses it the same
    /// way: its blocks are only touched when used, so a cache too large would load and then be killed mid-request.
    /// </summary>
    private static KvSize SizeKvCache(GgufFile file, ModelConfig config, EngineOptions options)
    {
        int context = ContextOf(options, config);
        long max = KvCachePool.MaxTokens(config);
        if (options.KvCacheTokens > max)
            throw new ArgumentException($"a KV cache of {options.KvCacheTokens} tokens is more than this model allows: at most {max} " +
                $"(a layer's keys, {config.KvDim} values a token, are one array of at most {Array.MaxLength} values)");
        if (context > max)
            throw new ArgumentException($"a context of {context} tokens is more than this model allows: at most {max} " +
                $"(a layer's keys, {config.KvDim} values a token, are one array of at most {Array.MaxLength} values)");
        return KvBudget.Size(config, options.KvCacheTokens, options.Parallel, context, contextGiven: options.ContextLength > 0,
            KvBudget.WeightBytes(file, config, options.Storage, options.LmHead), options.MemoryLimitBytes ?? KvBudget.MemoryLimitBytes());
    }

    public ModelInfo Model { get; }
    public Tokenizer Tokenizer { get; }
    /// <summary>The network itself (for logits-level work such as the oracle tests).</summary>
    public BitNetModel Network => _model;
    public int ContextLength => _contextLength;
    /// <summary>Most generations decoding together.</summary>
    public int Parallel => _scheduler.Parallel;
    /// <summary>The shared KV cache.</summary>
    public KvCachePool KvCache => _scheduler.Pool;

    /// <summary>Prompt tokens the last generation to start actually evaluated (the rest came from shared prefix blocks).</summary>
    internal int LastPromptTokensEvaluated => _scheduler.LastPromptTokensEvaluated;

    /// <summary>Sees every full logits row the scheduler computes (tests compare generations run alone and together).</summary>
    internal LogitsObserver? LogitsObserved { get => _scheduler.LogitsObserved; set => _scheduler.LogitsObserved = value; }

    public GeneratorLoad CurrentLoad => new(
        Parallel: _scheduler.Parallel,
        Running: _scheduler.Running,
        Waiting: _scheduler.Waiting,
        KvBlocksUsed: _scheduler.Pool.UsedBlocks,
        KvBlocksFree: _scheduler.Pool.FreeBlocks,
        KvBlockTokens: _scheduler.Pool.BlockTokens,
        TokensPerSecond: _scheduler.TokensPerSecond,
        GeneratedTokens: _scheduler.GeneratedTokens,
        PromptTokensEvaluated: _scheduler.PromptTokensEvaluated,
        PromptTokensReused: _scheduler.PromptTokensReused);

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
    /// Generations may be started concurrently: they decode together up to <see cref="Parallel"/>.
    /// </summary>
    public async IAsyncEnumerable<GenerationUpdate> GenerateAsync(
        GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ObjectDisposedException.ThrowIf(_disposed, this);
        Validate(request);
        long started = Stopwatch.GetTimestamp();

        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var channel = Channel.CreateUnbounded<GenerationUpdate>(new UnboundedChannelOptions { SingleReader = true, SingleWriter = true });
        var sequence = new SequenceRun(request, _scheduler.Pool, _contextLength, Tokenizer, channel.Writer, started, stop.Token);
        request.Progress?.Reach(GenerationPhase.Waiting);
        _scheduler.Enqueue(sequence);
        try
        {
            // Not cancellable on purpose: on cancellation the scheduler ends the stream itself with a
            // final Cancelled update within one step.
            await foreach (var update in channel.Reader.ReadAllAsync(CancellationToken.None).ConfigureAwait(false))
                yield return update;
        }
        finally
        {
            // The consumer may leave early: the scheduler drops the sequence at its next step; wait until
            // its blocks are back in the pool.
            stop.Cancel();
            await sequence.Retired.Task.ConfigureAwait(false);
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

    public void Dispose()
    {
        if (_disposed) return;
        _disposed = true;
        try { _scheduler.Dispose(); }
        finally { _model.Dispose(); }
    }
}
