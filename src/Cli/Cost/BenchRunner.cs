using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using BitNet.Inference.Gguf;

namespace BitNet.Cli.Cost;

/// <summary>
/// Drives an OpenAI-compatible endpoint with streaming requests: warm-up first (not measured), then
/// <see cref="BenchSettings.Requests"/> requests over <see cref="BenchSettings.Concurrency"/> parallel
/// clients. Time to first token is the first SSE chunk carrying text; tokens are the usage the server
/// reports in its final chunk, else the number of text chunks (one token each on our server).
/// A server that sends nothing for <see cref="BenchSettings.IdleTimeout"/> (before its answer or within it)
/// stops the run with a <see cref="ServerSilentException"/>: every later request would wait as long.
/// </summary>
public sealed class BenchRunner(HttpClient http)
{
    public async Task<(IReadOnlyList<RequestSample> Samples, double WallSeconds, string? Model)> RunAsync(
        BenchSettings settings, IProgress<int>? completed, CancellationToken cancellationToken)
    {
        for (int i = 0; i < settings.Warmup; i++)
        {
            var warm = await SendAsync(settings, cancellationToken);
            if (warm.Sample.Error is { } error)
                throw new HttpRequestException($"warm-up request failed: {error}");
        }

        var samples = new RequestSample[settings.Requests];
        string? model = null;
        int next = -1, done = 0;
        ServerSilentException? silent = null;
        using var stop = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var clock = Stopwatch.StartNew();
        var workers = Enumerable.Range(0, Math.Min(settings.Concurrency, settings.Requests)).Select(_ => Task.Run(async () =>
        {
            int index;
            while ((index = Interlocked.Increment(ref next)) < settings.Requests)
            {
                RequestSample sample;
                string? seenModel;
                try
                {
                    (sample, seenModel) = await SendAsync(settings, stop.Token);
                }
                catch (ServerSilentException e)
                {
                    Interlocked.CompareExchange(ref silent, e, null);
                    await stop.CancelAsync();
                    return;
                }
                catch (OperationCanceledException) when (stop.IsCancellationRequested && !cancellationToken.IsCancellationRequested)
                {
                    return;   // another request found the server silent
                }
                samples[index] = sample;
                if (seenModel is not null)
                    Interlocked.CompareExchange(ref model, seenModel, null);
                completed?.Report(Interlocked.Increment(ref done));
            }
        }, cancellationToken));
        await Task.WhenAll(workers);
        if (silent is not null)
            throw silent;
        return (samples, clock.Elapsed.TotalSeconds, model);
    }

    private async Task<(RequestSample Sample, string? Model)> SendAsync(BenchSettings settings, CancellationToken cancellationToken)
    {
        bool chat = settings.Endpoint == "chat";
        var uri = new Uri(settings.Url, chat ? "v1/chat/completions" : "v1/completions");
        string prompt = JsonSerializer.Serialize(settings.Prompt, CostJsonStrings.Default.String);
        string input = chat ? "\"messages\":[{\"role\":\"user\",\"content\":" + prompt + "}]" : "\"prompt\":" + prompt;
        string body = "{" + input + ",\"max_tokens\":" + settings.MaxTokens.ToString(CultureInfo.InvariantCulture)
            + ",\"temperature\":0,\"stream\":true,\"stream_options\":{\"include_usage\":true}}";
        using var request = new HttpRequestMessage(HttpMethod.Post, uri) { Content = new StringContent(body, Encoding.UTF8, "application/json") };
        request.Headers.Accept.ParseAdd("text/event-stream");
        if (settings.ApiKey is not null)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", settings.ApiKey);

        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(settings.RequestTimeout);
        // Restarted by every read of the body (SilenceClockStream): the limit is on silence, not on the answer's length.
        using var silence = CancellationTokenSource.CreateLinkedTokenSource(timeout.Token);
        silence.CancelAfter(settings.IdleTimeout);
        long start = Stopwatch.GetTimestamp();
        double? ttft = null;
        int chunks = 0;
        int? usageTokens = null;
        string? model = null;
        try
        {
            using var response = await http.SendAsync(request, HttpCompletionOption.ResponseHeadersRead, silence.Token);
            silence.CancelAfter(settings.IdleTimeout);
            if (!response.IsSuccessStatusCode)
            {
                string text = await response.Content.ReadAsStringAsync(silence.Token);
                return (new RequestSample(Stopwatch.GetElapsedTime(start).TotalSeconds, null, 0,
                    $"HTTP {(int)response.StatusCode}: {Quote(text)}"), null);
            }
            using var reader = new StreamReader(new SilenceClockStream(await response.Content.ReadAsStreamAsync(silence.Token), silence, settings.IdleTimeout));
            string? line;
            int events = 0;
            var other = new StringBuilder();   // the start of what was not an event, to quote
            while ((line = await reader.ReadLineAsync(silence.Token)) is not null)
            {
                if (!line.StartsWith("data:", StringComparison.Ordinal))
                {
                    if (other.Length < 300 && line.Length > 0)
                        other.Append(other.Length > 0 ? " " : "").Append(line);
                    continue;
                }
                string data = line[5..].Trim();
                if (data == "[DONE]")
                    break;
                using var json = JsonDocument.Parse(data);
                var root = json.RootElement;
                if (root.ValueKind != JsonValueKind.Object)
                    return (new RequestSample(Stopwatch.GetElapsedTime(start).TotalSeconds, ttft, usageTokens ?? chunks,
                        $"a stream event is not a JSON object: {Quote(data)}"), model);
                // A failure after the 200 (a fault mid-stream; on our server also a queued stream's deadline) is an error event.
                if (root.TryGetProperty("error", out _))
                    return (new RequestSample(Stopwatch.GetElapsedTime(start).TotalSeconds, ttft, usageTokens ?? chunks,
                        $"the stream ended with an error event: {Quote(data)}"), model);
                events++;
                if (root.TryGetProperty("model", out var m) && m.ValueKind == JsonValueKind.String)
                    model ??= m.GetString();
                if (root.TryGetProperty("usage", out var usage) && usage.ValueKind == JsonValueKind.Object
                    && usage.TryGetProperty("completion_tokens", out var ct) && ct.TryGetInt32(out int n))
                    usageTokens = n;
                if (root.TryGetProperty("choices", out var choices) && choices.ValueKind == JsonValueKind.Array)
                {
                    foreach (var choice in choices.EnumerateArray())
                    {
                        string? text = chat
                            ? choice.TryGetProperty("delta", out var delta) && delta.TryGetProperty("content", out var c) && c.ValueKind == JsonValueKind.String ? c.GetString() : null
                            : choice.TryGetProperty("text", out var t) && t.ValueKind == JsonValueKind.String ? t.GetString() : null;
                        if (!string.IsNullOrEmpty(text))
                        {
                            ttft ??= Stopwatch.GetElapsedTime(start).TotalSeconds;
                            chunks++;
                        }
                    }
                }
            }
            if (events == 0)   // a 200 that is not a completion stream (an HTML page, a JSON reply ignoring "stream") measures nothing
                return (new RequestSample(Stopwatch.GetElapsedTime(start).TotalSeconds, null, 0,
                    $"HTTP {(int)response.StatusCode} ({response.Content.Headers.ContentType?.MediaType ?? "no content type"}) without completion events: {Quote(other.ToString())}"), model);
            return (new RequestSample(Stopwatch.GetElapsedTime(start).TotalSeconds, ttft, usageTokens ?? chunks, null), model);
        }
        catch (Exception e) when ((e is OperationCanceledException or IOException) && silence.IsCancellationRequested && !timeout.IsCancellationRequested)
        {
            throw new ServerSilentException(uri, settings.IdleTimeout);
        }
        catch (Exception e) when (e is HttpRequestException or IOException or JsonException
            || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
        {
            return (new RequestSample(Stopwatch.GetElapsedTime(start).TotalSeconds, ttft, usageTokens ?? chunks, e.Message), model);
        }
    }

    /// <summary>
    /// Peak memory of the server: a Prometheus gauge from /metrics, a field of /health, or — for a
    /// loopback URL with a known PID — VmHWM from /proc. Returns null and "n/a" when none is available.
    /// </summary>
    public async Task<(long? Bytes, string Source)> PeakMemoryAsync(BenchSettings settings, CancellationToken cancellationToken)
    {
        string[] gauges = ["process_peak_resident_memory_bytes", "bitnet_peak_resident_bytes", "process_resident_memory_bytes"];
        // Both probes together get ProbeTimeout: a server that never answers them costs that, not the run.
        using var probe = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        probe.CancelAfter(settings.ProbeTimeout);
        bool TimedOut(Exception e) => e is OperationCanceledException && !cancellationToken.IsCancellationRequested;
        try
        {
            using var metrics = await http.GetAsync(new Uri(settings.Url, "metrics"), probe.Token);
            if (metrics.IsSuccessStatusCode)
            {
                string text = await metrics.Content.ReadAsStringAsync(probe.Token);
                foreach (string gauge in gauges)
                    foreach (string line in text.Split('\n'))
                        if (line.StartsWith(gauge, StringComparison.Ordinal) && line.Length > gauge.Length && line[gauge.Length] is ' ' or '{'
                            && double.TryParse(line[(line.LastIndexOf(' ') + 1)..], NumberStyles.Float, CultureInfo.InvariantCulture, out double value))
                            return ((long)value, $"/metrics {gauge}");
            }
        }
        catch (Exception e) when (e is HttpRequestException || TimedOut(e)) { }

        try
        {
            using var health = await http.GetAsync(new Uri(settings.Url, "health"), probe.Token);
            if (health.IsSuccessStatusCode)
            {
                using var json = JsonDocument.Parse(await health.Content.ReadAsStringAsync(probe.Token));
                foreach (string field in new[] { "peak_resident_bytes", "peak_rss_bytes", "resident_bytes", "rss_bytes" })
                    if (json.RootElement.ValueKind == JsonValueKind.Object && json.RootElement.TryGetProperty(field, out var v) && v.TryGetInt64(out long bytes))
                        return (bytes, $"/health {field}");
            }
        }
        catch (Exception e) when (e is HttpRequestException or JsonException || TimedOut(e)) { }

        if (settings.Pid is { } pid && IsLoopback(settings.Url) && ReadVmHwm(pid) is { } hwm)
            return (hwm, $"/proc/{pid}/status VmHWM");
        return (null, "n/a");
    }

    internal static long? ReadVmHwm(int pid)
    {
        string status = $"/proc/{pid}/status";
        if (!File.Exists(status))
            return null;
        foreach (string line in File.ReadLines(status))
            if (line.StartsWith("VmHWM:", StringComparison.Ordinal)
                && long.TryParse(line[6..].Trim().Split(' ')[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out long kib))
                return kib * 1024;
        return null;
    }

    private static bool IsLoopback(Uri url) =>
        url.IsLoopback || (IPAddress.TryParse(url.Host, out var ip) && IPAddress.IsLoopback(ip));

    /// <summary>A server's own text in an error: its start, with control characters made visible (ESC must not drive the terminal).</summary>
    private static string Quote(string text) => PrintableText.Escape(text.Length <= 300 ? text : text[..300] + "...");
}

/// <summary>A response body each read of which first restarts the silence clock, so the limit holds between bytes.</summary>
internal sealed class SilenceClockStream(Stream inner, CancellationTokenSource silence, TimeSpan limit) : Stream
{
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

    public override int Read(byte[] buffer, int offset, int count)
    {
        silence.CancelAfter(limit);
        return inner.Read(buffer, offset, count);
    }

    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default)
    {
        silence.CancelAfter(limit);
        return inner.ReadAsync(buffer, cancellationToken);
    }

    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        ReadAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing)
            inner.Dispose();
        base.Dispose(disposing);
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class CostJsonStrings : System.Text.Json.Serialization.JsonSerializerContext;
