using System.Runtime.CompilerServices;
using BitNet.Inference.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace BitNet.Hosts.Http;

/// <summary>
/// Kestrel in front of <see cref="InferenceApi"/>: the plain server and `bitnet serve` run this app, and
/// the Azure Functions worker's HTTP function calls <see cref="ServeAsync"/> with the request its own
/// Kestrel received. It only translates HTTP ↔ <see cref="ApiRequest"/>/<see cref="ApiResponse"/> and
/// adds what belongs to an HTTP server: CORS, the request size limits, streaming writes with a flush per SSE frame, and a graceful shutdown (running streams finish, new
/// generations get 503, whatever still runs after the shutdown timeout is cancelled).
/// A client's mistake in the HTTP exchange itself (a malformed chunked body, a body arriving too
/// slowly, one too large, a connection dropped mid-body) gets the OpenAI error body when an answer
/// is still possible, and one log line, never a stack trace.
/// </summary>
public static class HttpApiHost
{
    /// <summary>Builds (does not start) the app listening on <paramref name="url"/> (port 0 = any free port;
    /// several URLs separated by ';'). <paramref name="logging"/> may add log providers;
    /// <paramref name="drainOnSignal"/> makes SIGTERM/SIGINT drain first (<see cref="DrainingLifetime"/>).</summary>
    public static WebApplication Create(InferenceApi api, string url, LogLevel logLevel = LogLevel.Information,
        Action<ILoggingBuilder>? logging = null, bool drainOnSignal = false)
    {
        ApiOptions options = api.Options;
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(logLevel);
        // One line per request from ASP.NET is noise next to a model server's own log; keep its warnings.
        builder.Logging.AddFilter("Microsoft.AspNetCore", LogLevel.Warning);
        // A start that fails (port in use) is reported by the caller in one line; the host's own report of it is a
        // stack trace. Only its errors before the start are muted: the exception still reaches the caller.
        var started = new StrongBox<bool>();
        builder.Logging.AddFilter("Microsoft.Extensions.Hosting.Internal.Host", level =>
            level >= logLevel && (level < LogLevel.Error || Volatile.Read(ref started.Value)));
        logging?.Invoke(builder.Logging);
        builder.Services.AddSingleton<InFlightRequests>();
        if (drainOnSignal)
            builder.Services.AddSingleton<IHostLifetime>(services => new DrainingLifetime(api,
                services.GetRequiredService<InFlightRequests>(), services.GetRequiredService<IHostApplicationLifetime>(),
                services.GetRequiredService<IOptions<HostOptions>>().Value, options.ShutdownTimeout));
        builder.WebHost.UseUrls(url);
        builder.WebHost.ConfigureKestrel(kestrel => ConfigureKestrel(kestrel, options));
        builder.Services.Configure<HostOptions>(host => host.ShutdownTimeout = options.ShutdownTimeout);
        if (options.CorsOrigins.Count > 0)
        {
            builder.Services.AddCors(cors => cors.AddDefaultPolicy(policy =>
            {
                if (options.CorsOrigins.Contains("*"))
                    policy.AllowAnyOrigin();
                else
                    policy.WithOrigins([.. options.CorsOrigins]);
                policy.AllowAnyHeader().AllowAnyMethod().WithExposedHeaders("Retry-After");
            }));
        }

        WebApplication app = builder.Build();
        app.Lifetime.ApplicationStarted.Register(() => Volatile.Write(ref started.Value, true));
        app.Lifetime.ApplicationStopping.Register(api.BeginShutdown);
        if (options.CorsOrigins.Count > 0)
            app.UseCors();
        app.Map("/{**path}", context => ServeAsync(api, context));
        return app;
    }

    /// <summary>
    /// The Kestrel settings of every server in front of the API: this app's and the Azure Functions worker's.
    /// Kestrel answers a longer request line, more header bytes or more header fields than its limits itself, with
    /// an empty body. Its limits sit above the API's (which answers 414 and 431 in the OpenAI error shape) and
    /// remain the hard ceiling on what one request's head may hold in memory.
    /// </summary>
    public static void ConfigureKestrel(Microsoft.AspNetCore.Server.Kestrel.Core.KestrelServerOptions kestrel, ApiOptions options)
    {
        ArgumentNullException.ThrowIfNull(kestrel);
        ArgumentNullException.ThrowIfNull(options);
        kestrel.Limits.MaxRequestBodySize = options.MaxRequestBytes;
        kestrel.Limits.MaxRequestLineSize = 4 * InferenceApi.MaxTargetBytes;
        kestrel.Limits.MaxRequestHeadersTotalSize = 4 * InferenceApi.MaxHeaderBytes;
        kestrel.Limits.MaxRequestHeaderCount = 4 * InferenceApi.MaxHeaderCount;
        kestrel.AddServerHeader = false;
    }

    /// <summary>Translates one HTTP exchange, whichever ASP.NET Core server received it.</summary>
    public static async Task ServeAsync(InferenceApi api, HttpContext context)
    {
        // Null in a server this app did not build (the Functions worker's), which has no drain.
        InFlightRequests? inFlight = context.RequestServices.GetService<InFlightRequests>();
        inFlight?.Add(context);
        try
        {
            await ServeOneAsync(api, context);
        }
        finally
        {
            inFlight?.Remove(context);
        }
    }

    private static async Task ServeOneAsync(InferenceApi api, HttpContext context)
    {
        CancellationToken aborted = context.RequestAborted;
        // The body limit per request, so it holds for a chunked body in a server this app did not configure (the Functions worker's).
        if (context.Features.Get<IHttpMaxRequestBodySizeFeature>() is { IsReadOnly: false } bodyLimit)
            bodyLimit.MaxRequestBodySize = api.Options.MaxRequestBytes;
        byte[] body;
        try
        {
            body = await ReadBodyAsync(context.Request, api.Options.MaxRequestBytes, aborted);
        }
        catch (BadHttpRequestException ex)
        {
            ApiException refusal = BodyRefusal(ex, api.Options.MaxRequestBytes);
            Logger(context).LogInformation("{Method} {Path} refused: {Status} {Reason}", context.Request.Method, LoggedPath(context), refusal.Status, refusal.Message);
            // The unread body makes the connection unusable for a next request: say so, so clients do not reuse it.
            context.Response.Headers.Connection = "close";
            await WriteJsonAsync(context, refusal.Status, InferenceApi.ErrorJson(refusal));
            return;
        }
        catch (Exception ex) when (aborted.IsCancellationRequested || ex is IOException)
        {
            Logger(context).LogInformation("{Method} {Path} abandoned: the client closed the connection while sending the body", context.Request.Method, LoggedPath(context));
            return;
        }

        var request = new ApiRequest(context.Request.Method, context.Request.Path.Value ?? "/", body)
        {
            Headers = ApiRequest.HeaderMap(context.Request.Headers.Select(h => new KeyValuePair<string, string>(h.Key, h.Value.ToString()))),
            Target = context.Features.Get<IHttpRequestFeature>()?.RawTarget,
        };

        ApiResponse response;
        try
        {
            response = await api.HandleAsync(request, aborted);
        }
        catch (OperationCanceledException) when (aborted.IsCancellationRequested)
        {
            return; // the client left; nobody to answer
        }
        catch (Exception ex)
        {
            Logger(context).LogError(ex, "request {Method} {Path} failed", request.Method, LoggedPath(context));
            await WriteJsonAsync(context, 500, InferenceApi.ServerErrorJson(ex));
            return;
        }

        if (api.ShuttingDown)
            context.Response.Headers.Connection = "close"; // draining: the next request should go elsewhere
        await using (response)
            await WriteAsync(context, response);
    }

    /// <summary>Writes an <see cref="ApiResponse"/>: JSON at once, or SSE frames flushed one by one.</summary>
    public static async Task WriteAsync(HttpContext context, ApiResponse response)
    {
        context.Response.StatusCode = response.Status;
        foreach (var (name, value) in response.Headers)
            context.Response.Headers[name] = value;

        if (response.Stream is null)
        {
            if (!HttpMethods.IsHead(context.Request.Method))
                await context.Response.Body.WriteAsync(response.Body, context.RequestAborted);
            return;
        }

        context.Features.Get<IHttpResponseBodyFeature>()?.DisableBuffering();
        try
        {
            // The headers go out now: a stream may wait a while for its first frame.
            await context.Response.StartAsync(context.RequestAborted);
            await context.Response.Body.FlushAsync(context.RequestAborted);
            await foreach (ReadOnlyMemory<byte> frame in response.Stream.WithCancellation(context.RequestAborted))
            {
                await context.Response.Body.WriteAsync(frame, context.RequestAborted);
                await context.Response.Body.FlushAsync(context.RequestAborted);
            }
        }
        catch (Exception) when (context.RequestAborted.IsCancellationRequested)
        {
            // The client went away: the generation was cancelled through the same token.
        }
        catch (Exception ex)
        {
            // Headers are gone (200); tell the client in-band, as llama.cpp's server does, and end the stream.
            Logger(context).LogError(ex, "stream {Path} failed", LoggedPath(context));
            try
            {
                await context.Response.Body.WriteAsync(InferenceApi.SseErrorFrame(ex), CancellationToken.None);
            }
            catch (Exception) when (context.RequestAborted.IsCancellationRequested)
            {
            }
        }
    }

    /// <summary>Kestrel's refusal of a request body, in the OpenAI error shape.</summary>
    private static ApiException BodyRefusal(BadHttpRequestException ex, long limit) => ex.StatusCode switch
    {
        StatusCodes.Status413PayloadTooLarge => new ApiException(413,
            $"the request body is larger than the limit of {limit} bytes", "invalid_request_error", code: "request_too_large"),
        StatusCodes.Status408RequestTimeout => new ApiException(408,
            "the request body arrived too slowly; send it at once", "invalid_request_error", code: "request_timeout"),
        _ => new ApiException(ex.StatusCode is >= 400 and < 500 ? ex.StatusCode : 400,
            $"the request body could not be read: {ex.Message.TrimEnd('.')}", "invalid_request_error", code: "invalid_request_body"),
    };

    private static async Task<byte[]> ReadBodyAsync(HttpRequest request, long limit, CancellationToken cancellationToken)
    {
        if (request.ContentLength is > 0 and var length && length > limit)
            throw new BadHttpRequestException("too large", StatusCodes.Status413PayloadTooLarge);
        using var buffer = new MemoryStream();
        await request.Body.CopyToAsync(buffer, cancellationToken);
        return buffer.ToArray();
    }

    private static async Task WriteJsonAsync(HttpContext context, int status, byte[] json)
    {
        if (context.Response.HasStarted)
            return;
        context.Response.StatusCode = status;
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(json);
    }

    /// <summary>The request path for a log line: a decoded %0A or ESC from a client must not break the line or drive a terminal.</summary>
    private static string LoggedPath(HttpContext context) => BitNet.Inference.Gguf.PrintableText.Escape(context.Request.Path.Value ?? "/");

    private static ILogger Logger(HttpContext context) =>
        context.RequestServices.GetRequiredService<ILoggerFactory>().CreateLogger("BitNet.Hosts.Http");
}
