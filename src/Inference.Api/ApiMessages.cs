using System.Text;

namespace BitNet.Inference.Api;

/// <summary>
/// One HTTP-shaped request, whatever carried it (Kestrel, the Azure Functions worker's ASP.NET Core
/// integration, a Lambda function-URL event). Header names are case-insensitive.
/// </summary>
public sealed record ApiRequest(string Method, string Path, ReadOnlyMemory<byte> Body)
{
    public IReadOnlyDictionary<string, string> Headers { get; init; } =
        new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);

    /// <summary>The request target as the client sent it (path and query, still percent-encoded), where the
    /// transport has it; null stands for <see cref="Path"/>. Only its length is used: see <see cref="InferenceApi.MaxTargetBytes"/>.</summary>
    public string? Target { get; init; }

    /// <summary>The transport's own deadline (Lambda invocation deadline minus a margin); the
    /// request timeout applies as well, whichever is earlier.</summary>
    public DateTimeOffset? Deadline { get; init; }

    public string? Header(string name) => Headers.TryGetValue(name, out string? value) ? value : null;

    public static IReadOnlyDictionary<string, string> HeaderMap(IEnumerable<KeyValuePair<string, string>> headers)
    {
        var map = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        foreach (var (name, value) in headers)
            map[name] = map.TryGetValue(name, out string? existing) ? existing + "," + value : value;
        return map;
    }
}

/// <summary>
/// The answer: a status, headers, and either a complete body or a stream of body pieces (SSE
/// frames). Hosts write <see cref="Body"/> or enumerate <see cref="Stream"/> exactly once, then
/// dispose the response (a stream holds the model until it is finished or disposed).
/// An exception thrown by <see cref="Stream"/> is a server fault after the first byte: the host
/// reports it its own way (SSE error frame, Lambda trailers).
/// </summary>
public sealed class ApiResponse : IAsyncDisposable
{
    private readonly IAsyncDisposable? _owner;

    private ApiResponse(int status, string contentType, ReadOnlyMemory<byte> body, IAsyncEnumerable<ReadOnlyMemory<byte>>? stream, IAsyncDisposable? owner)
    {
        Status = status;
        Headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase) { ["content-type"] = contentType };
        Body = body;
        Stream = stream;
        _owner = owner;
    }

    public int Status { get; }
    public Dictionary<string, string> Headers { get; }
    public ReadOnlyMemory<byte> Body { get; }
    public IAsyncEnumerable<ReadOnlyMemory<byte>>? Stream { get; }
    public bool IsStreaming => Stream is not null;

    public static ApiResponse Json(int status, byte[] body) => new(status, "application/json", body, null, null);

    /// <summary>A complete non-JSON body (e.g. /metrics' Prometheus text).</summary>
    public static ApiResponse Text(int status, string contentType, byte[] body) => new(status, contentType, body, null, null);

    public static ApiResponse ServerSentEvents(IAsyncEnumerable<ReadOnlyMemory<byte>> frames, IAsyncDisposable owner)
    {
        var response = new ApiResponse(200, "text/event-stream", default, frames, owner);
        response.Headers["cache-control"] = "no-cache";
        response.Headers["x-accel-buffering"] = "no";
        return response;
    }

    /// <summary>The whole body as bytes (a stream is read to its end); for buffered transports.</summary>
    public async Task<byte[]> ReadAllAsync(CancellationToken cancellationToken = default)
    {
        if (Stream is null)
            return Body.ToArray();
        using var buffer = new MemoryStream();
        await foreach (var piece in Stream.WithCancellation(cancellationToken).ConfigureAwait(false))
            buffer.Write(piece.Span);
        return buffer.ToArray();
    }

    public string BodyText => Encoding.UTF8.GetString(Body.Span);

    public ValueTask DisposeAsync() => _owner?.DisposeAsync() ?? ValueTask.CompletedTask;
}
