using System.Text;
using System.Text.Json;
using BitNet.Inference.Api.Json;
using BitNet.Inference.Generation;

namespace BitNet.Inference.Api;

// POST /v1/completions
public sealed partial class InferenceApi
{
    /// <summary>A completion prompt as token ids: given ids, checked against the vocabulary, or the text tokenized
    /// with BOS (control-token texts only with parse_special). Serves /v1/completions and /completion.</summary>
    private static IReadOnlyList<int> PromptTokens(PromptInput input, ITextGenerator generator, bool? parseSpecial)
    {
        if (input.Tokens?.Where(t => t < 0 || t >= generator.Model.VocabSize).Cast<int?>().FirstOrDefault() is int bad)
            throw ApiException.BadRequest($"prompt token ids must be from 0 to {generator.Model.VocabSize - 1} (the vocabulary); got {bad}", "prompt", "invalid_value");
        return input.Tokens ?? generator.Tokenize(input.Text!, addBos: true, parseSpecial: parseSpecial == true);
    }

    private async Task<ApiResponse> CompletionsAsync(ApiRequest request, CancellationToken cancellationToken)
    {
        CompletionRequest body = ParseBody(request.Body, ApiJsonContext.Wire.CompletionRequest);
        ITextGenerator generator = ReadyGenerator();
        CheckModel(body.Model);
        CheckN(body.N);
        if (body.BestOf is { } bestOf && bestOf != 1)
            throw ApiException.BadRequest($"best_of must be 1; got {bestOf}", "best_of", "invalid_value");
        if (!string.IsNullOrEmpty(body.Suffix))
            throw ApiException.BadRequest("suffix (insertion) is not supported by this model", "suffix", "unsupported_parameter");

        PromptInput input = body.Prompt ?? throw ApiException.BadRequest("'prompt' is required", "prompt", "missing_required_parameter");
        IReadOnlyList<int> prompt = PromptTokens(input, generator, body.ParseSpecial);
        if (prompt.Count == 0)
            throw ApiException.BadRequest("'prompt' must not be empty", "prompt", "invalid_value");
        int context = generator.Model.ContextLength;
        (int? requested, string param) = body.MaxTokens is not null ? (body.MaxTokens, "max_tokens") : (NPredictLimit(body.NPredict), "n_predict");
        var generation = new GenerationRequest
        {
            PromptTokens = prompt,
            MaxTokens = CompletionBudget(requested, param, prompt.Count, context, "prompt"),
            Sampling = Sampling(body.Temperature, body.TopP, body.TopK, body.MinP, body.RepeatPenalty, body.RepeatLastN,
                body.PresencePenalty, body.FrequencyPenalty, body.Seed, context, LogitBias(body.LogitBias, generator.Model.VocabSize)),
            Stop = StopList(body.Stop),
            TopLogprobs = body.Logprobs,
        };
        if (body.Logprobs is int top)
        {
            CheckTopLogprobs(top, "logprobs");
            if (body.Echo == true)
                throw ApiException.BadRequest("logprobs with echo (the prompt tokens' logprobs) is not supported", "logprobs", "unsupported_parameter");
        }
        string echo = body.Echo == true ? input.Text ?? generator.Detokenize(prompt) : "";
        LogprobsWriter? logprobs = body.Logprobs is null ? null : new LogprobsWriter(generator, echo.Length);

        GenerationSession session = await GenerationSession.StartAsync(
            generator, _queue, generation, DeadlineFor(request.Deadline), "prompt", cancellationToken).ConfigureAwait(false);
        string id = NewId("cmpl-");
        long created = UnixNow();
        string model = generator.Model.Id;

        if (body.Stream == true)
            return ApiResponse.ServerSentEvents(CompletionFrames(session, id, created, model, echo, body.StreamOptions?.IncludeUsage == true, logprobs), session);

        await using (session.ConfigureAwait(false))
        {
            var text = new StringBuilder(echo);
            var tokens = new List<BitNet.Inference.Sampling.TokenLogprobs>();
            GenerationStats? stats = null;
            await foreach (GenerationUpdate update in session.ReadAllAsync().ConfigureAwait(false))
            {
                text.Append(update.Text);
                if (update.Logprobs is { } tokenLogprobs) tokens.AddRange(tokenLogprobs);
                stats = update.Final;
            }
            cancellationToken.ThrowIfCancellationRequested();
            var response = new CompletionResponse(id, "text_completion", created, model,
                [new CompletionChoice(text.ToString(), 0, logprobs?.Completion(tokens), FinishReasonText(stats!.FinishReason))],
                new Usage(stats.PromptTokens, stats.CompletionTokens, stats.PromptTokens + stats.CompletionTokens));
            return ApiResponse.Json(200, JsonSerializer.SerializeToUtf8Bytes(response, ApiJsonContext.Wire.CompletionResponse));
        }
    }

    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> CompletionFrames(
        GenerationSession session, string id, long created, string model, string echo, bool includeUsage, LogprobsWriter? logprobs)
    {
        // As in chat: logprobs of an update without text ride with the next chunk that has text, or the finish chunk.
        var pending = new List<BitNet.Inference.Sampling.TokenLogprobs>();
        ReadOnlyMemory<byte> Frame(string text, string? finish, Usage? usage, bool withChoice = true, bool withLogprobs = true)
        {
            CompletionLogprobs? chunkLogprobs = logprobs is null || !withLogprobs ? null : logprobs.Completion(pending);
            if (chunkLogprobs is not null) pending.Clear();
            return SseFrame(JsonSerializer.SerializeToUtf8Bytes(
                new CompletionResponse(id, "text_completion", created, model, withChoice ? [new CompletionChoice(text, 0, chunkLogprobs, finish)] : [], usage),
                ApiJsonContext.Wire.CompletionResponse));
        }

        if (echo.Length > 0)
            yield return Frame(echo, null, null, withLogprobs: false);
        await foreach (GenerationUpdate update in session.ReadAllAsync().ConfigureAwait(false))
        {
            if (update.Logprobs is { } tokenLogprobs) pending.AddRange(tokenLogprobs);
            if (update.Text.Length > 0)
                yield return Frame(update.Text, null, null);
            if (update.Final is not { } stats)
                continue;
            if (stats.FinishReason == FinishReason.Cancelled)
                yield break;
            yield return Frame("", FinishReasonText(stats.FinishReason), null);
            if (includeUsage)
                yield return Frame("", null, new Usage(stats.PromptTokens, stats.CompletionTokens, stats.PromptTokens + stats.CompletionTokens), withChoice: false, withLogprobs: false);
        }
        yield return SseDone;
    }
}
