using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Text;
using System.Text.Json;

namespace BitNet.Hosts.Lambda.Runtime;

/// <summary>
/// <see cref="IRuntimeApi"/> over HTTP. HttpClient for the buffered calls; the streaming response is
/// written by hand on a socket, because the documented mid-stream error signal is a pair of HTTP/1.1
/// request trailers and HttpClient cannot send request trailers.
/// </summary>
public sealed class RuntimeApiClient : IRuntimeApi, IDisposable
{
    private const string ApiVersion = "2018-06-01";
    private const string ErrorContentType = "application/vnd.aws.lambda.error+json";
    private readonly string _hostPort;
    private readonly HttpClient _http;

    /// <param name="hostPort">The value of AWS_LAMBDA_RUNTIME_API, e.g. "127.0.0.1:9001".</param>
    public RuntimeApiClient(string hostPort)
    {
        _hostPort = hostPort;
        // No timeout: the sandbox is frozen while /next waits for an event, possibly for hours.
        _http = new HttpClient(new SocketsHttpHandler { UseProxy = false, PooledConnectionIdleTimeout = Timeout.InfiniteTimeSpan })
        {
            BaseAddress = new Uri($"http://{hostPort}/{ApiVersion}/"),
            Timeout = Timeout.InfiniteTimeSpan,
        };
    }

    public async Task<Invocation> NextAsync(CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await Send(new HttpRequestMessage(HttpMethod.Get, "runtime/invocation/next"), cancellationToken);
        }
        catch (RuntimeApiFatalException ex) when (ex.InnerException is HttpRequestException)
        {
            // A pooled connection can go stale while the sandbox is frozen between events; /next is
            // safe to repeat, so try once more on a fresh connection before giving up on the container.
            response = await Send(new HttpRequestMessage(HttpMethod.Get, "runtime/invocation/next"), cancellationToken);
        }
        using var _ = response;
        byte[] body = await response.Content.ReadAsByteArrayAsync(cancellationToken);
        string requestId = Header(response, "Lambda-Runtime-Aws-Request-Id")
            ?? throw new RuntimeApiFatalException("the Runtime API sent an event without Lambda-Runtime-Aws-Request-Id");
        DateTimeOffset? deadline = long.TryParse(Header(response, "Lambda-Runtime-Deadline-Ms"), NumberStyles.Integer, CultureInfo.InvariantCulture, out long ms)
            ? DateTimeOffset.FromUnixTimeMilliseconds(ms)
            : null;
        return new Invocation(requestId, deadline, Header(response, "Lambda-Runtime-Invoked-Function-Arn"),
            Header(response, "Lambda-Runtime-Trace-Id"), Header(response, "Lambda-Runtime-Invocation-Id"), body);
    }

    public async Task SendResponseAsync(Invocation invocation, ReadOnlyMemory<byte> body, string contentType, CancellationToken cancellationToken)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, $"runtime/invocation/{Uri.EscapeDataString(invocation.RequestId)}/response")
        {
            Content = new ReadOnlyMemoryContent(body) { Headers = { ContentType = MediaTypeHeaderValue.Parse(contentType) } },
        };
        Echo(request, invocation);
        using HttpResponseMessage response = await Send(request, cancellationToken);
    }

    public async Task SendErrorAsync(Invocation invocation, LambdaError error, CancellationToken cancellationToken)
    {
        var request = ErrorRequest($"runtime/invocation/{Uri.EscapeDataString(invocation.RequestId)}/error", error);
        Echo(request, invocation);
        using HttpResponseMessage response = await Send(request, cancellationToken);
    }

    public async Task SendInitErrorAsync(LambdaError error, CancellationToken cancellationToken)
    {
        using HttpResponseMessage response = await Send(ErrorRequest("runtime/init/error", error), cancellationToken);
    }

    public async Task SendStreamingResponseAsync(Invocation invocation, string contentType, Func<Stream, CancellationToken, Task> writeBody, CancellationToken cancellationToken)
    {
        (string host, int port) = SplitHostPort(_hostPort);
        using var socket = new TcpClient { NoDelay = true };
        await socket.ConnectAsync(host, port, cancellationToken);
        NetworkStream network = socket.GetStream();

        var head = new StringBuilder()
            .Append(CultureInfo.InvariantCulture, $"POST /{ApiVersion}/runtime/invocation/{Uri.EscapeDataString(invocation.RequestId)}/response HTTP/1.1\r\n")
            .Append(CultureInfo.InvariantCulture, $"Host: {_hostPort}\r\n")
            .Append("Transfer-Encoding: chunked\r\n")
            .Append("Lambda-Runtime-Function-Response-Mode: streaming\r\n")
            .Append(CultureInfo.InvariantCulture, $"Content-Type: {contentType}\r\n")
            .Append("Trailer: Lambda-Runtime-Function-Error-Type, Lambda-Runtime-Function-Error-Body\r\n");
        if (invocation.InvocationId is { } invocationId)
            head.Append(CultureInfo.InvariantCulture, $"Lambda-Runtime-Invocation-Id: {invocationId}\r\n");
        head.Append("Connection: close\r\n\r\n");
        await network.WriteAsync(Encoding.ASCII.GetBytes(head.ToString()), cancellationToken);

        var chunked = new ChunkedWriteStream(network);
        string trailers = "";
        try
        {
            await writeBody(chunked, cancellationToken);
            await chunked.FlushAsync(cancellationToken);
        }
        catch (Exception ex) when (ex is not RuntimeApiFatalException)
        {
            // After the first byte only trailers can report an error (runtimes-custom.html, response streaming).
            await chunked.FlushAsync(CancellationToken.None);
            LambdaError error = LambdaError.From(ex, "Runtime.StreamError");
            trailers = $"Lambda-Runtime-Function-Error-Type: {error.ErrorType}\r\n" +
                       $"Lambda-Runtime-Function-Error-Body: {Convert.ToBase64String(ErrorJson(error))}\r\n";
        }
        await network.WriteAsync(Encoding.ASCII.GetBytes("0\r\n" + trailers + "\r\n"), CancellationToken.None);
        await network.FlushAsync(CancellationToken.None);

        int status = await ReadStatusAsync(network, cancellationToken);
        if (status >= 500)
            throw new RuntimeApiFatalException($"the Runtime API answered the streamed response with {status}");
    }

    private static async Task<int> ReadStatusAsync(NetworkStream network, CancellationToken cancellationToken)
    {
        var line = new List<byte>(64);
        var one = new byte[1];
        while (line.Count < 1024 && await network.ReadAsync(one, cancellationToken) == 1 && one[0] != (byte)'\n')
            line.Add(one[0]);
        string[] parts = Encoding.ASCII.GetString([.. line]).Split(' ');
        return parts.Length >= 2 && int.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out int status)
            ? status
            : throw new RuntimeApiFatalException("the Runtime API sent no HTTP status for the streamed response");
    }

    private static HttpRequestMessage ErrorRequest(string path, LambdaError error)
    {
        var request = new HttpRequestMessage(HttpMethod.Post, path)
        {
            Content = new ByteArrayContent(ErrorJson(error)) { Headers = { ContentType = MediaTypeHeaderValue.Parse(ErrorContentType) } },
        };
        request.Headers.TryAddWithoutValidation("Lambda-Runtime-Function-Error-Type", error.ErrorType);
        return request;
    }

    internal static byte[] ErrorJson(LambdaError error)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WriteString("errorMessage", error.ErrorMessage);
            json.WriteString("errorType", error.ErrorType);
            json.WriteStartArray("stackTrace");
            foreach (string frame in error.StackTrace)
                json.WriteStringValue(frame);
            json.WriteEndArray();
            json.WriteEndObject();
        }
        return buffer.ToArray();
    }

    private static void Echo(HttpRequestMessage request, Invocation invocation)
    {
        if (invocation.InvocationId is { } id)
            request.Headers.TryAddWithoutValidation("Lambda-Runtime-Invocation-Id", id);
    }

    private async Task<HttpResponseMessage> Send(HttpRequestMessage request, CancellationToken cancellationToken)
    {
        HttpResponseMessage response;
        try
        {
            response = await _http.SendAsync(request, cancellationToken);
        }
        catch (HttpRequestException ex)
        {
            throw new RuntimeApiFatalException($"the Runtime API at {_hostPort} cannot be reached: {ex.Message}", ex);
        }
        finally
        {
            request.Dispose();
        }
        // 500 = "container error, non-recoverable, runtime should exit promptly"; 4xx are our mistakes, also fatal to report on.
        if ((int)response.StatusCode >= 500)
            throw new RuntimeApiFatalException($"the Runtime API answered {request.Method} {request.RequestUri} with {(int)response.StatusCode}");
        if (response.StatusCode is not (HttpStatusCode.OK or HttpStatusCode.Accepted))
            Console.Error.WriteLine($"bootstrap: the Runtime API answered {request.Method} {request.RequestUri} with {(int)response.StatusCode}");
        return response;
    }

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault() : null;

    private static (string Host, int Port) SplitHostPort(string hostPort)
    {
        int colon = hostPort.LastIndexOf(':');
        return colon > 0 && int.TryParse(hostPort[(colon + 1)..], NumberStyles.Integer, CultureInfo.InvariantCulture, out int port)
            ? (hostPort[..colon].Trim('[', ']'), port)
            : (hostPort, 80);
    }

    public void Dispose() => _http.Dispose();
}
