using System.Text;
using System.Text.Json;
using BitNet.Inference.Api;

namespace BitNet.Hosts.Lambda;

/// <summary>What kind of event an invocation carries.</summary>
public enum LambdaEventKind
{
    /// <summary>An HTTP request of a function URL (payload format 2.0: rawPath, requestContext.http.method, a
    /// requestContext.domainName on lambda-url), answered with {"statusCode","headers","body"}, or streamed when
    /// BITNET_LAMBDA_STREAMING is set.</summary>
    FunctionUrl,
    /// <summary>An HTTP request through API Gateway: a REST API's (payload format 1.0: httpMethod, path) or an HTTP
    /// API's (format 2.0 with an execute-api or custom domainName). Always answered with one
    /// {"statusCode","headers","body"}: their Lambda proxy integrations cannot read a streamed response.</summary>
    ApiGateway,
    /// <summary>{"keep_warm": true}, or an EventBridge rule's {"source":"aws.events","detail-type":"Scheduled Event"}.</summary>
    KeepWarm,
    /// <summary>A direct invoke with the legacy /completion payload (JSON, base64 JSON, or {"body": ...}).</summary>
    Legacy,
}

/// <summary>Classifies events and turns an HTTP event (function URL or API Gateway) into an <see cref="ApiRequest"/>.
/// JsonDocument only (no reflection): AOT-safe.</summary>
public static class LambdaEvents
{
    public static LambdaEventKind Classify(ReadOnlySpan<byte> json)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(json.ToArray());
            JsonElement root = document.RootElement;
            if (root.ValueKind != JsonValueKind.Object)
                return LambdaEventKind.Legacy;
            if (root.TryGetProperty("requestContext", out JsonElement context) && context.ValueKind == JsonValueKind.Object)
            {
                if (context.TryGetProperty("http", out JsonElement http) && http.ValueKind == JsonValueKind.Object)
                    // Both carry format 2.0; a function URL's domain is <url-id>.lambda-url.<region>.on.aws.
                    return String(context, "domainName") is { } domain && !domain.Contains(".lambda-url.", StringComparison.OrdinalIgnoreCase)
                        ? LambdaEventKind.ApiGateway
                        : LambdaEventKind.FunctionUrl;
                if (root.TryGetProperty("httpMethod", out JsonElement method) && method.ValueKind == JsonValueKind.String)
                    return LambdaEventKind.ApiGateway;
            }
            if (String(root, "source") == "aws.events" && String(root, "detail-type") == "Scheduled Event")
                return LambdaEventKind.KeepWarm;
            if (root.TryGetProperty("keep_warm", out JsonElement keepWarm) && keepWarm.ValueKind == JsonValueKind.True)
                return LambdaEventKind.KeepWarm;
            return LambdaEventKind.Legacy;
        }
        catch (Exception ex) when (ex is JsonException or ApiException)
        {
            return LambdaEventKind.Legacy; // the legacy decoder reports what is wrong with it
        }
    }

    /// <summary>An HTTP event as a request: method, path, headers, body (base64-decoded when isBase64Encoded).</summary>
    public static ApiRequest ToApiRequest(ReadOnlySpan<byte> json, DateTimeOffset? deadline)
    {
        using JsonDocument document = JsonDocument.Parse(json.ToArray());
        JsonElement root = document.RootElement;
        string? method, path, query = null;
        if (root.GetProperty("requestContext").TryGetProperty("http", out JsonElement http) && http.ValueKind == JsonValueKind.Object)
        {
            method = String(http, "method");
            path = String(root, "rawPath") ?? String(http, "path");
            query = String(root, "rawQueryString");
        }
        else
        {
            method = String(root, "httpMethod");
            path = String(root, "path");
        }
        method ??= "GET";
        path ??= "/";
        string? target = string.IsNullOrEmpty(query) ? null : path + "?" + query;

        var headers = new Dictionary<string, string>(StringComparer.OrdinalIgnoreCase);
        if (root.TryGetProperty("headers", out JsonElement headerObject) && headerObject.ValueKind == JsonValueKind.Object)
        {
            foreach (JsonProperty header in headerObject.EnumerateObject())
            {
                if (header.Value.ValueKind == JsonValueKind.String)
                    headers[Name(header)] = Text(header.Value, "headers");
            }
        }
        return new ApiRequest(method, path, Body(root)) { Headers = headers, Deadline = deadline, Target = target };
    }

    /// <summary>The payload of a direct invoke: the event itself, or its "body" field when it wraps one.</summary>
    public static ReadOnlyMemory<byte> LegacyPayload(byte[] json)
    {
        try
        {
            using JsonDocument document = JsonDocument.Parse(json);
            JsonElement root = document.RootElement;
            if (root.ValueKind == JsonValueKind.Object && !root.TryGetProperty("prompt", out _) &&
                root.TryGetProperty("body", out JsonElement body) && body.ValueKind == JsonValueKind.String)
                return Body(root);
        }
        catch (JsonException)
        {
        }
        return json;
    }

    private static byte[] Body(JsonElement root)
    {
        if (!root.TryGetProperty("body", out JsonElement body) || body.ValueKind != JsonValueKind.String)
            return [];
        string text = Text(body, "'body'");
        bool base64 = root.TryGetProperty("isBase64Encoded", out JsonElement flag) && flag.ValueKind == JsonValueKind.True;
        if (!base64)
            return Encoding.UTF8.GetBytes(text);
        try
        {
            return Convert.FromBase64String(text);
        }
        catch (FormatException)
        {
            return Encoding.UTF8.GetBytes(text); // the API layer will say the body is not JSON
        }
    }

    private static string? String(JsonElement element, string name) =>
        element.TryGetProperty(name, out JsonElement value) && value.ValueKind == JsonValueKind.String ? Text(value, $"'{name}'") : null;

    /// <summary>A string of the event. JSON lets a string escape a lone surrogate ("\ud800"), which is no text:
    /// that is the caller's mistake, refused with 400 like the same string in a request body.</summary>
    private static string Text(JsonElement value, string what)
    {
        try
        {
            return value.GetString()!;
        }
        catch (InvalidOperationException)
        {
            throw NotText(what);
        }
    }

    private static string Name(JsonProperty property)
    {
        try
        {
            return property.Name;
        }
        catch (InvalidOperationException)
        {
            throw NotText("headers");
        }
    }

    private static ApiException NotText(string what) => ApiException.BadRequest(
        $"the event's {what} is not valid text: it holds a lone UTF-16 surrogate (such as \\ud800 without its pair)", null, "invalid_encoding");
}
