using System.Text.Json;
using BitNet.Hosts.Lambda.Runtime;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using BitNet.Inference.Hub;

namespace BitNet.Hosts.Lambda;

/// <summary>
/// The custom runtime: init (settings, model load, reported on /init/error when it fails), then
/// next → handle → respond, forever. HTTP events go through <see cref="InferenceApi"/>: function URL
/// requests come back buffered (function URL response JSON) or streamed (HTTP-integration prelude,
/// 8 NUL bytes, the body) per BITNET_LAMBDA_STREAMING, API Gateway requests (REST and HTTP APIs)
/// always buffered; keep-warm pings and the legacy
/// payload are answered as plain JSON. A server fault before the first byte is posted to /error,
/// after it as the streaming trailers.
/// </summary>
public sealed class LambdaRuntimeLoop(IRuntimeApi runtime, IEnvironment environment, Action<string, string?>? setVariable = null)
{
    /// <summary>The content type that tells a function URL the stream starts with the HTTP prelude.</summary>
    public const string HttpIntegrationContentType = "application/vnd.awslambda.http-integration-response";

    private readonly Action<string, string?> _setVariable = setVariable ?? Environment.SetEnvironmentVariable;

    /// <summary>Set once init succeeded.</summary>
    public InferenceApi? Api { get; private set; }

    /// <summary>Runs until <paramref name="cancellationToken"/> fires (0) or init / the Runtime API fails (1).</summary>
    public async Task<int> RunAsync(Func<ApiOptions, ITextGenerator> loadGenerator, CancellationToken cancellationToken = default)
    {
        if (!await InitializeAsync(loadGenerator, cancellationToken))
            return 1;
        try
        {
            while (!cancellationToken.IsCancellationRequested)
            {
                Invocation invocation = await runtime.NextAsync(cancellationToken);
                await HandleAsync(invocation, cancellationToken);
            }
            return 0;
        }
        catch (OperationCanceledException) when (cancellationToken.IsCancellationRequested)
        {
            return 0;
        }
        catch (RuntimeApiFatalException ex)
        {
            Console.Error.WriteLine($"bootstrap: {ex.Message}; exiting");
            return 1;
        }
    }

    private async Task<bool> InitializeAsync(Func<ApiOptions, ITextGenerator> loadGenerator, CancellationToken cancellationToken)
    {
        ApiOptions options;
        try
        {
            options = ApiOptions.FromEnvironment(environment);
            // One execution environment takes one event at a time: a second sequence would only hold KV memory.
            if (options.Parallel == 0) options = options with { Parallel = 1 };
            // A cold start waits for the load: the f16 head needs no int8 copy made first.
            options = options with { LmHead = options.LmHead ?? "f16" };
        }
        catch (ConfigurationException ex)
        {
            await runtime.SendInitErrorAsync(LambdaError.From(ex, "Runtime.ConfigInvalid"), cancellationToken);
            return false;
        }

        var provider = new GeneratorProvider();
        Exception? failure = provider.Load(() => loadGenerator(options));
        if (failure is not null)
        {
            // One line, as the other hosts log it: a truncated or foreign model file is bad input, not a bug
            // (the init error posted below still carries the stack trace the Runtime API asks for).
            Console.Error.WriteLine($"bootstrap: the model failed to load: {provider.FailureReason}");
            await runtime.SendInitErrorAsync(LambdaError.From(failure, "Runtime.InitError"), cancellationToken);
            return false;
        }
        Console.WriteLine($"bootstrap: {provider.ReadySummary}");
        Api = new InferenceApi(provider, options);
        return true;
    }

    /// <summary>Answers one invocation. Only Runtime API failures escape.</summary>
    public async Task HandleAsync(Invocation invocation, CancellationToken cancellationToken)
    {
        InferenceApi api = Api ?? throw new InvalidOperationException("the runtime is not initialized");
        _setVariable(EnvVars.AmznTraceId, invocation.TraceId);
        DateTimeOffset? deadline = invocation.Deadline - api.Options.LambdaDeadlineMargin;

        ApiResponse response;
        LambdaEventKind kind = LambdaEvents.Classify(invocation.Event);
        try
        {
            switch (kind)
            {
                case LambdaEventKind.KeepWarm:
                    response = api.KeepWarm();
                    break;
                case LambdaEventKind.FunctionUrl or LambdaEventKind.ApiGateway:
                    response = await api.HandleAsync(LambdaEvents.ToApiRequest(invocation.Event, deadline), cancellationToken);
                    break;
                default:
                    // A direct invoke returns one payload, posted as JSON below: it cannot carry SSE frames.
                    response = await api.LegacyAsync(LambdaEvents.LegacyPayload(invocation.Event), deadline, canStream: false, cancellationToken);
                    break;
            }
        }
        catch (ApiException ex)
        {
            // An event the host cannot read (a string that is no text): the caller's mistake, answered as the API answers its own.
            response = ApiResponse.Json(ex.Status, InferenceApi.ErrorJson(ex));
        }
        catch (Exception ex) when (ex is not RuntimeApiFatalException and not OperationCanceledException)
        {
            // Nothing was sent yet: the documented place for a failed invocation.
            Console.Error.WriteLine($"bootstrap: invocation {invocation.RequestId} failed: {ex}");
            await runtime.SendErrorAsync(invocation, LambdaError.From(ex, "Runtime.UnhandledError"), cancellationToken);
            return;
        }

        await using (response)
        {
            if (kind is not (LambdaEventKind.FunctionUrl or LambdaEventKind.ApiGateway))
                await runtime.SendResponseAsync(invocation, await response.ReadAllAsync(cancellationToken), "application/json", cancellationToken);
            // Only a function URL in RESPONSE_STREAM mode reads the prelude; API Gateway takes one proxy response.
            else if (kind == LambdaEventKind.FunctionUrl && api.Options.LambdaStreaming)
                await runtime.SendStreamingResponseAsync(invocation, HttpIntegrationContentType, (body, ct) => WriteStreamAsync(response, body, ct), cancellationToken);
            else
                await SendBufferedAsync(invocation, response, cancellationToken);
        }
    }

    /// <summary>RESPONSE_STREAM: the prelude {"statusCode","headers","cookies"}, 8 NUL bytes, then the body, flushed per SSE frame.</summary>
    private static async Task WriteStreamAsync(ApiResponse response, Stream body, CancellationToken cancellationToken)
    {
        using var prelude = new MemoryStream();
        using (var json = new Utf8JsonWriter(prelude))
        {
            json.WriteStartObject();
            json.WriteNumber("statusCode", response.Status);
            WriteHeaders(json, response);
            json.WriteStartArray("cookies");
            json.WriteEndArray();
            json.WriteEndObject();
        }
        prelude.Write(new byte[8]);
        await body.WriteAsync(prelude.ToArray(), cancellationToken);
        await body.FlushAsync(cancellationToken);

        if (response.Stream is null)
        {
            await body.WriteAsync(response.Body, cancellationToken);
            return;
        }
        try
        {
            await foreach (ReadOnlyMemory<byte> frame in response.Stream.WithCancellation(cancellationToken))
            {
                await body.WriteAsync(frame, cancellationToken);
                await body.FlushAsync(cancellationToken);
            }
        }
        catch (Exception ex) when (ex is not OperationCanceledException)
        {
            // Tell an SSE client in-band too; the trailers (written by the caller) tell Lambda.
            await body.WriteAsync(InferenceApi.SseErrorFrame(ex), CancellationToken.None);
            throw;
        }
    }

    /// <summary>BUFFERED: the function URL response object {"statusCode","headers","body","isBase64Encoded"}, which is also
    /// the REST API proxy integration's response format.</summary>
    private async Task SendBufferedAsync(Invocation invocation, ApiResponse response, CancellationToken cancellationToken)
    {
        byte[] content = await response.ReadAllAsync(cancellationToken);
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteNumber("statusCode", response.Status);
            WriteHeaders(json, response);
            json.WriteString("body", System.Text.Encoding.UTF8.GetString(content));
            json.WriteBoolean("isBase64Encoded", false);
            json.WriteEndObject();
        }
        await runtime.SendResponseAsync(invocation, buffer.ToArray(), "application/json", cancellationToken);
    }

    private static void WriteHeaders(Utf8JsonWriter json, ApiResponse response)
    {
        json.WriteStartObject("headers");
        foreach (var (name, value) in response.Headers)
            json.WriteString(name, value);
        json.WriteEndObject();
    }
}
