using System.Net.Sockets;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.Http;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Logging;

namespace BitNet.Hosts.Tests;

/// <summary>
/// Mistakes in the HTTP exchange itself, sent over raw sockets to the real Kestrel host: a broken
/// chunked body, a body trickling in below Kestrel's minimum data rate, a body over the limit, a
/// client that hangs up mid-body. Each gets the OpenAI error body when an answer is possible, and one
/// log line; the captured log never holds a stack trace.
/// </summary>
public sealed class ClientFailureTests : IAsyncDisposable
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;
    private readonly CapturedLog _log = new();
    private readonly WebApplication _app;
    private readonly int _port;

    public ClientFailureTests()
    {
        var api = new InferenceApi(GeneratorProvider.Ready(new FakeTextGenerator()), new ApiOptions { MaxRequestBytes = 4096 });
        _app = HttpApiHost.Create(api, "http://127.0.0.1:0", logLevel: LogLevel.Information, logging: logging => logging.AddProvider(_log));
        _app.StartAsync(Ct).GetAwaiter().GetResult();
        _port = new Uri(_app.Urls.First()).Port;
    }

    public async ValueTask DisposeAsync()
    {
        await _app.StopAsync();
        await _app.DisposeAsync();
    }

    private static string Head(string transfer, string path = "/v1/completions") =>
        $"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\n{transfer}\r\n";

    /// <summary>Sends <paramref name="parts"/> (pausing <paramref name="pause"/> between them) while reading the
    /// answer; stops sending once the server has answered and closed.</summary>
    private async Task<string> ExchangeAsync(IEnumerable<string> parts, TimeSpan pause = default)
    {
        using var client = new TcpClient();
        await client.ConnectAsync("127.0.0.1", _port, Ct);
        NetworkStream stream = client.GetStream();
        Task<string> reading = ReadToEndAsync(stream);
        try
        {
            foreach (string part in parts)
            {
                if (reading.IsCompleted)
                    break;
                await stream.WriteAsync(Encoding.ASCII.GetBytes(part), Ct);
                if (pause > TimeSpan.Zero)
                    await Task.WhenAny(reading, Task.Delay(pause, Ct));
            }
        }
        catch (IOException)
        {
            // The server answered and closed while the client was still sending.
        }
        return await reading;
    }

    private static async Task<string> ReadToEndAsync(NetworkStream stream)
    {
        var answer = new MemoryStream();
        var buffer = new byte[4096];
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(Ct);
        timeout.CancelAfter(TimeSpan.FromSeconds(30));
        try
        {
            int read;
            while ((read = await stream.ReadAsync(buffer, timeout.Token)) > 0)
                answer.Write(buffer, 0, read);
        }
        catch (IOException)
        {
        }
        return Encoding.UTF8.GetString(answer.ToArray());
    }

    private static (int Status, JsonElement Error) Parse(string answer)
    {
        Assert.StartsWith("HTTP/1.1 ", answer);
        int status = int.Parse(answer.AsSpan(9, 3), provider: System.Globalization.CultureInfo.InvariantCulture);
        string body = answer[(answer.IndexOf("\r\n\r\n", StringComparison.Ordinal) + 4)..];
        if (answer.Contains("Transfer-Encoding: chunked", StringComparison.OrdinalIgnoreCase))
            body = string.Concat(body.Split("\r\n").Where((_, i) => i % 2 == 1));
        return (status, JsonDocument.Parse(body).RootElement.GetProperty("error").Clone());
    }

    private void AssertOneLinePerFailureAndNoStackTrace(int failures)
    {
        IReadOnlyList<string> entries = _log.Entries;
        string all = string.Join("\n---\n", entries);
        Assert.DoesNotContain("   at ", all);
        Assert.DoesNotContain("Exception", all);
        Assert.DoesNotContain("unhandled", all, StringComparison.OrdinalIgnoreCase);
        Assert.All(entries, entry => Assert.DoesNotContain('\n', entry));
        Assert.Equal(failures, entries.Count(e => e.Contains("refused", StringComparison.Ordinal) || e.Contains("abandoned", StringComparison.Ordinal)));
    }

    [Fact]
    public async Task A_malformed_chunked_body_gets_400_with_the_openai_error_body_and_one_log_line()
    {
        string answer = await ExchangeAsync([Head("Transfer-Encoding: chunked\r\n"), "5\r\n{\"pro\r\nZZZ-not-a-chunk-size\r\n\r\n"]);
        var (status, error) = Parse(answer);
        Assert.Equal(400, status);
        Assert.Equal("invalid_request_body", error.GetProperty("code").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()));
        AssertOneLinePerFailureAndNoStackTrace(1);
    }

    [Fact]
    public async Task A_refused_request_with_control_characters_in_its_path_still_logs_one_escaped_line()
    {
        string answer = await ExchangeAsync([Head("Transfer-Encoding: chunked\r\n", "/v1/completions%0Aforged%20line%1B[2J"), "zz\r\n\r\n"]);
        Assert.Equal(400, Parse(answer).Status);
        AssertOneLinePerFailureAndNoStackTrace(1);
        Assert.Contains(_log.Entries, e => e.Contains(@"\x0Aforged line\x1B[2J", StringComparison.Ordinal));
    }

    [Fact]
    public async Task A_body_arriving_too_slowly_gets_408_with_the_openai_error_body_and_one_log_line()
    {
        // Kestrel's minimum body rate is 240 bytes/s after a 5 s grace; one byte a second stays below it.
        string json = """{"prompt":"slow","max_tokens":1}""";
        IEnumerable<string> parts = new[] { Head($"Content-Length: {json.Length}\r\n") }.Concat(json.Select(c => c.ToString()));
        string answer = await ExchangeAsync(parts, pause: TimeSpan.FromSeconds(1));
        var (status, error) = Parse(answer);
        Assert.Equal(408, status);
        Assert.Equal("request_timeout", error.GetProperty("code").GetString());
        AssertOneLinePerFailureAndNoStackTrace(1);
    }

    [Fact]
    public async Task A_chunked_body_over_the_limit_gets_413_with_the_openai_error_body_and_one_log_line()
    {
        string chunk = new('x', 3000);
        string answer = await ExchangeAsync([Head("Transfer-Encoding: chunked\r\n"), $"{chunk.Length:x}\r\n{chunk}\r\n", $"{chunk.Length:x}\r\n{chunk}\r\n", "0\r\n\r\n"]);
        var (status, error) = Parse(answer);
        Assert.Equal(413, status);
        Assert.Equal("request_too_large", error.GetProperty("code").GetString());
        AssertOneLinePerFailureAndNoStackTrace(1);
    }

    [Fact]
    public async Task A_client_hanging_up_mid_body_leaves_one_log_line_and_the_server_serving()
    {
        using (var client = new TcpClient())
        {
            await client.ConnectAsync("127.0.0.1", _port, Ct);
            await client.GetStream().WriteAsync(Encoding.ASCII.GetBytes(Head("Content-Length: 1000\r\n") + "{\"prompt\":"), Ct);
            await Task.Delay(200, Ct);
            client.Client.LingerState = new LingerOption(true, 0); // reset, as a crashed client would
        }
        for (int i = 0; i < 200 && !_log.Entries.Any(e => e.Contains("abandoned", StringComparison.Ordinal)); i++)
            await Task.Delay(50, Ct);
        AssertOneLinePerFailureAndNoStackTrace(1);

        using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{_port}") };
        HttpResponseMessage ok = await http.PostAsync("/v1/completions", new StringContent("""{"prompt":"a","max_tokens":1}""", Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(200, (int)ok.StatusCode);
    }
}
