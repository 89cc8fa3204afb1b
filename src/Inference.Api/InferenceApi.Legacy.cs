using System.Text;
using System.Text.Json;
using BitNet.Inference.Api.Json;
using BitNet.Inference.Generation;

namespace BitNet.Inference.Api;

// The legacy payload (llama.cpp's /completion): {"prompt","n_predict","temperature","top_p","top_k","repeat_penalty"}
// as JSON or as base64-encoded JSON, sent to a Lambda by direct invoke, to "/" of a function URL,
// or to POST /completion (llama.cpp's native route). Answered llama.cpp-style: content, token
// counts, timings, why it stopped ("stream": true streams llama.cpp-style: {"content","stop":false}
// per piece, then the full answer). {"keep_warm": true} on the same route is a keep-warm ping.
public sealed partial class InferenceApi
{
    /// <summary>Answers a legacy payload (never throws for client mistakes: they become 4xx responses).
    /// <paramref name="canStream"/>: whether the transport can carry a stream. A direct invoke returns one JSON payload,
    /// so there "stream": true is answered with the whole answer, as if it were absent, not with SSE frames.</summary>
    public async Task<ApiResponse> LegacyAsync(ReadOnlyMemory<byte> body, DateTimeOffset? transportDeadline, bool canStream = true,
        CancellationToken cancellationToken = default)
    {
        try
        {
            LegacyCompletionRequest request = ParseBody(DecodeLegacyBody(body), ApiJsonContext.Wire.LegacyCompletionRequest);
            if (request.KeepWarm == true)
                return KeepWarm();
            ITextGenerator generator = ReadyGenerator();
            PromptInput input = request.Prompt
                ?? throw ApiException.BadRequest("'prompt' is required: a non-empty string or token ids", "prompt", "missing_required_parameter");
            if (input.Text == "" || input.Tokens is { Count: 0 })
                throw ApiException.BadRequest("'prompt' must not be empty: send a non-empty string or token ids", "prompt", "invalid_value");

            IReadOnlyList<int> prompt = PromptTokens(input, generator, request.ParseSpecial);
            int context = generator.Model.ContextLength;
            var generation = new GenerationRequest
            {
                PromptTokens = prompt,
                MaxTokens = CompletionBudget(NPredictLimit(request.NPredict), "n_predict", prompt.Count, context, "prompt"),
                Sampling = Sampling(request.Temperature, request.TopP, request.TopK, request.MinP, request.RepeatPenalty, request.RepeatLastN,
                    request.PresencePenalty, request.FrequencyPenalty, request.Seed, context),
                Stop = StopList(request.Stop),
            };

            DateTimeOffset deadline = DeadlineFor(transportDeadline);
            if (request.Stream == true && canStream)
                return await StreamAsync(leave => GenerationSession.Start(generator, _queue, generation, deadline, "prompt", 1, cancellationToken, leave),
                    session => LegacyFrames(session, generator.Model.Id), cancellationToken).ConfigureAwait(false);

            GenerationSession session = await GenerationSession.StartAsync(
                generator, _queue, generation, deadline, "prompt", 1, cancellationToken).ConfigureAwait(false);
            await using var owned = session;
            var text = new StringBuilder();
            GenerationStats? stats = null;
            await foreach (GenerationUpdate update in session.ReadAllAsync().ConfigureAwait(false))
            {
                text.Append(update.Text);
                stats = update.Final;
            }
            cancellationToken.ThrowIfCancellationRequested();
            return ApiResponse.Json(200, JsonSerializer.SerializeToUtf8Bytes(
                LegacyResult(text.ToString(), generator.Model.Id, stats!), ApiJsonContext.Wire.LegacyCompletionResponse));
        }
        catch (ApiException ex)
        {
            return Error(ex);
        }
    }

    private static LegacyCompletionResponse LegacyResult(string content, string model, GenerationStats stats) => new(
        content, model, stats.CompletionTokens, stats.PromptTokens,
        Stop: true,
        StopType: stats.StopString is not null ? "word" : stats.FinishReason == FinishReason.Stop ? "eos" : "limit",
        StoppingWord: stats.StopString ?? "",
        FinishReason: FinishReasonText(stats.FinishReason),
        Timings(stats));

    /// <summary>llama.cpp's /completion stream: {"content","stop":false} per piece, then the full answer (content "") with stop true.</summary>
    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> LegacyFrames(GenerationSession session, string model)
    {
        await foreach (GenerationUpdate update in session.ReadAllAsync().ConfigureAwait(false))
        {
            if (update.Text.Length > 0)
                yield return SseFrame(JsonSerializer.SerializeToUtf8Bytes(new LegacyStreamChunk(update.Text, false), ApiJsonContext.Wire.LegacyStreamChunk));
            if (update.Final is { } stats && stats.FinishReason != FinishReason.Cancelled)
                yield return SseFrame(JsonSerializer.SerializeToUtf8Bytes(LegacyResult("", model, stats), ApiJsonContext.Wire.LegacyCompletionResponse));
        }
    }

    private static LegacyTimings Timings(GenerationStats stats)
    {
        double promptMs = Ms(stats.PromptEvalTime), predictedMs = Ms(stats.GenerationTime);
        static double PerToken(double ms, int n) => n > 0 ? Math.Round(ms / n, 3) : 0;
        static double PerSecond(double ms, int n) => ms > 0 ? Math.Round(n * 1000.0 / ms, 3) : 0;
        return new LegacyTimings(
            stats.PromptTokens, promptMs, PerToken(promptMs, stats.PromptTokens), PerSecond(promptMs, stats.PromptTokens),
            stats.CompletionTokens, predictedMs, PerToken(predictedMs, stats.CompletionTokens), PerSecond(predictedMs, stats.CompletionTokens));
    }

    /// <summary>
    /// A JSON object as is; otherwise base64 of a JSON object, bare or as a JSON string
    /// ("eyJwcm9tcHQiOi..." or "\"eyJwcm9tcHQiOi...\"").
    /// </summary>
    internal static ReadOnlyMemory<byte> DecodeLegacyBody(ReadOnlyMemory<byte> body)
    {
        ReadOnlySpan<byte> trimmed = body.Span.Trim(" \t\r\n"u8);
        // Base64 of a JSON object starts with 'e' ('{'), or with 'I', 'C' or 'D' (white space): a body that is a
        // JSON scalar is JSON, for ParseBody to say it is not an object, not base64 to decode into garbage.
        if (trimmed.IsEmpty || trimmed[0] is (byte)'{' or (byte)'[' or (byte)'-' or >= (byte)'0' and <= (byte)'9' ||
            trimmed.SequenceEqual("null"u8) || trimmed.SequenceEqual("true"u8) || trimmed.SequenceEqual("false"u8))
            return body;
        string text;
        try
        {
            // From the bytes, so that invalid UTF-8 or an escaped lone surrogate ("\ud800") is refused as no text,
            // as the same string is in any other body, not read as base64 of something.
            text = trimmed[0] == (byte)'"'
                ? JsonSerializer.Deserialize(trimmed, ApiJsonContext.Wire.String) ?? ""
                : Encoding.UTF8.GetString(trimmed);
        }
        catch (JsonException ex)
        {
            throw JsonErrors.ToApiException(ex);
        }
        byte[] decoded = new byte[text.Length];
        if (!Convert.TryFromBase64String(text.Trim(), decoded, out int written))
            throw ApiException.BadRequest("the request body is neither a JSON object nor base64-encoded JSON", null, "invalid_json");
        return decoded.AsMemory(0, written);
    }
}
