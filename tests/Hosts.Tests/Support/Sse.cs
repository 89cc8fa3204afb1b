using System.Text;
using System.Text.Json;

namespace BitNet.Hosts.Tests.Support;

/// <summary>Reads an SSE body: the JSON of every "data:" frame, and whether it ended with [DONE].</summary>
internal static class Sse
{
    public static (List<JsonElement> Frames, bool Done) Parse(string body)
    {
        var frames = new List<JsonElement>();
        bool done = false;
        foreach (string block in body.Split("\n\n", StringSplitOptions.RemoveEmptyEntries))
        {
            Assert.StartsWith("data: ", block);
            string data = block["data: ".Length..];
            if (data == "[DONE]")
            {
                done = true;
                continue;
            }
            Assert.False(done, "a frame came after [DONE]");
            frames.Add(JsonDocument.Parse(data).RootElement.Clone());
        }
        return (frames, done);
    }

    /// <summary>A stream that may open with SSE comments (what a request waiting in the queue receives): how many there
    /// are, then <see cref="Parse"/> of the rest, where no comment may come.</summary>
    public static (int Comments, List<JsonElement> Frames, bool Done) ParseAfterComments(string body)
    {
        int comments = 0;
        while (body.StartsWith(':'))
        {
            int end = body.IndexOf("\n\n", StringComparison.Ordinal);
            Assert.True(end > 0, "a comment without the blank line that ends its block");
            body = body[(end + 2)..];
            comments++;
        }
        var (frames, done) = Parse(body);
        return (comments, frames, done);
    }

    /// <summary>The concatenated chat deltas of a chat.completion.chunk stream.</summary>
    public static string ChatText(IEnumerable<JsonElement> frames)
    {
        var text = new StringBuilder();
        foreach (JsonElement frame in frames)
        {
            foreach (JsonElement choice in frame.GetProperty("choices").EnumerateArray())
            {
                if (choice.GetProperty("delta").TryGetProperty("content", out JsonElement content) && content.ValueKind == JsonValueKind.String)
                    text.Append(content.GetString());
            }
        }
        return text.ToString();
    }

    public static StringContent Json(string json) => new(json, Encoding.UTF8, "application/json");

    /// <summary>Reads a streamed response line by line until <paramref name="count"/> "data:" frames have arrived
    /// (or the stream ends); returns how many did. The caller then disposes the response: the client leaves.</summary>
    public static async Task<int> ReadDataFramesAsync(HttpResponseMessage response, int count, CancellationToken cancellationToken)
    {
        using var reader = new StreamReader(await response.Content.ReadAsStreamAsync(cancellationToken));
        int frames = 0;
        while (frames < count && await reader.ReadLineAsync(cancellationToken) is { } line)
        {
            if (line.StartsWith("data: ", StringComparison.Ordinal))
                frames++;
        }
        return frames;
    }
}
