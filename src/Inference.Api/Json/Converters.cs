using System.Buffers;
using System.Globalization;
using System.Text;
using System.Text.Json;
using System.Text.Json.Serialization;

namespace BitNet.Inference.Api.Json;

/// <summary>
/// How every integer of a request is read (max_tokens, n, seed, top_k, logprobs, prompt token ids, …): a JSON
/// number whose value is an integer in the field's range, however it is written (5, 5.0, 5e0, 0.5e1; -0.0 is 0),
/// as OpenAI and llama.cpp accept an integral float. A fraction (1.5, 1e-1) or a value out of range (1e400) is
/// not one. Decided on the digits, exactly (no rounding through a double): 1.0000000000000000000001 is refused.
/// </summary>
public static class JsonIntegers
{
    private const NumberStyles Integral = NumberStyles.AllowLeadingSign | NumberStyles.AllowDecimalPoint | NumberStyles.AllowExponent;

    public static bool TryGet(ref Utf8JsonReader reader, long min, long max, out long value)
    {
        value = 0;
        if (reader.TokenType != JsonTokenType.Number)
            return false;
        // .NET's integer parsing takes a decimal point and an exponent only when the digits they leave after the
        // point are zeros; the plain integer, by far the usual form, takes the reader's own fast path.
        bool integral = reader.TryGetInt64(out value) || long.TryParse(
            reader.HasValueSequence ? reader.ValueSequence.ToArray() : reader.ValueSpan, Integral, CultureInfo.InvariantCulture, out value);
        return integral && value >= min && value <= max;
    }
}

/// <summary>Every <c>int</c> of the wire types (registered for the whole <see cref="ApiJsonContext"/>): read by
/// <see cref="JsonIntegers"/>; anything else is the serializer's usual "must be an integer" naming the field.</summary>
public sealed class IntegralInt32Converter : JsonConverter<int>
{
    public override int Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        JsonIntegers.TryGet(ref reader, int.MinValue, int.MaxValue, out long value) ? (int)value : throw new JsonException();

    public override void Write(Utf8JsonWriter writer, int value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
}

/// <summary>Every <c>long</c> of the wire types, as <see cref="IntegralInt32Converter"/>.</summary>
public sealed class IntegralInt64Converter : JsonConverter<long>
{
    public override long Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options) =>
        JsonIntegers.TryGet(ref reader, long.MinValue, long.MaxValue, out long value) ? value : throw new JsonException();

    public override void Write(Utf8JsonWriter writer, long value, JsonSerializerOptions options) => writer.WriteNumberValue(value);
}

// Converters for the fields OpenAI lets take more than one shape. They read with Utf8JsonReader
// only (no reflection), so they are AOT-safe. A JsonException thrown here carries our message;
// the serializer adds the JSON path, which becomes the error's "param". A wrong shape is
// invalid_type; a shape that is right but a value this server refuses says so (JsonValueException).

/// <summary>A value of the right JSON type that is refused, with the error code it gets (the serializer rethrows
/// this instance with the path added, so the code reaches <see cref="JsonErrors"/>).</summary>
public sealed class JsonValueException(string message, string code) : JsonException(message)
{
    public string Code { get; } = code;
}

/// <summary>"stop": null, "text", or ["a", "b"].</summary>
public sealed class StopSequencesConverter : JsonConverter<StopSequences>
{
    public override StopSequences? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.String:
                return new StopSequences([reader.GetString()!]);
            case JsonTokenType.StartArray:
                var values = new List<string>();
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.String)
                        throw new JsonException("must be a string or an array of strings");
                    values.Add(reader.GetString()!);
                }
                return new StopSequences(values);
            default:
                throw new JsonException("must be a string or an array of strings");
        }
    }

    public override void Write(Utf8JsonWriter writer, StopSequences value, JsonSerializerOptions options)
    {
        writer.WriteStartArray();
        foreach (string s in value.Values)
            writer.WriteStringValue(s);
        writer.WriteEndArray();
    }
}

/// <summary>"tool_choice": null, "none" / "auto" / "required" / any other word (the handler judges it), or an object (a named function; its fields are not read).</summary>
public sealed class ToolChoiceConverter : JsonConverter<ToolChoice>
{
    public override ToolChoice? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.String:
                return new ToolChoice(reader.GetString(), Function: false);
            case JsonTokenType.StartObject:
                reader.Skip();
                return new ToolChoice(null, Function: true);
            default:
                throw new JsonException("must be \"none\", \"auto\", \"required\" or {\"type\":\"function\",...}");
        }
    }

    public override void Write(Utf8JsonWriter writer, ToolChoice value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Mode);
}

/// <summary>Message "content": a string, null, or an array of {"type":"text","text":...} parts, joined with a line
/// break between them as llama.cpp's server and vLLM do (so separate blocks do not run into one word).</summary>
public sealed class MessageContentConverter : JsonConverter<MessageContent>
{
    public override MessageContent? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.String:
                return new MessageContent(reader.GetString()!);
            case JsonTokenType.StartArray:
                var text = new System.Text.StringBuilder();
                int parts = 0;
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType != JsonTokenType.StartObject)
                        throw new JsonException("content parts must be objects like {\"type\":\"text\",\"text\":\"...\"}");
                    if (parts++ > 0) text.Append('\n');
                    text.Append(ReadTextPart(ref reader));
                }
                return new MessageContent(text.ToString());
            default:
                throw new JsonException("must be a string or an array of content parts");
        }
    }

    private static string ReadTextPart(ref Utf8JsonReader reader)
    {
        string? type = null, text = null;
        while (reader.Read() && reader.TokenType != JsonTokenType.EndObject)
        {
            string name = reader.GetString()!;
            reader.Read();
            if (name == "type" || name == "text")
            {
                if (reader.TokenType != JsonTokenType.String)
                    throw new JsonException($"content part field '{name}' must be a string");
                if (name == "type") type = reader.GetString(); else text = reader.GetString();
            }
            else
            {
                reader.Skip();
            }
        }
        if (type != "text")
            throw new JsonValueException($"content part type '{type ?? "(missing)"}' is not supported; this model reads text parts only", "invalid_value");
        return text ?? throw new JsonValueException("a text content part needs a 'text' string", "missing_required_parameter");
    }

    public override void Write(Utf8JsonWriter writer, MessageContent value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Text);
}

/// <summary>Completions "prompt": "text", ["text"] (exactly one), or [token ids].</summary>
public sealed class PromptConverter : JsonConverter<PromptInput>
{
    public override PromptInput? Read(ref Utf8JsonReader reader, Type typeToConvert, JsonSerializerOptions options)
    {
        switch (reader.TokenType)
        {
            case JsonTokenType.Null:
                return null;
            case JsonTokenType.String:
                return new PromptInput(reader.GetString(), null);
            case JsonTokenType.StartArray:
                var strings = new List<string>();
                var tokens = new List<int>();
                int tokenLists = 0, looseIds = 0;   // [[ids]]: OpenAI's list of token-id prompts, of which one is supported
                while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                {
                    if (reader.TokenType == JsonTokenType.String)
                        strings.Add(reader.GetString()!);
                    else if (reader.TokenType == JsonTokenType.StartArray)
                    {
                        tokenLists++;
                        while (reader.Read() && reader.TokenType != JsonTokenType.EndArray)
                            tokens.Add(TokenId(ref reader));
                    }
                    else
                    {
                        tokens.Add(TokenId(ref reader));
                        looseIds++;
                    }
                }
                if (tokenLists > 0 && looseIds > 0)
                    throw new JsonException(Shapes);
                if (strings.Count > 0 && tokens.Count > 0)
                    throw new JsonException("must not mix strings and token ids");
                if (strings.Count + tokenLists > 1)
                    throw new JsonValueException("only one prompt per request is supported (n = 1)", "invalid_value");
                return strings.Count == 1 ? new PromptInput(strings[0], null) : new PromptInput(null, tokens);
            default:
                throw new JsonException(Shapes);
        }
    }

    private const string Shapes = "must be a string, an array of token ids, or an array of one string or one array of token ids";

    private static int TokenId(ref Utf8JsonReader reader)
    {
        if (JsonIntegers.TryGet(ref reader, int.MinValue, int.MaxValue, out long id))
            return (int)id; // the handler checks the range against the vocabulary
        if (reader.TokenType == JsonTokenType.Number)
            throw new JsonException($"token ids must be integers in the vocabulary; got {Encoding.UTF8.GetString(reader.ValueSpan)}");
        throw new JsonException(Shapes);
    }

    public override void Write(Utf8JsonWriter writer, PromptInput value, JsonSerializerOptions options) =>
        writer.WriteStringValue(value.Text);
}
