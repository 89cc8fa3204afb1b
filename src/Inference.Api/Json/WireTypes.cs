using System.Text.Json;
using System.Text.Json.Serialization;

namespace BitNet.Inference.Api.Json;

// The wire shapes of the API, as OpenAI (and llama.cpp's server for the extras) define them.
// Request types are mutable classes so the source-generated deserializer fills them; every field
// is optional here and validated by the handlers, which produce the error messages.
// Unknown fields are ignored, as OpenAI and llama.cpp's server do; a known field with the wrong
// type is a 400 naming the field.

public sealed class ChatCompletionRequest
{
    public string? Model { get; set; }
    public List<ChatMessageWire?>? Messages { get; set; }
    public int? MaxTokens { get; set; }
    public int? MaxCompletionTokens { get; set; }
    /// <summary>llama.cpp's name for max_tokens.</summary>
    public int? NPredict { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    [JsonConverter(typeof(StopSequencesConverter))]
    public StopSequences? Stop { get; set; }
    public long? Seed { get; set; }
    public bool? Stream { get; set; }
    public StreamOptionsWire? StreamOptions { get; set; }
    public int? N { get; set; }
    public float? PresencePenalty { get; set; }
    public float? FrequencyPenalty { get; set; }
    public int? TopK { get; set; }
    public float? MinP { get; set; }
    public float? RepeatPenalty { get; set; }
    public int? RepeatLastN { get; set; }
    /// <summary>Not supported; only checked so a request that needs tools is refused rather than misunderstood.</summary>
    public JsonElement? Tools { get; set; }
    /// <summary>"none" and "auto" are accepted (no tools: no tool call); "required" or a named function is refused like tools.</summary>
    [JsonConverter(typeof(ToolChoiceConverter))]
    public ToolChoice? ToolChoice { get; set; }
    public ResponseFormatWire? ResponseFormat { get; set; }
    /// <summary>Return each output token's log-probability (and <see cref="TopLogprobs"/> alternatives).</summary>
    public bool? Logprobs { get; set; }
    public int? TopLogprobs { get; set; }
    /// <summary>Token id (as a string key) → bias from -100 to 100, added to that token's logit before sampling.</summary>
    public Dictionary<string, float>? LogitBias { get; set; }
    /// <summary>An end-user id (OpenAI's abuse monitoring); checked to be a string, otherwise unused.</summary>
    public string? User { get; set; }
}

public sealed class ChatMessageWire
{
    public string? Role { get; set; }
    [JsonConverter(typeof(MessageContentConverter))]
    public MessageContent? Content { get; set; }
    public string? Name { get; set; }
    /// <summary>An assistant message's calls of tools (from an earlier answer); its content may then be null. Not rendered.</summary>
    public JsonElement? ToolCalls { get; set; }
    /// <summary>The deprecated single call of an assistant message; like <see cref="ToolCalls"/>.</summary>
    public JsonElement? FunctionCall { get; set; }
    /// <summary>Which call a "tool" message answers.</summary>
    public string? ToolCallId { get; set; }
}

/// <summary>"content": a string, or an array of parts of which only {"type":"text","text":...} are supported.</summary>
public sealed record MessageContent(string Text);

/// <summary>"tool_choice": a string (<see cref="Mode"/>), or an object naming a function (<see cref="Function"/>).</summary>
public sealed record ToolChoice(string? Mode, bool Function);

/// <summary>"stop": a string or a list of strings.</summary>
public sealed record StopSequences(IReadOnlyList<string> Values);

public sealed class StreamOptionsWire
{
    public bool? IncludeUsage { get; set; }
}

public sealed class ResponseFormatWire
{
    public string? Type { get; set; }
}

public sealed class CompletionRequest
{
    public string? Model { get; set; }
    [JsonConverter(typeof(PromptConverter))]
    public PromptInput? Prompt { get; set; }
    public int? MaxTokens { get; set; }
    public int? NPredict { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    [JsonConverter(typeof(StopSequencesConverter))]
    public StopSequences? Stop { get; set; }
    public long? Seed { get; set; }
    public bool? Stream { get; set; }
    public StreamOptionsWire? StreamOptions { get; set; }
    public int? N { get; set; }
    public int? BestOf { get; set; }
    public bool? Echo { get; set; }
    public string? Suffix { get; set; }
    /// <summary>The legacy API's form: an integer, how many alternatives to list per token (0 gives just the token's own).</summary>
    public int? Logprobs { get; set; }
    public float? PresencePenalty { get; set; }
    public float? FrequencyPenalty { get; set; }
    public int? TopK { get; set; }
    public float? MinP { get; set; }
    public float? RepeatPenalty { get; set; }
    public int? RepeatLastN { get; set; }
    /// <summary>Raw prompt: control-token text in the prompt becomes control tokens (llama.cpp's /tokenize flag). Default false: plain text.</summary>
    public bool? ParseSpecial { get; set; }
    /// <summary>Token id (as a string key) → bias from -100 to 100, added to that token's logit before sampling.</summary>
    public Dictionary<string, float>? LogitBias { get; set; }
    /// <summary>An end-user id (OpenAI's abuse monitoring); checked to be a string, otherwise unused.</summary>
    public string? User { get; set; }
}

/// <summary>"prompt": a string, a list with one string, or a list of token ids.</summary>
public sealed record PromptInput(string? Text, IReadOnlyList<int>? Tokens);

/// <summary>
/// The legacy direct-invoke payload (llama.cpp /completion fields):
/// {"prompt","n_predict","temperature","top_p","top_k","repeat_penalty"} plus a few llama.cpp extras.
/// </summary>
public sealed class LegacyCompletionRequest
{
    /// <summary>As on /v1/completions: a string, a list with one string, or token ids (llama.cpp's /completion takes them too).</summary>
    [JsonConverter(typeof(PromptConverter))]
    public PromptInput? Prompt { get; set; }
    public int? NPredict { get; set; }
    public float? Temperature { get; set; }
    public float? TopP { get; set; }
    public int? TopK { get; set; }
    public float? MinP { get; set; }
    public float? RepeatPenalty { get; set; }
    public int? RepeatLastN { get; set; }
    public float? PresencePenalty { get; set; }
    public float? FrequencyPenalty { get; set; }
    public long? Seed { get; set; }
    [JsonConverter(typeof(StopSequencesConverter))]
    public StopSequences? Stop { get; set; }
    public bool? Stream { get; set; }
    public bool? KeepWarm { get; set; }
    /// <summary>Raw prompt, as on /v1/completions.</summary>
    public bool? ParseSpecial { get; set; }
}

// ---- Responses -------------------------------------------------------------------------------

public sealed record Usage(
    [property: JsonPropertyName("prompt_tokens")] int PromptTokens,
    [property: JsonPropertyName("completion_tokens")] int CompletionTokens,
    [property: JsonPropertyName("total_tokens")] int TotalTokens);

public sealed record ChatCompletionResponse(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<ChatChoice> Choices,
    Usage Usage);

public sealed record ChatChoice(
    int Index,
    AssistantMessage Message,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChatLogprobs? Logprobs,
    string FinishReason);

/// <summary>Chat logprobs: one entry per output token.</summary>
public sealed record ChatLogprobs(
    IReadOnlyList<ChatTokenLogprob> Content,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Refusal);

/// <summary>A token (its text; <c>bytes</c> are its exact UTF-8 bytes, which may be part of a character), its log-probability, the most likely alternatives.</summary>
public sealed record ChatTokenLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes, IReadOnlyList<ChatTopLogprob> TopLogprobs);

public sealed record ChatTopLogprob(string Token, float Logprob, IReadOnlyList<int> Bytes);

public sealed record AssistantMessage(string Role, string Content);

/// <summary>A chunk of a chat stream that did not ask for usage: it has no "usage" field.</summary>
public sealed record ChatCompletionChunk(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<ChatChunkChoice> Choices);

/// <summary>A chunk of a stream with <c>stream_options.include_usage</c> (chat or completions): as OpenAI
/// sends it, every chunk has "usage", null until the last chunk, which has the counts and no choices.</summary>
public sealed record UsageStreamChunk<TChoice>(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<TChoice> Choices,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] Usage? Usage);

public sealed record ChatChunkChoice(
    int Index,
    ChatDelta Delta,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] ChatLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

public sealed record ChatDelta(string? Role, string? Content);

public sealed record CompletionResponse(
    string Id,
    string Object,
    long Created,
    string Model,
    IReadOnlyList<CompletionChoice> Choices,
    Usage? Usage);

public sealed record CompletionChoice(
    string Text,
    int Index,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] CompletionLogprobs? Logprobs,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? FinishReason);

/// <summary>The legacy completions API's logprobs: parallel lists over the output tokens; text_offset is
/// where each token's text starts in the choice's text (echoed prompt included).</summary>
public sealed record CompletionLogprobs(
    IReadOnlyList<string> Tokens,
    IReadOnlyList<float> TokenLogprobs,
    IReadOnlyList<Dictionary<string, float>> TopLogprobs,
    IReadOnlyList<int> TextOffset);

/// <summary>llama.cpp's /completion answer, trimmed to what we know: text, counts, timings, why it stopped.</summary>
public sealed record LegacyCompletionResponse(
    string Content,
    string Model,
    int TokensPredicted,
    int TokensEvaluated,
    bool Stop,
    // "eos" (end-of-generation token), "word" (a stop string: StoppingWord), "limit" (n_predict, context or deadline).
    string StopType,
    string StoppingWord,
    string FinishReason,
    LegacyTimings Timings);

/// <summary>One piece of a streamed /completion answer.</summary>
public sealed record LegacyStreamChunk(string Content, bool Stop);

public sealed record LegacyTimings(
    int PromptN,
    double PromptMs,
    double PromptPerTokenMs,
    double PromptPerSecond,
    int PredictedN,
    double PredictedMs,
    double PredictedPerTokenMs,
    double PredictedPerSecond);

public sealed record ModelList(string Object, IReadOnlyList<ModelEntry> Data);

public sealed record ModelEntry(string Id, string Object, long Created, string OwnedBy, ModelMeta Meta);

public sealed record ModelMeta(
    string Architecture,
    int ContextLength,
    int ServedContextLength,
    int VocabSize,
    int EmbeddingLength,
    int LayerCount,
    long FileSizeBytes,
    string Kernel,
    int Threads);

/// <summary>peak_resident_bytes (VmHWM) lets load generators (bitnet bench-cost) report memory of a remote host.</summary>
public sealed record HealthResponse(string Status, string? Model, double? LoadSeconds, int QueueWaiting, bool Busy, long? ResidentBytes, long? PeakResidentBytes,
    BatchingHealth? Batching = null);

/// <summary>The generator's continuous batching in /health: sequences running together and waiting (for a slot or KV blocks), the KV pool, throughput.</summary>
public sealed record BatchingHealth(int Parallel, int RunningSequences, int WaitingSequences, int KvBlocksUsed, int KvBlocksFree, int KvBlockTokens,
    double TokensPerSecond, long PromptTokensEvaluated, long PromptTokensReused);

public sealed record KeepWarmResponse(string Status, string ModelState, long TouchedBytes, double ElapsedMs);

public sealed record ErrorResponse(ErrorBody Error);

public sealed record ErrorBody(
    string Message,
    string Type,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Param,
    [property: JsonIgnore(Condition = JsonIgnoreCondition.Never)] string? Code);

/// <summary>llama.cpp's POST /tokenize body.</summary>
public sealed class TokenizeRequest
{
    public string? Content { get; set; }
    /// <summary>Add BOS (when the model adds one to prompts).</summary>
    public bool? AddSpecial { get; set; }
    /// <summary>Control-token text (&lt;|eot_id|&gt;) becomes its token; off by default, unlike llama.cpp.</summary>
    public bool? ParseSpecial { get; set; }
    public bool? WithPieces { get; set; }
}

/// <summary>llama.cpp's POST /detokenize body.</summary>
public sealed class DetokenizeRequest
{
    public List<int>? Tokens { get; set; }
}

public sealed record DetokenizeResponse(string Content);
