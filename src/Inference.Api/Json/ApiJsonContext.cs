using System.Text.Json.Serialization;

namespace BitNet.Inference.Api.Json;

/// <summary>
/// Source-generated (AOT-safe) serializers for every wire type. snake_case names, case-sensitive
/// like OpenAI, numbers must be JSON numbers (no "5" for 5; an integer may be written 5.0 or 5e0, see
/// <see cref="JsonIntegers"/>), nulls omitted unless a property says otherwise (OpenAI writes
/// "finish_reason": null, "logprobs": null).
/// </summary>
[JsonSourceGenerationOptions(
    PropertyNamingPolicy = JsonKnownNamingPolicy.SnakeCaseLower,
    DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull,
    NumberHandling = JsonNumberHandling.Strict,
    AllowTrailingCommas = false,
    ReadCommentHandling = System.Text.Json.JsonCommentHandling.Disallow,
    MaxDepth = 64,
    Converters = [typeof(IntegralInt32Converter), typeof(IntegralInt64Converter)])]
[JsonSerializable(typeof(ChatCompletionRequest))]
[JsonSerializable(typeof(CompletionRequest))]
[JsonSerializable(typeof(LegacyCompletionRequest))]
[JsonSerializable(typeof(ChatCompletionResponse))]
[JsonSerializable(typeof(ChatCompletionChunk))]
[JsonSerializable(typeof(UsageStreamChunk<ChatChunkChoice>), TypeInfoPropertyName = "ChatUsageChunk")]
[JsonSerializable(typeof(UsageStreamChunk<CompletionChoice>), TypeInfoPropertyName = "CompletionUsageChunk")]
[JsonSerializable(typeof(CompletionResponse))]
[JsonSerializable(typeof(LegacyCompletionResponse))]
[JsonSerializable(typeof(LegacyStreamChunk))]
[JsonSerializable(typeof(ModelList))]
[JsonSerializable(typeof(ModelEntry))]
[JsonSerializable(typeof(HealthResponse))]
[JsonSerializable(typeof(BatchingHealth))]
[JsonSerializable(typeof(KeepWarmResponse))]
[JsonSerializable(typeof(TokenizeRequest))]
[JsonSerializable(typeof(DetokenizeRequest))]
[JsonSerializable(typeof(DetokenizeResponse))]
[JsonSerializable(typeof(ErrorResponse))]
[JsonSerializable(typeof(string))]
public sealed partial class ApiJsonContext : JsonSerializerContext;

public sealed partial class ApiJsonContext
{
    /// <summary>
    /// The context the API writes with: the generated options plus an encoder that leaves non-ASCII
    /// text as UTF-8 instead of \uXXXX escapes (model output is mostly such text; the API is JSON
    /// over HTTP, never embedded in HTML, so HTML-sensitive characters need no escaping either).
    /// </summary>
    public static ApiJsonContext Wire => _wire ??= new ApiJsonContext(new System.Text.Json.JsonSerializerOptions(Default.Options)
    {
        Encoder = System.Text.Encodings.Web.JavaScriptEncoder.UnsafeRelaxedJsonEscaping,
    });

    private static ApiJsonContext? _wire;
}
