using System.Text.Json;

namespace BitNet.Inference.Api.Json;

/// <summary>
/// Turns System.Text.Json's exceptions into 400s a client can act on: the field (from the JSON
/// path) becomes "param", the CLR type names become JSON words ("must be an integer").
/// </summary>
internal static class JsonErrors
{
    public static ApiException ToApiException(JsonException ex)
    {
        string? param = Param(ex.Path);
        if (IsBadText(ex))
            return BadText(param);
        string raw = ex.Message;
        int pathAt = raw.IndexOf(" Path: ", StringComparison.Ordinal);
        string message = pathAt >= 0 ? raw[..pathAt] : raw;
        message = message.TrimEnd('.', ' ');
        if (ex is JsonValueException refused)
            return ApiException.BadRequest(param is null ? $"the request body {message}" : $"'{param}' {message}", param, refused.Code);

        const string couldNot = "could not be converted to ";
        int typeAt = message.IndexOf(couldNot, StringComparison.Ordinal);
        if (typeAt >= 0)
        {
            string expected = JsonKind(message[(typeAt + couldNot.Length)..]);
            return param is null
                ? ApiException.BadRequest($"the request body must be {expected}", null, "invalid_type")
                : ApiException.BadRequest($"'{param}' must be {expected}", param, "invalid_type");
        }

        if (ex.BytePositionInLine is not null && ex.InnerException is not null || message.Contains("is invalid", StringComparison.Ordinal)
            || message.Contains("expected", StringComparison.OrdinalIgnoreCase) && param is null)
        {
            return ApiException.BadRequest($"the request body is not valid JSON: {message} (line {ex.LineNumber + 1}, byte {ex.BytePositionInLine + 1})", null, "invalid_json");
        }

        return param is null
            ? ApiException.BadRequest($"the request body is not valid: {message}", null, "invalid_json")
            : ApiException.BadRequest($"'{param}' {message}", param, "invalid_type");
    }

    /// <summary>The 400 for a string that is not text, in the field <paramref name="param"/> (null: the body).</summary>
    public static ApiException BadText(string? param)
    {
        const string what = "is not valid text: it holds invalid UTF-8 or a lone UTF-16 surrogate (such as \\ud800 without its pair)";
        return param is null
            ? ApiException.BadRequest($"the request body {what}", null, "invalid_encoding")
            : ApiException.BadRequest($"'{param}' {what}", param, "invalid_encoding");
    }

    /// <summary>A string the reader could not turn into text (System.Text.Json reports it as a type mismatch, with the cause inside).</summary>
    private static bool IsBadText(Exception ex)
    {
        for (Exception? inner = ex.InnerException; inner is not null; inner = inner.InnerException)
        {
            if (inner is System.Text.DecoderFallbackException ||
                inner is InvalidOperationException && (inner.Message.Contains("UTF-8", StringComparison.Ordinal) ||
                                                       inner.Message.Contains("UTF-16", StringComparison.Ordinal) ||
                                                       inner.Message.Contains("surrogate", StringComparison.OrdinalIgnoreCase)))
                return true;
        }
        return false;
    }

    /// <summary>"$.messages[0].content" → "messages[0].content"; "$" → null.</summary>
    private static string? Param(string? path)
    {
        if (string.IsNullOrEmpty(path) || path == "$")
            return null;
        string p = path.StartsWith("$.", StringComparison.Ordinal) ? path[2..] : path.TrimStart('$');
        return p.Length == 0 ? null : p;
    }

    private static string JsonKind(string clrType)
    {
        string t = clrType.Trim().TrimEnd('.');
        if (t.StartsWith("System.Nullable`1[", StringComparison.Ordinal))
            t = t["System.Nullable`1[".Length..].TrimEnd(']');
        return t switch
        {
            "System.Int32" or "System.Int64" or "System.UInt64" => "an integer",
            "System.Single" or "System.Double" => "a number",
            "System.Boolean" => "a boolean (true or false)",
            "System.String" => "a string",
            _ when t.StartsWith("System.Collections.Generic.List", StringComparison.Ordinal) => "an array",
            _ when t.StartsWith("System.Collections.Generic.Dictionary", StringComparison.Ordinal) => "an object",
            _ when t.StartsWith("BitNet.", StringComparison.Ordinal) => "a JSON object",
            _ => "of another type",
        };
    }
}
