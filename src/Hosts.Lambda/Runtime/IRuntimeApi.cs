namespace BitNet.Hosts.Lambda.Runtime;

/// <summary>
/// The Lambda Runtime API (https://docs.aws.amazon.com/lambda/latest/dg/runtimes-api.html), base
/// http://$AWS_LAMBDA_RUNTIME_API/2018-06-01. The one seam between the runtime loop and the
/// platform: production uses <see cref="RuntimeApiClient"/>, tests point that same client at an
/// in-process fake server.
/// </summary>
public interface IRuntimeApi
{
    /// <summary>GET /runtime/invocation/next: long-polls (no timeout: the sandbox may be frozen in between) for the next event.</summary>
    Task<Invocation> NextAsync(CancellationToken cancellationToken);

    /// <summary>POST /runtime/invocation/{id}/response with a buffered body (≤ 6 MB).</summary>
    Task SendResponseAsync(Invocation invocation, ReadOnlyMemory<byte> body, string contentType, CancellationToken cancellationToken);

    /// <summary>
    /// POST /runtime/invocation/{id}/response in streaming mode (Lambda-Runtime-Function-Response-Mode:
    /// streaming, chunked). <paramref name="writeBody"/> writes the body; every flush sends a chunk. If it
    /// throws, the error goes out as the documented trailers (Lambda-Runtime-Function-Error-Type,
    /// Lambda-Runtime-Function-Error-Body = base64 of the error JSON) and the exception is not rethrown.
    /// </summary>
    Task SendStreamingResponseAsync(Invocation invocation, string contentType, Func<Stream, CancellationToken, Task> writeBody, CancellationToken cancellationToken);

    /// <summary>POST /runtime/invocation/{id}/error (only before any response byte was sent).</summary>
    Task SendErrorAsync(Invocation invocation, LambdaError error, CancellationToken cancellationToken);

    /// <summary>POST /runtime/init/error; the runtime exits right after.</summary>
    Task SendInitErrorAsync(LambdaError error, CancellationToken cancellationToken);
}

/// <summary>One event from /next and the headers that came with it.</summary>
public sealed record Invocation(
    string RequestId,
    DateTimeOffset? Deadline,
    string? InvokedFunctionArn,
    string? TraceId,
    // Lambda-Runtime-Invocation-Id: echoed back on /response and /error when present.
    string? InvocationId,
    byte[] Event);

/// <summary>The error body Lambda documents: {"errorMessage","errorType","stackTrace"}; errorType also goes in
/// the Lambda-Runtime-Function-Error-Type header.</summary>
public sealed record LambdaError(string ErrorType, string ErrorMessage, IReadOnlyList<string> StackTrace)
{
    public static LambdaError From(Exception ex, string errorType) =>
        new(errorType, ex.Message, ex.StackTrace?.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries) ?? []);
}

/// <summary>The Runtime API answered 500 (or the connection is gone): the container is broken and the runtime must exit.</summary>
public sealed class RuntimeApiFatalException(string message, Exception? inner = null) : Exception(message, inner);
