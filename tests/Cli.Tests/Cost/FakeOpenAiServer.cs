using System.Collections.Concurrent;
using System.Net;
using System.Text;
using BitNet.Cli.Tests.Hub;

namespace BitNet.Cli.Tests.Cost;

/// <summary>
/// A loopback OpenAI-compatible server for the cost benchmark: streams <see cref="TokensPerReply"/>
/// SSE chunks (one token each, <see cref="TokenDelay"/> apart, after <see cref="FirstTokenDelay"/>)
/// with a final usage chunk, and serves /metrics with a peak-memory gauge when asked.
/// </summary>
internal sealed class FakeOpenAiServer : IDisposable
{
    private readonly HttpListener _listener;
    private readonly Task _loop;
    private int _inFlight;

    public FakeOpenAiServer()
    {
        _listener = FakeHubServer.StartListener(port => [$"http://127.0.0.1:{port}/"], out int port);
        BaseUrl = $"http://127.0.0.1:{port}/";
        _loop = Task.Run(LoopAsync);
    }

    public string BaseUrl { get; }
    public int TokensPerReply { get; set; } = 5;
    public TimeSpan FirstTokenDelay { get; set; } = TimeSpan.FromMilliseconds(30);
    public TimeSpan TokenDelay { get; set; } = TimeSpan.FromMilliseconds(5);
    public long? MetricsPeakBytes { get; set; }
    public bool SendUsage { get; set; } = true;
    public int FailEveryNth { get; set; }
    /// <summary>Answer completions with this body as a plain 200 application/json reply, not a stream.</summary>
    public string? PlainReply { get; set; }
    /// <summary>Stream this one event (then [DONE]) instead of the token chunks.</summary>
    public string? RawEvent { get; set; }
    /// <summary>Never answer /metrics and /health (until disposed).</summary>
    public bool StallProbes { get; set; }
    private readonly CancellationTokenSource _stopping = new();
    public int MaxConcurrentSeen;
    public ConcurrentQueue<string> Bodies { get; } = new();
    private int _count;

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            _ = Task.Run(() => HandleAsync(context));
        }
    }

    private async Task HandleAsync(HttpListenerContext context)
    {
        var response = context.Response;
        try
        {
            string path = context.Request.Url!.AbsolutePath;
            if (StallProbes && path is "/metrics" or "/health")
            {
                try { await Task.Delay(Timeout.Infinite, _stopping.Token); } catch (OperationCanceledException) { }
                response.Abort();
                return;
            }
            if (path == "/metrics")
            {
                if (MetricsPeakBytes is not { } peak) { response.StatusCode = 404; response.Close(); return; }
                Write(response, "text/plain", $"# TYPE process_peak_resident_memory_bytes gauge\nprocess_peak_resident_memory_bytes {peak}\n");
                return;
            }
            if (path == "/health") { Write(response, "application/json", "{\"status\":\"ok\"}"); return; }
            if (path is not ("/v1/completions" or "/v1/chat/completions")) { response.StatusCode = 404; response.Close(); return; }

            using (var reader = new StreamReader(context.Request.InputStream))
                Bodies.Enqueue(await reader.ReadToEndAsync());
            if (FailEveryNth > 0 && Interlocked.Increment(ref _count) % FailEveryNth == 0)
            {
                response.StatusCode = 503;
                Write(response, "application/json", "{\"error\":{\"message\":\"busy\"}}");
                return;
            }

            if (PlainReply is { } plain)
            {
                Write(response, "application/json", plain);
                return;
            }
            if (RawEvent is { } raw)
            {
                response.ContentType = "text/event-stream";
                await SendAsync(response.OutputStream, $"data: {raw}\n\ndata: [DONE]\n\n");
                response.Close();
                return;
            }

            int now = Interlocked.Increment(ref _inFlight);
            int seen;
            while ((seen = MaxConcurrentSeen) < now && Interlocked.CompareExchange(ref MaxConcurrentSeen, now, seen) != seen) { }
            bool chat = path.Contains("chat");
            response.ContentType = "text/event-stream";
            response.SendChunked = true;
            var output = response.OutputStream;
            await Task.Delay(FirstTokenDelay);
            for (int i = 0; i < TokensPerReply; i++)
            {
                if (i > 0) await Task.Delay(TokenDelay);
                string choice = chat ? "{\"index\":0,\"delta\":{\"content\":\"t" + i + " \"}}" : "{\"index\":0,\"text\":\"t" + i + " \"}";
                string chunk = "{\"model\":\"fake-bitnet\",\"choices\":[" + choice + "]}";
                await SendAsync(output, $"data: {chunk}\n\n");
            }
            if (SendUsage)
                await SendAsync(output, "data: {\"model\":\"fake-bitnet\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":" + TokensPerReply + "}}\n\n");
            await SendAsync(output, "data: [DONE]\n\n");
            Interlocked.Decrement(ref _inFlight);
            response.Close();
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException) { }
    }

    private static async Task SendAsync(Stream output, string text)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(text);
        await output.WriteAsync(bytes);
        await output.FlushAsync();
    }

    private static void Write(HttpListenerResponse response, string type, string body)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(body);
        response.ContentType = type;
        response.ContentLength64 = bytes.Length;
        response.OutputStream.Write(bytes);
        response.Close();
    }

    public void Dispose()
    {
        // Close alone: on Unix (the managed HttpListener) Stop then Close removes the listener twice,
        // and the second removal binds the port again to look for it ("Address already in use" when
        // anything took the port in between, such as the next test's fake server).
        _stopping.Cancel();
        _listener.Close();
        try { _loop.Wait(TimeSpan.FromSeconds(2)); } catch (AggregateException) { }
        _stopping.Dispose();
    }
}
