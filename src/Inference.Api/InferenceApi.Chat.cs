using System.Text.Json;
using BitNet.Inference.Api.Json;
using BitNet.Inference.Generation;
using BitNet.Inference.Sampling;

namespace BitNet.Inference.Api;

// POST /v1/chat/completions
public sealed partial class InferenceApi
{
    private async Task<ApiResponse> ChatCompletionsAsync(ApiRequest request, CancellationToken cancellationToken)
    {
        ChatCompletionRequest body = ParseBody(request.Body, ApiJsonContext.Wire.ChatCompletionRequest);
        ITextGenerator generator = ReadyGenerator();
        CheckModel(body.Model);
        int n = ChoiceCount(body.N);
        if (body.Tools is { ValueKind: not (JsonValueKind.Array or JsonValueKind.Null) })
            throw ApiException.BadRequest("'tools' must be an array", "tools", "invalid_type");
        if (body.Tools is { ValueKind: JsonValueKind.Array } tools && tools.GetArrayLength() > 0)
            throw ApiException.BadRequest("tools are not supported by this model server", "tools", "unsupported_parameter");
        CheckToolChoice(body.ToolChoice);
        if (body.ResponseFormat?.Type is { } format && format != "text")
            throw ApiException.BadRequest($"response_format '{format}' is not supported; only 'text'", "response_format.type", "unsupported_parameter");

        IReadOnlyList<ChatMessage> messages = Messages(body.Messages);
        IReadOnlyList<int> prompt;
        try
        {
            prompt = ChatPrompt.Tokenize(generator, messages);
        }
        catch (ChatTemplateException ex)
        {
            throw ApiException.BadRequest(ex.Message, "messages", "unsupported_chat_template");
        }
        int context = generator.Model.ContextLength;
        (int? requested, string param) = body.MaxCompletionTokens is not null ? (body.MaxCompletionTokens, "max_completion_tokens")
            : body.MaxTokens is not null ? (body.MaxTokens, "max_tokens")
            : (NPredictLimit(body.NPredict), "n_predict");
        var generation = new GenerationRequest
        {
            PromptTokens = prompt,
            MaxTokens = CompletionBudget(requested, param, prompt.Count, context, "messages"),
            Sampling = Sampling(body.Temperature, body.TopP, body.TopK, body.MinP, body.RepeatPenalty, body.RepeatLastN,
                body.PresencePenalty, body.FrequencyPenalty, body.Seed, context, LogitBias(body.LogitBias, generator.Model.VocabSize)),
            Stop = StopList(body.Stop),
            TopLogprobs = ChatTopLogprobs(body.Logprobs, body.TopLogprobs),
        };

        DateTimeOffset deadline = DeadlineFor(request.Deadline);
        string id = NewId("chatcmpl-");
        string model = generator.Model.Id;
        // Chat's logprobs have no text offsets: the choices share one writer.
        LogprobsWriter? shared = generation.TopLogprobs is null ? null : new LogprobsWriter(generator, 0);
        Func<LogprobsWriter>? writer = shared is null ? null : () => shared;
        if (body.Stream == true)
        {
            bool includeUsage = body.StreamOptions?.IncludeUsage == true;
            return await StreamAsync(leave => GenerationSession.Start(generator, _queue, generation, deadline, "messages", n, cancellationToken, leave),
                session => ChatFrames(session, id, UnixNow(), model, includeUsage, writer), cancellationToken).ConfigureAwait(false);
        }

        GenerationSession session = await GenerationSession.StartAsync(
            generator, _queue, generation, deadline, "messages", n, cancellationToken).ConfigureAwait(false);
        long created = UnixNow();
        await using (session.ConfigureAwait(false))
        {
            ChoiceOutput[] outputs = await ChoiceOutput.ReadAllAsync(session, "", writer).ConfigureAwait(false);
            cancellationToken.ThrowIfCancellationRequested();
            ChatChoice[] choices = Array.ConvertAll(outputs, c => new ChatChoice(c.Index, new AssistantMessage("assistant", c.Text), c.Writer?.Chat(c.PendingLogprobs),
                FinishReasonText(c.Final!.FinishReason)));
            var response = new ChatCompletionResponse(id, "chat.completion", created, model, choices, UsageOf(outputs));
            return ApiResponse.Json(200, JsonSerializer.SerializeToUtf8Bytes(response, ApiJsonContext.Wire.ChatCompletionResponse));
        }
    }

    /// <summary>OpenAI's chunk sequence: a role chunk per choice, content deltas, a finish chunk per choice, the optional
    /// usage chunk, [DONE]. Choices' chunks interleave as their tokens come. With the usage chunk (include_usage),
    /// the chunks before it carry "usage": null.</summary>
    private static IAsyncEnumerable<ReadOnlyMemory<byte>> ChatFrames(GenerationSession session, string id, long created, string model, bool includeUsage,
        Func<LogprobsWriter>? writer)
    {
        // The engine sends a token's logprobs with the update that starts its text (GenerationUpdate.Logprobs);
        // those of an update without text (the last, or a token that decodes to nothing) wait for the next
        // chunk with text, or the finish chunk.
        ReadOnlyMemory<byte> Frame(ChoiceOutput choice, ChatDelta delta, string? finish)
        {
            List<TokenLogprobs> waiting = choice.PendingLogprobs;
            ChatLogprobs? chunkLogprobs = choice.Writer is null || delta.Role is not null || (waiting.Count == 0 && delta.Content is null)
                ? null : choice.Writer.Chat(waiting);
            if (chunkLogprobs is not null) waiting.Clear();
            ChatChunkChoice[] choices = [new ChatChunkChoice(choice.Index, delta, chunkLogprobs, finish)];
            return SseFrame(includeUsage
                ? JsonSerializer.SerializeToUtf8Bytes(new UsageStreamChunk<ChatChunkChoice>(id, "chat.completion.chunk", created, model, choices, null),
                    ApiJsonContext.Wire.ChatUsageChunk)
                : JsonSerializer.SerializeToUtf8Bytes(new ChatCompletionChunk(id, "chat.completion.chunk", created, model, choices),
                    ApiJsonContext.Wire.ChatCompletionChunk));
        }

        return ChoiceFrames(session, ChoiceOutput.Of(session, null, writer),
            choice => Frame(choice, new ChatDelta("assistant", ""), null),
            (choice, text) => Frame(choice, new ChatDelta(null, text), null),
            (choice, finish) => Frame(choice, new ChatDelta(null, null), finish),
            includeUsage ? usage => SseFrame(JsonSerializer.SerializeToUtf8Bytes(
                new UsageStreamChunk<ChatChunkChoice>(id, "chat.completion.chunk", created, model, [], usage), ApiJsonContext.Wire.ChatUsageChunk)) : null);
    }

    /// <summary>"none" and "auto" mean no tool call, which is what happens; anything that demands one is refused as tools are.</summary>
    private static void CheckToolChoice(ToolChoice? toolChoice)
    {
        switch (toolChoice)
        {
            case null or { Mode: "none" or "auto" }:
                return;
            case { Mode: "required" }:
                throw ApiException.BadRequest("tool_choice 'required' needs tools, which this model server does not support", "tool_choice", "unsupported_parameter");
            case { Function: true }:
                throw ApiException.BadRequest("tool_choice naming a function needs tools, which this model server does not support", "tool_choice", "unsupported_parameter");
            default:
                throw ApiException.BadRequest("tool_choice must be \"none\", \"auto\", \"required\" or {\"type\":\"function\",...}", "tool_choice", "invalid_value");
        }
    }

    private static List<ChatMessage> Messages(List<ChatMessageWire?>? wire)
    {
        if (wire is null)
            throw ApiException.BadRequest("'messages' is required: a non-empty array of {\"role\",\"content\"}", "messages", "missing_required_parameter");
        if (wire.Count == 0)
            throw ApiException.BadRequest("'messages' must not be empty", "messages", "invalid_value");
        var messages = new List<ChatMessage>(wire.Count);
        for (int i = 0; i < wire.Count; i++)
        {
            ChatMessageWire message = wire[i] ?? throw ApiException.BadRequest($"messages[{i}] must be an object", $"messages[{i}]", "invalid_type");
            ChatRole role = message.Role switch
            {
                "system" or "developer" => ChatRole.System,
                "user" => ChatRole.User,
                "assistant" => ChatRole.Assistant,
                "tool" or "function" => ChatRole.Tool, // "function": the deprecated form of "tool"
                null => throw ApiException.BadRequest($"messages[{i}].role is required", $"messages[{i}].role", "missing_required_parameter"),
                _ => throw ApiException.BadRequest(
                    $"messages[{i}].role '{message.Role}' is not supported; use system, developer, user, assistant or tool", $"messages[{i}].role", "invalid_value"),
            };
            if (message.ToolCalls is { ValueKind: not (JsonValueKind.Array or JsonValueKind.Null) })
                throw ApiException.BadRequest($"messages[{i}].tool_calls must be an array", $"messages[{i}].tool_calls", "invalid_type");
            if (message.Role == "tool" && message.ToolCallId is null)
                throw ApiException.BadRequest($"messages[{i}].tool_call_id is required: the id of the tool call this message answers",
                    $"messages[{i}].tool_call_id", "missing_required_parameter");
            // OpenAI: an assistant message that calls tools may have no content. The calls are not rendered
            // (this server offers no tools, so the template has no format for them); the content, if any, is.
            bool calls = message.ToolCalls is { ValueKind: JsonValueKind.Array } list && list.GetArrayLength() > 0
                         || message.FunctionCall is { ValueKind: JsonValueKind.Object };
            if (message.Content is null && role == ChatRole.Assistant && calls)
            {
                messages.Add(new ChatMessage(role, ""));
                continue;
            }
            if (message.Content is null)
                throw ApiException.BadRequest(role == ChatRole.Assistant
                        ? $"messages[{i}].content is required (a string or text parts) unless the message has tool_calls"
                        : $"messages[{i}].content is required (a string or text parts)", $"messages[{i}].content", "missing_required_parameter");
            messages.Add(new ChatMessage(role, message.Content.Text));
        }
        return messages;
    }
}
