using System.Text;
using System.Text.Json;
using BitNet.Hosts.Http;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BitNet.Hosts.AzureFunctions;

/// <summary>
/// The Azure Functions custom handler: the shared Kestrel app on 127.0.0.1:$FUNCTIONS_CUSTOMHANDLER_PORT.
/// HTTP requests arrive forwarded/proxied at their original path (host.json: routePrefix "") and go
/// straight to the API. Two function names also get the host's non-forwarded invocation JSON
/// (<c>{"Data":{...},"Metadata":{...}}</c>), answered with <c>{"Outputs","Logs","ReturnValue"}</c>:
/// <c>keepwarm</c> (the timer trigger) and <c>openai</c> (the HTTP trigger, if forwarding is off).
/// </summary>
public static class AzureHandler
{
    /// <summary>Folder name of the timer trigger's function.json = the path the host POSTs to.</summary>
    public const string KeepWarmFunction = "keepwarm";
    /// <summary>Folder name of the HTTP trigger's function.json.</summary>
    public const string HttpFunction = "openai";

    public static WebApplication Create(InferenceApi api, int port, LogLevel logLevel = LogLevel.Information) =>
        HttpApiHost.Create(api, $"http://127.0.0.1:{port}", app =>
        {
            app.MapPost("/" + KeepWarmFunction, context => KeepWarmAsync(api, context));
            app.MapPost("/" + HttpFunction, context => HttpInvocationAsync(api, context));
        }, logLevel);

    /// <summary>Timer trigger: ping, then the custom-handler response JSON.</summary>
    private static async Task KeepWarmAsync(InferenceApi api, HttpContext context)
    {
        await using ApiResponse ping = api.KeepWarm();
        await WriteInvocationResultAsync(context, outputs: null, log: $"keep-warm: {ping.BodyText}");
    }

    /// <summary>
    /// The HTTP trigger without forwarding: Data.req = {Url, Method, Query, Headers{name:[values]}, Params, Body}.
    /// A body without "Data" is an ordinary request that happens to use this path.
    /// </summary>
    private static async Task HttpInvocationAsync(InferenceApi api, HttpContext context)
    {
        using var buffer = new MemoryStream();
        await context.Request.Body.CopyToAsync(buffer, context.RequestAborted);
        byte[] raw = buffer.ToArray();
        ApiRequest? request = TryReadInvocation(raw);
        if (request is null)
        {
            context.Request.Body = new MemoryStream(raw);
            await HttpApiHost.ServeAsync(api, context);
            return;
        }

        await using ApiResponse response = await api.HandleAsync(request, context.RequestAborted);
        byte[] body = await response.ReadAllAsync(context.RequestAborted); // this mode is buffered by the host anyway
        using var outputs = new MemoryStream();
        using (var json = new Utf8JsonWriter(outputs))
        {
            json.WriteStartObject();
            json.WriteStartObject("res");
            json.WriteNumber("statusCode", response.Status);
            json.WriteString("body", Encoding.UTF8.GetString(body));
            json.WriteStartObject("headers");
            foreach (var (name, value) in response.Headers)
                json.WriteString(name, value);
            json.WriteEndObject();
            json.WriteEndObject();
            json.WriteEndObject();
        }
        await WriteInvocationResultAsync(context, outputs.ToArray(), $"{request.Method} {request.Path} -> {response.Status}");
    }

    internal static ApiRequest? TryReadInvocation(byte[] raw)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(raw);
            if (document.RootElement.ValueKind != JsonValueKind.Object ||
                !document.RootElement.TryGetProperty("Data", out JsonElement data) || data.ValueKind != JsonValueKind.Object)
                return null;
            JsonElement req = data.EnumerateObject().Select(p => p.Value).FirstOrDefault(v => v.ValueKind == JsonValueKind.Object && v.TryGetProperty("Method", out _));
            if (req.ValueKind != JsonValueKind.Object)
                return null;

            string method = req.GetProperty("Method").GetString() ?? "GET";
            string path = req.TryGetProperty("Url", out JsonElement url) && Uri.TryCreate(url.GetString(), UriKind.Absolute, out Uri? uri) ? uri.AbsolutePath : "/";
            var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
            if (req.TryGetProperty("Headers", out JsonElement headerObject) && headerObject.ValueKind == JsonValueKind.Object)
            {
                foreach (JsonProperty header in headerObject.EnumerateObject())
                {
                    headers[header.Name] = header.Value.ValueKind switch
                    {
                        JsonValueKind.Array => string.Join(",", header.Value.EnumerateArray().Select(v => v.ToString())),
                        _ => header.Value.ToString(),
                    };
                }
            }
            byte[] body = req.TryGetProperty("Body", out JsonElement bodyElement) ? bodyElement.ValueKind switch
            {
                JsonValueKind.String => Encoding.UTF8.GetBytes(bodyElement.GetString()!),
                JsonValueKind.Null or JsonValueKind.Undefined => [],
                _ => Encoding.UTF8.GetBytes(bodyElement.GetRawText()), // the host may hand over a parsed JSON body
            } : [];
            return new ApiRequest(method, path, body) { Headers = headers };
        }
        catch (JsonException)
        {
            return null;
        }
    }

    /// <summary>{"Outputs":{...},"Logs":[...],"ReturnValue":null}. Always 200: the host turns a non-2xx into a failed invocation.</summary>
    private static async Task WriteInvocationResultAsync(HttpContext context, byte[]? outputs, string log)
    {
        using var buffer = new MemoryStream();
        using (var json = new Utf8JsonWriter(buffer))
        {
            json.WriteStartObject();
            json.WritePropertyName("Outputs");
            if (outputs is null)
            {
                json.WriteStartObject();
                json.WriteEndObject();
            }
            else
            {
                json.WriteRawValue(outputs);
            }
            json.WriteStartArray("Logs");
            json.WriteStringValue(log);
            json.WriteEndArray();
            json.WriteNull("ReturnValue");
            json.WriteEndObject();
        }
        context.Response.StatusCode = 200;
        context.Response.ContentType = "application/json";
        await context.Response.Body.WriteAsync(buffer.ToArray(), context.RequestAborted);
    }

    /// <summary>Bind at once (the host waits at most 30-60 s for the port), load in the background.</summary>
    public static async Task<int> RunAsync(ApiOptions options, int port, Func<ApiOptions, ITextGenerator> load)
    {
        var provider = new GeneratorProvider();
        var api = new InferenceApi(provider, options);
        WebApplication app = Create(api, port);
        await app.StartAsync();
        _ = provider.LoadInBackground(() => load(options));
        await app.WaitForShutdownAsync();
        return 0;
    }
}
