using System.Collections.Concurrent;
using System.Globalization;
using System.Threading.Channels;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.Logging;

namespace BitNet.Hosts.Tests.Support;

/// <summary>
/// An in-process Lambda Runtime API on a loopback port, following the documented endpoints
/// (serverless-platforms.md §A1-A6): GET /2018-06-01/runtime/invocation/next hands out queued events
/// with the documented headers; /response, /error and /init/error record exactly what arrived,
/// including the streaming mode header, chunked transfer coding and request trailers.
/// </summary>
internal sealed class FakeRuntimeApi : IAsyncDisposable
{
    private readonly WebApplication _app;
    private readonly Channel<QueuedEvent> _events = Channel.CreateUnbounded<QueuedEvent>();
    private readonly ConcurrentDictionary<string, TaskCompletionSource<Posted>> _results = new();

    public sealed record QueuedEvent(string RequestId, byte[] Body, DateTimeOffset Deadline, string TraceId);

    /// <summary>What the runtime posted for one invocation (or for init).</summary>
    public sealed record Posted(
        string Kind, // "response" or "error"
        byte[] Body,
        string? ContentType,
        string? ResponseMode,
        string? TransferEncoding,
        string? ErrorTypeHeader,
        string? TrailerErrorType,
        string? TrailerErrorBody,
        string? DeclaredTrailers,
        DateTimeOffset ReceivedAt);

    public readonly TaskCompletionSource<Posted> InitError = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private FakeRuntimeApi(WebApplication app) => _app = app;

    /// <summary>AWS_LAMBDA_RUNTIME_API: host:port.</summary>
    public string HostPort => new Uri(_app.Urls.First()).Authority;

    public static async Task<FakeRuntimeApi> StartAsync()
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        WebApplication app = builder.Build();
        var fake = new FakeRuntimeApi(app);
        app.MapGet("/2018-06-01/runtime/invocation/next", fake.NextAsync);
        app.MapPost("/2018-06-01/runtime/invocation/{id}/response", (HttpContext c, string id) => fake.RecordAsync(c, id, "response"));
        app.MapPost("/2018-06-01/runtime/invocation/{id}/error", (HttpContext c, string id) => fake.RecordAsync(c, id, "error"));
        app.MapPost("/2018-06-01/runtime/init/error", (HttpContext c) => fake.RecordAsync(c, null, "error"));
        await app.StartAsync();
        return fake;
    }

    /// <summary>Queues an event; the returned task completes with what the runtime posts for it (and fails
    /// after <paramref name="wait"/>, 30 s unless given).</summary>
    public Task<Posted> Invoke(string eventJson, TimeSpan? timeLeft = null, TimeSpan? wait = null)
    {
        string id = Guid.NewGuid().ToString();
        var result = new TaskCompletionSource<Posted>(TaskCreationOptions.RunContinuationsAsynchronously);
        _results[id] = result;
        _events.Writer.TryWrite(new QueuedEvent(id, System.Text.Encoding.UTF8.GetBytes(eventJson),
            DateTimeOffset.UtcNow + (timeLeft ?? TimeSpan.FromMinutes(5)), $"Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"));
        return result.Task.WaitAsync(wait ?? TimeSpan.FromSeconds(30));
    }

    /// <summary>Drop the connection of the next /next call once (a connection gone stale while frozen).</summary>
    public bool AbortNextOnce;

    private async Task NextAsync(HttpContext context)
    {
        if (AbortNextOnce)
        {
            AbortNextOnce = false;
            context.Abort();
            return;
        }
        QueuedEvent next = await _events.Reader.ReadAsync(context.RequestAborted);
        context.Response.Headers["Lambda-Runtime-Aws-Request-Id"] = next.RequestId;
        context.Response.Headers["Lambda-Runtime-Deadline-Ms"] = next.Deadline.ToUnixTimeMilliseconds().ToString(CultureInfo.InvariantCulture);
        context.Response.Headers["Lambda-Runtime-Invoked-Function-Arn"] = "arn:aws:lambda:us-east-1:123456789012:function:bitnet:live";
        context.Response.Headers["Lambda-Runtime-Trace-Id"] = next.TraceId;
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(next.Body);
    }

    private async Task RecordAsync(HttpContext context, string? id, string kind)
    {
        using var body = new MemoryStream();
        await context.Request.Body.CopyToAsync(body);
        string? trailerType = null, trailerBody = null;
        if (context.Features.Get<IHttpRequestTrailersFeature>() is { Available: true } trailers)
        {
            trailerType = trailers.Trailers["Lambda-Runtime-Function-Error-Type"].ToString() is { Length: > 0 } t ? t : null;
            trailerBody = trailers.Trailers["Lambda-Runtime-Function-Error-Body"].ToString() is { Length: > 0 } b ? b : null;
        }
        var posted = new Posted(kind, body.ToArray(), context.Request.ContentType,
            context.Request.Headers["Lambda-Runtime-Function-Response-Mode"].FirstOrDefault(),
            context.Request.Headers.TransferEncoding.FirstOrDefault(),
            context.Request.Headers["Lambda-Runtime-Function-Error-Type"].FirstOrDefault(),
            trailerType, trailerBody,
            string.Join(",", context.Request.Headers["Trailer"].ToArray()),
            DateTimeOffset.UtcNow);
        context.Response.StatusCode = 202;
        await context.Response.WriteAsync("{\"status\":\"OK\"}");
        if (id is null)
            InitError.TrySetResult(posted);
        else if (_results.TryGetValue(id, out var result))
            result.TrySetResult(posted);
    }

    public async ValueTask DisposeAsync()
    {
        _events.Writer.TryComplete();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
