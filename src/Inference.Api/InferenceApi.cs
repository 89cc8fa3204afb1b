using System.Diagnostics;
using System.Security.Cryptography;
using System.Text;
using System.Text.Json;
using BitNet.Inference.Api.Json;
using BitNet.Inference.Generation;

namespace BitNet.Inference.Api;

/// <summary>
/// The OpenAI-compatible API, independent of any transport: an <see cref="ApiRequest"/> in, an
/// <see cref="ApiResponse"/> (JSON, or a stream of SSE frames) out. Every host (Kestrel, Lambda,
/// Azure) translates its transport to these two types and nothing else.
///
/// Routes: POST /v1/chat/completions, POST /v1/completions, GET /v1/models, GET /health, GET /metrics,
/// POST /completion and POST / (llama.cpp's /completion payload, also as base64), POST /tokenize, POST /detokenize,
/// POST /keep-warm.
/// Client mistakes become 4xx in the OpenAI error shape here, in one place; only a fault of the
/// server (an engine exception) escapes, and each host reports it as its transport expects.
/// </summary>
public sealed partial class InferenceApi
{
    private readonly GeneratorProvider _provider;
    private readonly RequestQueue _queue;
    private readonly TaskCompletionSource _shutdown = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private int _touchedOnce;

    public InferenceApi(GeneratorProvider provider, ApiOptions options)
    {
        _provider = provider;
        Options = options;
        _queue = new RequestQueue(options.QueueDepth);
    }

    /// <summary>The longest request target (path and query as sent), the most header bytes (names and values, in
    /// all) and the most header fields (by name: a name sent twice is one field, its values joined) a request may
    /// have: the usual limits of HTTP servers (Kestrel's defaults). Beyond them, 414 and 431.</summary>
    public const int MaxTargetBytes = 8192, MaxHeaderBytes = 32768, MaxHeaderCount = 100;

    public ApiOptions Options { get; }
    public GeneratorProvider Provider => _provider;
    public RequestQueue Queue => _queue;

    /// <summary>New generations get 503 from now on; running ones continue (graceful shutdown). Streams waiting in the
    /// queue end with an error event (<see cref="WaitingStream"/>).</summary>
    public void BeginShutdown() => _shutdown.TrySetResult();

    public bool ShuttingDown => _shutdown.Task.IsCompleted;

    public async Task<ApiResponse> HandleAsync(ApiRequest request, CancellationToken cancellationToken = default)
    {
        try
        {
            return await RouteAsync(request, cancellationToken).ConfigureAwait(false);
        }
        catch (ApiException ex)
        {
            return Error(ex);
        }
    }

    private Task<ApiResponse> RouteAsync(ApiRequest request, CancellationToken cancellationToken)
    {
        CheckSizes(request);
        string path = request.Path.Length > 1 ? request.Path.TrimEnd('/') : request.Path;
        string method = request.Method.ToUpperInvariant();

        if (path is "/health" or "/v1/health")
            return Task.FromResult(method is "GET" or "HEAD" ? Health() : throw MethodNotAllowed(method, path, "GET, HEAD"));
        if (path is "/metrics")
            return Task.FromResult(method is "GET" or "HEAD" ? Metrics() : throw MethodNotAllowed(method, path, "GET, HEAD"));

        Authorize(request);
        if (request.Body.Length > Options.MaxRequestBytes)
            throw new ApiException(413, $"the request body has {request.Body.Length} bytes; the limit is {Options.MaxRequestBytes}", "invalid_request_error", code: "request_too_large");
        if (request.Body.Length > 0 && request.Header("content-encoding") is { } encoding && !encoding.Trim().Equals("identity", StringComparison.OrdinalIgnoreCase))
            throw new ApiException(415, $"Content-Encoding '{encoding}' is not supported; send the body uncompressed",
                "invalid_request_error", code: "unsupported_content_encoding");
        if (request.Body.Length > 0 && Charset(request.Header("content-type")) is { } charset &&
            !(charset.Equals("utf-8", StringComparison.OrdinalIgnoreCase) || charset.Equals("utf8", StringComparison.OrdinalIgnoreCase) ||
              charset.Equals("us-ascii", StringComparison.OrdinalIgnoreCase)))
            throw new ApiException(415, $"charset '{charset}' is not supported; send the body as UTF-8 (JSON's encoding, RFC 8259)",
                "invalid_request_error", code: "unsupported_charset");
        // RFC 8259 lets a parser ignore a byte order mark, and some clients (PowerShell, Windows editors) send one.
        if (request.Body.Span.StartsWith("\uFEFF"u8))
            request = request with { Body = request.Body[3..] };

        return (method, path) switch
        {
            ("POST", "/v1/chat/completions" or "/chat/completions") => ChatCompletionsAsync(request, cancellationToken),
            ("POST", "/v1/completions" or "/completions") => CompletionsAsync(request, cancellationToken),
            ("POST", "/completion" or "/") => LegacyAsync(request.Body, request.Deadline, cancellationToken: cancellationToken),
            ("POST" or "GET", "/keep-warm") => Task.FromResult(KeepWarm()),
            ("POST", "/tokenize") => Task.FromResult(Tokenize(request.Body)),
            ("POST", "/detokenize") => Task.FromResult(Detokenize(request.Body)),
            // HEAD is GET without the content (RFC 9110), which the hosts leave out.
            ("GET" or "HEAD", "/v1/models" or "/models") => Task.FromResult(Models()),
            ("GET" or "HEAD", _) when path.StartsWith("/v1/models/", StringComparison.Ordinal) => Task.FromResult(Model(path["/v1/models/".Length..])),
            (_, "/v1/chat/completions" or "/chat/completions" or "/v1/completions" or "/completions" or "/completion")
                => throw MethodNotAllowed(method, path, "POST"),
            (_, "/v1/models" or "/models") => throw MethodNotAllowed(method, path, "GET, HEAD"),
            (_, "/tokenize" or "/detokenize") => throw MethodNotAllowed(method, path, "POST"),
            _ => throw new ApiException(404, $"Unknown request URL: {method} {path}", "invalid_request_error", code: "unknown_url"),
        };
    }

    /// <summary>414 for a URL, 431 for headers over the limits, whichever route they name.</summary>
    private static void CheckSizes(ApiRequest request)
    {
        int target = Encoding.UTF8.GetByteCount(request.Target ?? request.Path);
        if (target > MaxTargetBytes)
            throw new ApiException(414, $"the request URL is {target} bytes long; the limit is {MaxTargetBytes}", "invalid_request_error", code: "url_too_long");
        if (request.Headers.Count > MaxHeaderCount)
            throw new ApiException(431, $"the request has {request.Headers.Count} header fields; the limit is {MaxHeaderCount}", "invalid_request_error",
                code: "too_many_headers");
        long headers = 0;
        foreach (var (name, value) in request.Headers)
            headers += Encoding.UTF8.GetByteCount(name) + Encoding.UTF8.GetByteCount(value);
        if (headers > MaxHeaderBytes)
            throw new ApiException(431, $"the request headers are {headers} bytes in all; the limit is {MaxHeaderBytes}", "invalid_request_error", code: "headers_too_large");
    }

    /// <summary>The charset parameter of a Content-Type (<c>application/json; charset=utf-16</c>), unquoted; null when none.
    /// Any media type is taken as JSON (curl -d sends a form's), but a body declared in another encoding cannot be read.</summary>
    private static string? Charset(string? contentType)
    {
        if (contentType is null) return null;
        foreach (string parameter in contentType.Split(';').Skip(1))
        {
            int equals = parameter.IndexOf('=');
            if (equals > 0 && parameter[..equals].Trim().Equals("charset", StringComparison.OrdinalIgnoreCase))
                return parameter[(equals + 1)..].Trim().Trim('"');
        }
        return null;
    }

    /// <summary>405 with the Allow header RFC 9110 asks of it.</summary>
    private static ApiException MethodNotAllowed(string method, string path, string allowed) =>
        new(405, $"{method} is not allowed on {path}", "invalid_request_error", code: "method_not_allowed") { Allow = allowed };

    private void Authorize(ApiRequest request)
    {
        if (Options.ApiKey is null)
            return;
        string? header = request.Header("authorization");
        const string scheme = "Bearer ";
        bool ok = header is not null && header.StartsWith(scheme, StringComparison.OrdinalIgnoreCase) &&
                  CryptographicOperations.FixedTimeEquals(Encoding.UTF8.GetBytes(header[scheme.Length..].Trim()), Encoding.UTF8.GetBytes(Options.ApiKey));
        if (!ok)
            throw new ApiException(401, header is null
                ? "You didn't provide an API key: send 'Authorization: Bearer YOUR_KEY'."
                : "Incorrect API key provided.", "invalid_request_error", code: "invalid_api_key");
    }

    // ---- Shared pieces of the generation routes ----------------------------------------------

    /// <summary>The loaded model, or 503 (loading / failed / shutting down) with Retry-After.</summary>
    private ITextGenerator ReadyGenerator()
    {
        if (ShuttingDown)
            throw ApiException.ShuttingDown();
        return _provider.State switch
        {
            GeneratorState.Ready => Admitting(_provider.Generator!),
            GeneratorState.Failed => throw ApiException.Unavailable($"the model failed to load: {_provider.FailureReason}", "model_load_failed", null),
            _ => throw ApiException.Unavailable("the model is loading; retry shortly", "model_loading", TimeSpan.FromSeconds(5)),
        };
    }

    /// <summary>The queue lets as many requests run as the generator decodes together.</summary>
    private ITextGenerator Admitting(ITextGenerator generator)
    {
        int parallel = generator.CurrentLoad?.Parallel ?? 1;
        if (_queue.Slots != parallel) _queue.Slots = parallel;
        return generator;
    }

    private DateTimeOffset DeadlineFor(DateTimeOffset? transportDeadline)
    {
        DateTimeOffset own = DateTimeOffset.UtcNow + Options.RequestTimeout;
        return transportDeadline is { } t && t < own ? t : own;
    }

    /// <summary>Reads a JSON body with the source-generated serializer; JSON and type errors become 400s naming the field,
    /// and so does a string anywhere in the body that is not text.</summary>
    private static T ParseBody<T>(ReadOnlyMemory<byte> body, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> typeInfo) where T : class
    {
        if (body.Span.Trim(" \t\r\n"u8).IsEmpty)
            throw ApiException.BadRequest("the request body is empty; send a JSON object", null, "invalid_json");
        T request;
        try
        {
            request = JsonSerializer.Deserialize(body.Span, typeInfo)
                      ?? throw ApiException.BadRequest("the request body must be a JSON object, not null", null, "invalid_type");
        }
        catch (JsonException ex)
        {
            throw JsonErrors.ToApiException(ex);
        }
        JsonText.Check(body); // the strings the serializer skipped (ignored fields) or matched as bytes (keys)
        return request;
    }

    /// <summary>
    /// Any name is answered by the one loaded model (responses carry its real id), as llama.cpp's
    /// server does, so clients written for OpenAI or for llama.cpp work unchanged. In strict mode
    /// another name is 404 model_not_found, as OpenAI answers it.
    /// </summary>
    private void CheckModel(string? requested)
    {
        if (string.IsNullOrEmpty(requested) || !Options.StrictModel)
            return;
        ModelInfo model = _provider.Generator!.Model;
        string file = Path.GetFileName(model.Path);
        if (requested.Equals(model.Id, StringComparison.OrdinalIgnoreCase) ||
            requested.Equals(file, StringComparison.OrdinalIgnoreCase) ||
            requested.Equals(Path.GetFileNameWithoutExtension(file), StringComparison.OrdinalIgnoreCase))
            return;
        throw new ApiException(404, $"The model '{requested}' does not exist; this server serves '{model.Id}' (GET /v1/models).",
            "invalid_request_error", "model_not_found", param: "model");
    }

    /// <summary>OpenAI's logit_bias: token ids (as keys) in the vocabulary, biases from -100 to 100.</summary>
    private static Dictionary<int, float>? LogitBias(Dictionary<string, float>? wire, int vocabSize)
    {
        if (wire is not { Count: > 0 })
            return null;
        var bias = new Dictionary<int, float>(wire.Count);
        foreach (var (key, value) in wire)
        {
            if (!int.TryParse(key, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out int token) || token >= vocabSize)
                throw ApiException.BadRequest(
                    $"logit_bias keys must be token ids from 0 to {vocabSize - 1} (the vocabulary); got '{key}'", "logit_bias", "invalid_value");
            if (!(value >= -100f && value <= 100f))
                throw ApiException.BadRequest(
                    string.Create(System.Globalization.CultureInfo.InvariantCulture, $"logit_bias values must be between -100 and 100; got {value} for token {key}"),
                    "logit_bias", "invalid_value");
            bias[token] = value;
        }
        return bias;
    }

    private static SamplingOptions Sampling(float? temperature, float? topP, int? topK, float? minP, float? repeatPenalty,
        int? repeatLastN, float? presence, float? frequency, long? seed, int contextLength, IReadOnlyDictionary<int, float>? logitBias = null)
    {
        var d = new SamplingOptions();
        Check(SamplingRules.Temperature(temperature), "temperature");
        Check(SamplingRules.TopP(topP), "top_p");
        Check(SamplingRules.MinP(minP), "min_p");
        Check(SamplingRules.RepeatPenalty(repeatPenalty), "repeat_penalty");
        Check(SamplingRules.PresencePenalty(presence), "presence_penalty");
        Check(SamplingRules.FrequencyPenalty(frequency), "frequency_penalty");
        Check(SamplingRules.RepeatLastN(repeatLastN), "repeat_last_n");
        Check(SamplingRules.Seed(seed), "seed");
        return d with
        {
            Temperature = temperature ?? d.Temperature,
            TopP = topP ?? d.TopP,
            TopK = topK ?? d.TopK, // ≤ 0 disables, as in llama.cpp
            MinP = minP ?? d.MinP,
            RepeatPenalty = repeatPenalty ?? d.RepeatPenalty,
            RepeatLastN = repeatLastN == -1 ? contextLength : repeatLastN ?? d.RepeatLastN,
            PresencePenalty = presence ?? d.PresencePenalty,
            FrequencyPenalty = frequency ?? d.FrequencyPenalty,
            Seed = SamplingRules.SeedValue(seed),
            LogitBias = logitBias,
        };
    }

    private static void Check(string? problem, string name)
    {
        if (problem is not null)
            throw ApiException.BadRequest(problem, name, "invalid_value");
    }

    private static IReadOnlyList<string> StopList(StopSequences? stop)
    {
        if (stop is null)
            return [];
        if (stop.Values.Count > 16)
            throw ApiException.BadRequest($"stop has {stop.Values.Count} sequences; at most 16 are allowed", "stop", "invalid_value");
        if (stop.Values.Any(string.IsNullOrEmpty))
            throw ApiException.BadRequest("stop sequences must not be empty strings", "stop", "invalid_value");
        return stop.Values;
    }

    /// <summary>Chat's logprobs / top_logprobs as the engine's TopLogprobs (null: none wanted).</summary>
    private static int? ChatTopLogprobs(bool? logprobs, int? top)
    {
        if (top is int count)
        {
            if (logprobs != true)
                throw ApiException.BadRequest("top_logprobs needs \"logprobs\": true", "top_logprobs", "invalid_value");
            CheckTopLogprobs(count, "top_logprobs");
        }
        return logprobs == true ? top ?? 0 : null;
    }

    private static void CheckTopLogprobs(int count, string param)
    {
        if (count < 0 || count > BitNet.Inference.Sampling.LogProbabilities.MaxTop)
            throw ApiException.BadRequest($"{param} must be between 0 and {BitNet.Inference.Sampling.LogProbabilities.MaxTop}; got {count}", param, "invalid_value");
    }

    /// <summary>How many choices a request asks for (OpenAI's n): 1 when absent.</summary>
    private static int ChoiceCount(int? n) => n switch
    {
        null => 1,
        >= 1 and <= GenerationSession.MaxChoices => n.Value,
        _ => throw ApiException.BadRequest($"n must be from 1 to {GenerationSession.MaxChoices}; got {n}", "n", "invalid_value"),
    };

    /// <summary>Usage of a request's choices: the prompt once (they share it), every choice's completion tokens.</summary>
    private static Usage UsageOf(ChoiceOutput[] choices)
    {
        int prompt = choices[0].Final!.PromptTokens, completion = choices.Sum(c => c.Final!.CompletionTokens);
        return new Usage(prompt, completion, prompt + completion);
    }

    /// <summary>A streamed answer: <paramref name="frames"/> of the session <paramref name="start"/> starts. Refusals known
    /// before the request waits (429, context too long, a fault of the engine at once) are answered with their status; a
    /// stream that waits, in the queue or for its first tokens, is answered at once (<see cref="WaitingStream"/>).</summary>
    private async Task<ApiResponse> StreamAsync(
        Func<CancellationToken, (bool Waiting, Task<GenerationSession> Started, GenerationSession Session)> start,
        Func<GenerationSession, IAsyncEnumerable<ReadOnlyMemory<byte>>> frames, CancellationToken cancellationToken)
    {
        var leave = new CancellationTokenSource();
        (bool waiting, Task<GenerationSession> started, GenerationSession starting) = start(leave.Token);
        if (!waiting)
        {
            await Task.WhenAny(started, starting.Generating).ConfigureAwait(false);
            if (started.IsCompleted)
            {
                leave.Dispose();
                GenerationSession session = await started.ConfigureAwait(false);
                return ApiResponse.ServerSentEvents(frames(session), session);
            }
        }
        return new WaitingStream(starting, started, waiting, leave, Options.QueueKeepAlive, _shutdown.Task, cancellationToken).Response(frames);
    }

    /// <summary>The chunk order chat and /v1/completions share: an opening chunk per choice, when there are any; a chunk
    /// per piece of text as the choices' tokens come; a finish chunk per choice; the usage chunk, when asked for; [DONE].</summary>
    private static async IAsyncEnumerable<ReadOnlyMemory<byte>> ChoiceFrames(GenerationSession session, ChoiceOutput[] choices,
        Func<ChoiceOutput, ReadOnlyMemory<byte>>? opening, Func<ChoiceOutput, string, ReadOnlyMemory<byte>> text,
        Func<ChoiceOutput, string, ReadOnlyMemory<byte>> finish, Func<Usage, ReadOnlyMemory<byte>>? usage)
    {
        if (opening is not null)
        {
            foreach (ChoiceOutput choice in choices)
                yield return opening(choice);
        }
        await foreach ((int i, GenerationUpdate update) in session.ReadChoicesAsync().ConfigureAwait(false))
        {
            ChoiceOutput choice = choices[i];
            choice.Add(update);
            if (update.Text.Length > 0)
                yield return text(choice, update.Text);
            if (update.Final is not { } final)
                continue;
            if (final.FinishReason == FinishReason.Cancelled)
                yield break; // the client is gone; nobody reads a finish chunk
            yield return finish(choice, FinishReasonText(final.FinishReason));
        }
        if (usage is not null)
            yield return usage(UsageOf(choices));
        yield return SseDone;
    }

    /// <summary>
    /// Completion tokens for a prompt: the requested number (which must be ≥ 1 and fit the context
    /// together with the prompt), or the configured default capped by the room left.
    /// </summary>
    private int CompletionBudget(int? requested, string param, int promptTokens, int contextLength, string promptParam)
    {
        if (requested is { } r && r <= 0)
            throw ApiException.BadRequest($"{param} must be at least 1; got {r}", param, "invalid_value");
        int room = contextLength - promptTokens;
        if (room <= 0)
            throw ApiException.BadRequest(
                $"This model's context holds {contextLength} tokens, but the prompt alone has {promptTokens}. Shorten the prompt.",
                promptParam, "context_length_exceeded");
        if (requested is { } want && want > room)
            throw ApiException.BadRequest(
                $"This model's context holds {contextLength} tokens, but {promptTokens} prompt tokens and {want} completion tokens were requested. Lower {param} to at most {room}.",
                param, "context_length_exceeded");
        return requested ?? Math.Min(Options.DefaultMaxTokens, room);
    }

    /// <summary>n_predict as a requested count: -1 (llama.cpp: no limit from the request) names none, so the server's limit applies.</summary>
    private static int? NPredictLimit(int? nPredict) => nPredict == -1 ? null : nPredict;

    private static string FinishReasonText(FinishReason reason) => reason switch
    {
        FinishReason.Stop => "stop",
        FinishReason.Length => "length",
        _ => "cancelled",
    };

    private static long UnixNow() => DateTimeOffset.UtcNow.ToUnixTimeSeconds();

    private static string NewId(string prefix) => prefix + Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(12));

    /// <summary>The OpenAI error JSON of a refused request (hosts use it for refusals they detect themselves, e.g. 413 in Kestrel).</summary>
    public static byte[] ErrorJson(ApiException ex) => JsonSerializer.SerializeToUtf8Bytes(
        new ErrorResponse(new ErrorBody(ex.Message, ex.Type, ex.Param, ex.Code)), ApiJsonContext.Wire.ErrorResponse);

    private static ApiResponse Error(ApiException ex)
    {
        var response = ApiResponse.Json(ex.Status, ErrorJson(ex));
        if (ex.RetryAfter is { } retry)
            response.Headers["retry-after"] = ((int)Math.Ceiling(retry.TotalSeconds)).ToString(System.Globalization.CultureInfo.InvariantCulture);
        if (ex.Allow is { } allow)
            response.Headers["allow"] = allow;
        return response;
    }

    /// <summary>The OpenAI error JSON for a server fault; hosts use it for 500s and mid-stream errors.</summary>
    public static byte[] ServerErrorJson(Exception ex) =>
        JsonSerializer.SerializeToUtf8Bytes(new ErrorResponse(new ErrorBody(
            $"the server failed while generating: {ex.Message}", "server_error", null, "internal_error")), ApiJsonContext.Wire.ErrorResponse);

    internal static ReadOnlyMemory<byte> SseFrame(byte[] json)
    {
        var frame = new byte[json.Length + 8];
        "data: "u8.CopyTo(frame);
        json.CopyTo(frame, 6);
        frame[^2] = (byte)'\n';
        frame[^1] = (byte)'\n';
        return frame;
    }

    internal static readonly ReadOnlyMemory<byte> SseDone = "data: [DONE]\n\n"u8.ToArray();

    /// <summary>An SSE frame carrying an error object; hosts send it when a stream fails after its first byte.</summary>
    public static ReadOnlyMemory<byte> SseErrorFrame(Exception ex) => SseFrame(ServerErrorJson(ex));

    private static double Ms(TimeSpan t) => Math.Round(t.TotalMilliseconds, 3);

}
