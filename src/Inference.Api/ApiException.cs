namespace BitNet.Inference.Api;

/// <summary>
/// A request the API refuses, with everything the OpenAI error shape needs:
/// <c>{"error":{"message","type","param","code"}}</c> and the HTTP status. Thrown by the
/// handlers and turned into a response in exactly one place (<see cref="InferenceApi"/>).
/// </summary>
public sealed class ApiException(int status, string message, string type, string code, string? param = null)
    : Exception(message)
{
    public int Status { get; } = status;
    public string Type { get; } = type;
    public string? Param { get; } = param;
    /// <summary>What went wrong, for a program to act on: every refusal names one.</summary>
    public string Code { get; } = code;
    /// <summary>When set, the response carries Retry-After (whole seconds).</summary>
    public TimeSpan? RetryAfter { get; init; }
    /// <summary>For a 405: the methods the path takes, sent as the Allow header.</summary>
    public string? Allow { get; init; }

    public static ApiException BadRequest(string message, string? param, string code) =>
        new(400, message, "invalid_request_error", code, param);

    public static ApiException QueueFull(int depth) =>
        new(429, $"the server is busy: {depth} requests are already waiting; retry shortly", "rate_limit_error", "queue_full")
        { RetryAfter = TimeSpan.FromSeconds(1) };

    public static ApiException Unavailable(string message, string code, TimeSpan? retryAfter) =>
        new(503, message, "unavailable_error", code) { RetryAfter = retryAfter };

    public static ApiException ShuttingDown() => Unavailable("the server is shutting down", "shutting_down", TimeSpan.FromSeconds(5));
}
