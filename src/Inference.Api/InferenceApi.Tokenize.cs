using System.Buffers;
using System.Text.Json;
using BitNet.Inference.Api.Json;
using BitNet.Inference.Generation;

namespace BitNet.Inference.Api;

// POST /tokenize and POST /detokenize: llama.cpp's server endpoints, for counting and inspecting tokens.
public sealed partial class InferenceApi
{
    /// <summary>
    /// {"content", "add_special", "parse_special", "with_pieces"} → {"tokens": [ids]} or, with pieces,
    /// {"tokens": [{"id", "piece"}]}, a piece being the token's text, or its bytes when they are not whole
    /// UTF-8 characters. Unlike llama.cpp, control-token text stays text unless parse_special is true.
    /// </summary>
    private ApiResponse Tokenize(ReadOnlyMemory<byte> body)
    {
        TokenizeRequest request = ParseBody(body, ApiJsonContext.Wire.TokenizeRequest);
        ITextGenerator generator = ReadyGenerator();
        string content = request.Content ?? throw ApiException.BadRequest("'content' is required: the text to tokenize", "content", "missing_required_parameter");
        IReadOnlyList<int> tokens = generator.Tokenize(content, addBos: request.AddSpecial == true, parseSpecial: request.ParseSpecial == true);

        var json = new ArrayBufferWriter<byte>();
        using (var writer = new Utf8JsonWriter(json, new JsonWriterOptions { Encoder = ApiJsonContext.Wire.Options.Encoder }))
        {
            writer.WriteStartObject();
            writer.WriteStartArray("tokens");
            foreach (int token in tokens)
            {
                if (request.WithPieces != true)
                {
                    writer.WriteNumberValue(token);
                    continue;
                }
                writer.WriteStartObject();
                writer.WriteNumber("id", token);
                byte[] piece = generator.TokenBytes(token);
                if (System.Text.Unicode.Utf8.IsValid(piece))
                    writer.WriteString("piece", piece);
                else
                {
                    writer.WriteStartArray("piece");
                    foreach (byte b in piece) writer.WriteNumberValue(b);
                    writer.WriteEndArray();
                }
                writer.WriteEndObject();
            }
            writer.WriteEndArray();
            writer.WriteEndObject();
        }
        return ApiResponse.Json(200, json.WrittenSpan.ToArray());
    }

    /// <summary>{"tokens": [ids]} → {"content": text}; control tokens read as their text (as llama.cpp's).</summary>
    private ApiResponse Detokenize(ReadOnlyMemory<byte> body)
    {
        DetokenizeRequest request = ParseBody(body, ApiJsonContext.Wire.DetokenizeRequest);
        ITextGenerator generator = ReadyGenerator();
        List<int> tokens = request.Tokens ?? throw ApiException.BadRequest("'tokens' is required: an array of token ids", "tokens", "missing_required_parameter");
        int vocab = generator.Model.VocabSize;
        for (int i = 0; i < tokens.Count; i++)
            if ((uint)tokens[i] >= (uint)vocab)
                throw ApiException.BadRequest($"token ids must be from 0 to {vocab - 1} (the vocabulary); got {tokens[i]}", $"tokens[{i}]", "invalid_value");
        // The engine joins the tokens' bytes before decoding, so a character split across tokens comes out whole.
        string content = generator.Detokenize(tokens, renderSpecial: true);
        return ApiResponse.Json(200, JsonSerializer.SerializeToUtf8Bytes(new DetokenizeResponse(content), ApiJsonContext.Wire.DetokenizeResponse));
    }
}
