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
        int n = ChoiceCount(body.N);
        // best_of > n would rank candidates by their log-probability; best_of = n is n plain choices.
        if (body.BestOf is { } bestOf && bestOf != n)
            throw ApiException.BadRequest($"best_of must equal n ({n}): candidates are not ranked; got {bestOf}", "best_of", "invalid_value");
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
        // Text offsets run on from each choice's own text: one writer a choice.
        Func<LogprobsWriter>? writer = body.Logprobs is null ? null : () => new LogprobsWriter(generator, echo.Length);

        DateTimeOffset deadline = DeadlineFor(request.Deadline);
        string id = NewId("cmpl-");
        string model = generator.Model.Id;
        if (body.Stream == true)
        {
            bool includeUsage = body.StreamOptions?.IncludeUsage == true;
            return await StreamAsync(leave => GenerationSession.Start(generator, _queue, generation, deadline, "prompt", n, cancellationToken, leave),
                session => CompletionFrames(session, id, UnixNow(), model, echo, includeUsage, writer), cancellationToken).ConfigureAwait(false);
        }

        GenerationSession session = await GenerationSession.StartAsync(
            generator, _queue, generation, deadline, "prompt", n, cancellationToken).ConfigureAwait(false);
        long created = UnixNow();
        await using (session.ConfigureAwait(false))
        {
            ChoiceOutput[] outputs = await ChoiceOutput.ReadAllAsync(session, echo, writer).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            CompletionChoice[] choices = Array.ConvertAll(outputs, c => new CompletionChoice(c.Text, c.Index, c.Writer?.Completion(c.PendingLogprobs),
                FinishReasonText(c.Final!.FinishReason)));
            var response = new CompletionResponse(id, "text_completion", created, model, choices, UsageOf(outputs));
            return ApiResponse.Json(200, JsonSerializer.SerializeToUtf8Bytes(response, ApiJsonContext.Wire.CompletionResponse));
        }
    }

    private static IAsyncEnumerable<ReadOnlyMemory<byte>> CompletionFrames(
        GenerationSession session, string id, long created, string model, string echo, bool includeUsage, Func<LogprobsWriter>? writer)
    {
        // As in chat: logprobs of an update without text ride with the next chunk that has text, or the finish chunk.
        ReadOnlyMemory<byte> Frame(ChoiceOutput choice, string text, string? finish, bool withLogprobs = true)
        {
            CompletionLogprobs? chunkLogprobs = choice.Writer is null || !withLogprobs ? null : choice.Writer.Completion(choice.PendingLogprobs);
            if (chunkLogprobs is not null) choice.PendingLogprobs.Clear();
            CompletionChoice[] choices = [new CompletionChoice(text, choice.Index, chunkLogprobs, finish)];
            // With include_usage, as in chat: "usage" in every chunk, null until the last.
            return SseFrame(includeUsage
                ? JsonSerializer.SerializeToUtf8Bytes(new UsageStreamChunk<CompletionChoice>(id, "text_completion", created, model, choices, null),
                    ApiJsonContext.Wire.CompletionUsageChunk)
                : JsonSerializer.SerializeToUtf8Bytes(new CompletionResponse(id, "text_completion", created, model, choices, null),
                    ApiJsonContext.Wire.CompletionResponse));
        }

        return ChoiceFrames(session, ChoiceOutput.Of(session, null, writer),
            echo.Length > 0 ? choice => Frame(choice, echo, null, withLogprobs: false) : null,
            (choice, text) => Frame(choice, text, null),
            (choice, finish) => Frame(choice, "", finish),
            includeUsage ? usage => SseFrame(JsonSerializer.SerializeToUtf8Bytes(
                new UsageStreamChunk<CompletionChoice>(id, "text_completion", created, model, [], usage), ApiJsonContext.Wire.CompletionUsageChunk)) : null);
    }
}
