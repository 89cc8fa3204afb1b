namespace BitNet.Inference.Generation;

// The seam between the engine and everything that serves it (API layer, hosts, CLI).
// Hosts and the API layer only ever see ITextGenerator; the engine implements it.

/// <summary>Sampling settings. Defaults are bitnet.cpp's (llama.cpp common_sampler_params).</summary>
public sealed record SamplingOptions
{
    /// <summary>0 (or less) means greedy argmax, ties to the lowest token id.</summary>
    public float Temperature { get; init; } = 0.8f;
    /// <summary>Keep the k most likely tokens; 0 or less disables the filter.</summary>
    public int TopK { get; init; } = 40;
    /// <summary>Nucleus filter on the un-tempered softmax; 1 disables it.</summary>
    public float TopP { get; init; } = 0.95f;
    /// <summary>Keep tokens with logit ≥ max + ln(min_p); 0 disables it.</summary>
    public float MinP { get; init; } = 0.05f;
    /// <summary>1 disables the repeat penalty (bitnet.cpp's default).</summary>
    public float RepeatPenalty { get; init; } = 1.0f;
    /// <summary>How many recent tokens the penalties look at.</summary>
    public int RepeatLastN { get; init; } = 64;
    public float FrequencyPenalty { get; init; }
    public float PresencePenalty { get; init; }
    /// <summary>Null draws a random seed; a fixed seed makes sampling reproducible.</summary>
    public ulong? Seed { get; init; }
    /// <summary>Added to the logits of these tokens before the penalties (OpenAI's and llama.cpp's logit_bias); null or empty: none.</summary>
    public IReadOnlyDictionary<int, float>? LogitBias { get; init; }

    public static SamplingOptions Greedy { get; } = new() { Temperature = 0f };
}

/// <summary>One generation: prompt tokens in, up to <see cref="MaxTokens"/> tokens out.</summary>
public sealed record GenerationRequest
{
    /// <summary>The full prompt, already tokenized (BOS included when wanted).</summary>
    public required IReadOnlyList<int> PromptTokens { get; init; }
    /// <summary>Most tokens to generate; must be ≥ 1.</summary>
    public int MaxTokens { get; init; } = 128;
    public SamplingOptions Sampling { get; init; } = new();
    /// <summary>Strings that end generation; the stop string itself is not emitted.</summary>
    public IReadOnlyList<string> Stop { get; init; } = [];
    /// <summary>Stop on end-of-generation tokens (EOS, &lt;|eot_id|&gt;). Normally true.</summary>
    public bool StopOnEndOfGeneration { get; init; } = true;
    /// <summary>When set, generation ends with <see cref="FinishReason.Length"/> before this instant.</summary>
    public DateTimeOffset? Deadline { get; init; }
    /// <summary>When set (0 … <see cref="Sampling.LogProbabilities.MaxTop"/>), every generated token's update
    /// carries its log-probability and this many most likely alternatives.</summary>
    public int? TopLogprobs { get; init; }
    /// <summary>When set, the generator tells here what the generation waits for before its first token.</summary>
    public GenerationProgress? Progress { get; init; }
}

/// <summary>What a generation waits for before its first token, from the least advanced to the most.</summary>
public enum GenerationPhase
{
    /// <summary>Nothing reported (a generator that does not report leaves it so).</summary>
    Unknown,
    /// <summary>Waiting to be admitted: for a decoding slot or for KV cache blocks.</summary>
    Waiting,
    /// <summary>Admitted: its prompt is being evaluated.</summary>
    EvaluatingPrompt,
}

/// <summary>
/// Where a generation is before its first token, for a caller that tells its client (a stream's keep-alive comments):
/// the generator moves it on, the caller reads it whenever it likes. Several generations may share one (the choices
/// of one prompt): it only moves forward, so it tells the most advanced of them.
/// </summary>
public sealed class GenerationProgress
{
    private volatile int _phase;

    public GenerationPhase Phase => (GenerationPhase)_phase;

    /// <summary>Moves to <paramref name="phase"/> unless the progress is already there or beyond.</summary>
    public void Reach(GenerationPhase phase)
    {
        int current;
        while ((current = _phase) < (int)phase && Interlocked.CompareExchange(ref _phase, (int)phase, current) != current)
        {
        }
    }
}

public enum FinishReason
{
    /// <summary>An end-of-generation token or a stop string.</summary>
    Stop,
    /// <summary>MaxTokens, the context, or the deadline was reached.</summary>
    Length,
    /// <summary>The caller cancelled (client went away).</summary>
    Cancelled,
}

/// <summary>Counts and timings of a finished generation; <see cref="StopString"/> is the stop string that ended it, if one did.</summary>
public sealed record GenerationStats(
    int PromptTokens,
    int CompletionTokens,
    FinishReason FinishReason,
    TimeSpan PromptEvalTime,
    TimeSpan GenerationTime,
    TimeSpan TimeToFirstToken,
    string? StopString = null);

/// <summary>
/// One step of a generation stream. Text is the newly completed UTF-8 text (never half a
/// character, never part of a stop string); it may be empty. The last update has Final set.
/// When the request asked for log-probabilities, Logprobs holds those of the generated tokens whose
/// text starts in this update's Text, in order (null when none does): a token whose text is held back
/// while it could begin a stop string comes with the update that releases it, and a token cut off by a
/// stop string never comes. An end-of-generation token has none.
/// </summary>
public sealed record GenerationUpdate(string Text, int TokenId, GenerationStats? Final = null,
    IReadOnlyList<Sampling.TokenLogprobs>? Logprobs = null)
{
    public bool IsFinal => Final is not null;
}

/// <summary>Who wrote a message. <see cref="Tool"/> is a tool's result handed back to the model (OpenAI's "tool" role).</summary>
public enum ChatRole { System, User, Assistant, Tool }

public sealed record ChatMessage(ChatRole Role, string Content);

/// <summary>What a loaded model is; served by /v1/models and /health.</summary>
public sealed record ModelInfo(
    string Id,
    string Path,
    string Architecture,
    int ContextLength,
    int VocabSize,
    int EmbeddingLength,
    int LayerCount,
    long FileSizeBytes,
    string KernelName,
    int Threads)
{
    /// <summary>Why the context is smaller than the model's default (the memory holds no more KV cache), for the
    /// load's log line; null when it is not.</summary>
    public string? KvCacheNote { get; init; }
}

/// <summary>
/// A prompt (with what generation reserves) does not fit the context window.
/// Hosts answer it with 400 "context_length_exceeded".
/// </summary>
public sealed class ContextLengthExceededException(int promptTokens, int requestedTokens, int contextLength)
    : InvalidOperationException(
        $"the prompt has {promptTokens} tokens and {requestedTokens} more were requested, " +
        $"but the context holds {contextLength}")
{
    public int PromptTokens { get; } = promptTokens;
    public int RequestedTokens { get; } = requestedTokens;
    public int ContextLength { get; } = contextLength;
}

/// <summary>
/// What a generator is doing now (served by /health and /metrics): sequences decoding together and
/// waiting for a slot or KV blocks, the KV pool's blocks, and throughput.
/// </summary>
public sealed record GeneratorLoad(
    int Parallel,
    int Running,
    int Waiting,
    int KvBlocksUsed,
    int KvBlocksFree,
    int KvBlockTokens,
    double TokensPerSecond,
    long GeneratedTokens,
    long PromptTokensEvaluated,
    long PromptTokensReused);

/// <summary>A loaded model that can tokenize and generate. Thread-safe: concurrent generations may run together (up to the generator's parallelism) or wait.</summary>
public interface ITextGenerator
{
    ModelInfo Model { get; }

    /// <summary>Tokenize text; parseSpecial turns control-token text such as &lt;|eot_id|&gt; into its id.</summary>
    IReadOnlyList<int> Tokenize(string text, bool addBos = true, bool parseSpecial = true);

    /// <summary>
    /// Tokenize a prompt made of pieces, as if concatenated, where control-token text becomes a
    /// control token only inside pieces that allow it (a chat template's text, not the messages
    /// it wraps). The default tokenizes piece by piece; an engine should tokenize the text between
    /// control tokens as one run, as <see cref="Tokenization.Tokenizer.Encode(IReadOnlyList{Tokenization.PromptPiece}, bool)"/> does.
    /// </summary>
    IReadOnlyList<int> Tokenize(IReadOnlyList<Tokenization.PromptPiece> pieces, bool addBos = true)
    {
        var tokens = new List<int>();
        for (int i = 0; i < pieces.Count; i++)
            tokens.AddRange(Tokenize(pieces[i].Text, addBos && i == 0, pieces[i].ParseSpecial));
        if (pieces.Count == 0)
            tokens.AddRange(Tokenize("", addBos, parseSpecial: false));
        return tokens;
    }

    /// <summary>Text of tokens; special tokens render as their text only when asked.</summary>
    string Detokenize(IReadOnlyList<int> tokens, bool renderSpecial = false);

    /// <summary>A token's exact bytes (a byte-level BPE token may hold part of a UTF-8 character); special
    /// tokens give their text. The default decodes the token alone, which loses such partial characters.</summary>
    byte[] TokenBytes(int token) => System.Text.Encoding.UTF8.GetBytes(Detokenize([token], renderSpecial: true));

    /// <summary>The model's chat format (<see cref="ChatTemplate"/>), ending with the assistant prompt. Throws
    /// <see cref="ChatTemplateException"/> when the model's template is unknown.</summary>
    string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages);

    /// <summary>The chat format the model uses; the 2B4T format unless the generator says otherwise.</summary>
    ChatTemplate ChatTemplate => ChatTemplate.Bitnet;

    /// <summary>
    /// Run one generation. Throws ContextLengthExceededException before any work when the prompt
    /// does not fit. Cancellation ends the stream with FinishReason.Cancelled (a final update) and
    /// takes effect within one token.
    /// </summary>
    IAsyncEnumerable<GenerationUpdate> GenerateAsync(GenerationRequest request, CancellationToken cancellationToken = default);

    /// <summary>Read every page of the weights a token reads once, so the next request does not fault them in. Returns bytes touched.</summary>
    long TouchWeights();

    /// <summary>The generator's current load; null when it does not report one.</summary>
    GeneratorLoad? CurrentLoad => null;
}
