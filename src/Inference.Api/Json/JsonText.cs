using System.Globalization;
using System.Text.Json;
using System.Text.Unicode;

namespace BitNet.Inference.Api.Json;

/// <summary>
/// Every string of a request body, value or key, in a field the API reads or ignores, at any depth, must be
/// text: invalid UTF-8 or an escaped lone surrogate (<c>"\ud800"</c>) is refused as <c>invalid_encoding</c>,
/// the answer a field the serializer reads already gets. Run after the serializer has read the body (so a
/// read field keeps its own error), it costs one vectorized UTF-8 validation of the bytes and a scan of
/// the escapes; only a refused body is parsed again, to name where the string is.
/// </summary>
internal static class JsonText
{
    public static void Check(ReadOnlyMemory<byte> json)
    {
        if (Utf8.IsValid(json.Span) && !HasLoneSurrogateEscape(json.Span))
            return;
        throw JsonErrors.BadText(Place(json));
    }

    /// <summary>Whether a \uXXXX escape names a surrogate that is not one half of a high-low pair. In valid JSON a
    /// backslash occurs only in a string, where it starts an escape, so reading escape after escape is exact.</summary>
    private static bool HasLoneSurrogateEscape(ReadOnlySpan<byte> json)
    {
        int at = json.IndexOf((byte)'\\');
        while (at >= 0)
        {
            int unit = Escaped(json, at), length = unit < 0 ? 2 : 6;
            if (unit is >= 0xD800 and <= 0xDFFF)
            {
                if (unit >= 0xDC00 || Escaped(json, at + 6) is not (>= 0xDC00 and <= 0xDFFF))
                    return true;
                length = 12;
            }
            int next = at + length < json.Length ? json[(at + length)..].IndexOf((byte)'\\') : -1;
            at = next < 0 ? -1 : at + length + next;
        }
        return false;
    }

    /// <summary>The UTF-16 unit a \uXXXX escape at <paramref name="at"/> stands for; -1 where there is none.</summary>
    private static int Escaped(ReadOnlySpan<byte> json, int at) =>
        at + 6 <= json.Length && json[at] == '\\' && json[at + 1] == 'u' &&
        int.TryParse(json.Slice(at + 2, 4), NumberStyles.AllowHexSpecifier, CultureInfo.InvariantCulture, out int unit) ? unit : -1;

    /// <summary>The param of the first string that is not text: its path ("metadata.note", "stop[1]"), or for a key
    /// the path of the object holding it; null for the body itself.</summary>
    private static string? Place(ReadOnlyMemory<byte> json)
    {
        using JsonDocument document = JsonDocument.Parse(json);
        return Find(document.RootElement, null, out string? place) ? place : null;
    }

    private static bool Find(JsonElement element, string? path, out string? place)
    {
        place = path;
        switch (element.ValueKind)
        {
            case JsonValueKind.String:
                return !IsText(() => element.GetString());
            case JsonValueKind.Array:
                int index = 0;
                foreach (JsonElement item in element.EnumerateArray())
                {
                    if (Find(item, $"{path}[{index++}]", out place))
                        return true;
                }
                break;
            case JsonValueKind.Object:
                foreach (JsonProperty property in element.EnumerateObject())
                {
                    if (!IsText(() => property.Name))
                    {
                        place = path;
                        return true;
                    }
                    if (Find(property.Value, path is null ? property.Name : $"{path}.{property.Name}", out place))
                        return true;
                }
                break;
        }
        place = null;
        return false;
    }

    /// <summary>Whether a string of the document reads as text (System.Text.Json throws when it holds no text).</summary>
    private static bool IsText(Func<string?> read)
    {
        try
        {
            read();
            return true;
        }
        catch (InvalidOperationException)
        {
            return false;
        }
    }
}
