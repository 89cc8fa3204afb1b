using System.CommandLine;
using System.Diagnostics;
using System.Text.Json;
using BitNet.Cli.Commands;
using BitNet.Cli.Cost;
using BitNet.Cli.Tests.Errors;
using BitNet.Cli.Tests.Hub;
using BitNet.Inference.Api;
using BitNet.Inference.Hub;

namespace BitNet.Cli.Tests.Cost;

public sealed class BenchCostCommandTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly FakeOpenAiServer _server = new();
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();
    private DateTimeOffset _now = new(2026, 11, 23, 3, 0, 0, TimeSpan.Zero);

    public void Dispose()
    {
        _server.Dispose();
        _temp.Dispose();
    }

    private Task<int> Run(params string[] args) => RunAt(_server.BaseUrl, args);

    private Task<int> RunAt(string url, params string[] args)
    {
        var root = new RootCommand { BenchCostCommand.Create(_out, _err, () => _now) };
        return root.Parse(["bench-cost", "--url", url, "--results", _temp.Path, .. args])
            .InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);
    }

    private JsonElement RawResult(string runId) =>
        JsonDocument.Parse(File.ReadAllText(_temp.Combine("raw", runId + ".json"))).RootElement;

    [Fact]
    public async Task Measures_a_streaming_endpoint_and_writes_raw_json_and_a_report_with_a_chart()
    {
        _server.TokensPerReply = 8;
        _server.MetricsPeakBytes = 1_400_000_000;
        int exit = await Run("--hardware", "azure-ep1", "--requests", "6", "--concurrency", "3", "--max-tokens", "8", "--warmup", "2");
        Assert.True(exit == 0, _err.ToString());

        var raw = RawResult("20261123-030000-azure-ep1");
        var results = raw.GetProperty("results");
        Assert.Equal("fake-bitnet", raw.GetProperty("model").GetString());
        Assert.Equal("azure-ep1", raw.GetProperty("hardware").GetString());
        Assert.Equal(0.205, raw.GetProperty("hourlyUsd").GetDouble());
        Assert.Equal(6, results.GetProperty("requests").GetInt32());
        Assert.Equal(0, results.GetProperty("errors").GetInt32());
        Assert.Equal(48, results.GetProperty("totalTokens").GetInt64());
        Assert.InRange(results.GetProperty("ttftP50Ms").GetDouble(), 25, 5000);
        Assert.True(results.GetProperty("latencyP99Ms").GetDouble() >= results.GetProperty("latencyP50Ms").GetDouble());
        Assert.Equal(1_400_000_000, results.GetProperty("peakMemoryBytes").GetInt64());
        double tps = results.GetProperty("tokensPerSecond").GetDouble();
        Assert.True(tps > 0);
        var cost = raw.GetProperty("cost").EnumerateArray().ToList();
        Assert.Equal([1.0, 0.7, 0.5], cost.Select(c => c.GetProperty("utilisation").GetDouble()));
        double full = cost[0].GetProperty("usdPerMillionTokens").GetDouble();
        AssertClose(0.205 / (tps * 3600) * 1e6, full);          // stored values are rounded, so compare relatively
        AssertClose(full / 0.7, cost[1].GetProperty("usdPerMillionTokens").GetDouble());
        AssertClose(full * 2, cost[2].GetProperty("usdPerMillionTokens").GetDouble());

        Assert.Equal(2 + 6, _server.Bodies.Count); // warm-up requests are sent but not measured
        Assert.All(_server.Bodies, b => Assert.Contains("\"stream\":true", b));
        Assert.InRange(_server.MaxConcurrentSeen, 2, 3);

        string report = File.ReadAllText(_temp.Combine("reports", "20261123-030000-azure-ep1.md"));
        Assert.Contains("azure-ep1", report);
        Assert.Contains("![$ per 1M tokens](20261123-030000-azure-ep1.svg)", report);
        Assert.Contains("<svg", File.ReadAllText(_temp.Combine("reports", "20261123-030000-azure-ep1.svg")));
        Assert.Contains("tokens/s", _out.ToString());
    }

    [Fact]
    public async Task A_sweep_runs_each_concurrency_level_and_reports_them_side_by_side()
    {
        _server.TokensPerReply = 4;
        int exit = await Run("--hardware", "local", "--price-per-hour", "0.2", "--requests", "3", "--warmup", "1", "--max-tokens", "4", "--sweep", "4,1,2");
        Assert.True(exit == 0, _err.ToString());

        foreach (int level in new[] { 1, 2, 4 })
        {
            var results = RawResult($"20261123-030000-local-c{level}").GetProperty("results");
            Assert.Equal(level, results.GetProperty("concurrency").GetInt32());
            Assert.Equal(Math.Max(3, 2 * level), results.GetProperty("requests").GetInt32());
            Assert.Equal(0, results.GetProperty("errors").GetInt32());
        }
        Assert.Equal(1 + 3 + 4 + 8, _server.Bodies.Count);   // one warm-up before the first level only
        Assert.InRange(_server.MaxConcurrentSeen, 3, 4);

        string sweep = File.ReadAllText(_temp.Combine("reports", "20261123-030000-local-sweep.md"));
        Assert.Contains("# Concurrency sweep on local", sweep);
        Assert.Contains("![tokens/s and $ per 1M tokens by concurrency](20261123-030000-local-sweep.svg)", sweep);
        var rows = sweep.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\| [0-9]+ \|")).ToList();
        Assert.Equal(["1", "2", "4"], rows.Select(r => r.Split('|')[1].Trim()));
        Assert.StartsWith("| 1 | ", rows[0]);
        Assert.Contains("| 1.00× |", rows[0]);
        string svg = File.ReadAllText(_temp.Combine("reports", "20261123-030000-local-sweep.svg"));
        Assert.Contains("concurrency 4", svg);
        Assert.Contains("sweep:", _out.ToString());
    }

    [Fact]
    public async Task A_sweep_with_a_level_out_of_range_is_refused()
    {
        Assert.Equal(1, await Run("--hardware", "local", "--price-per-hour", "0.2", "--sweep", "1,0"));
        Assert.Contains("--sweep", _err.ToString());
        Assert.Empty(_server.Bodies);
    }

    [Fact]
    public async Task Later_reports_compare_every_run_in_results_raw()
    {
        Assert.Equal(0, await Run("--hardware", "local", "--price-per-hour", "0.1", "--requests", "2", "--warmup", "0"));
        _now = _now.AddMinutes(5);
        Assert.Equal(0, await Run("--hardware", "lambda-arm64-2048", "--requests", "2", "--warmup", "0", "--endpoint", "chat"));

        string report = File.ReadAllText(_temp.Combine("reports", "20261123-030500-lambda-arm64-2048.md"));
        Assert.Contains("| 20261123-030000-local | local |", report);
        Assert.Contains("| 20261123-030500-lambda-arm64-2048 | lambda-arm64-2048 |", report);
        var lambdaCost = RawResult("20261123-030500-lambda-arm64-2048").GetProperty("cost").EnumerateArray().Select(c => c.GetProperty("usdPerMillionTokens").GetDouble()).ToList();
        Assert.All(lambdaCost, c => Assert.Equal(lambdaCost[0], c)); // pay-per-use: independent of utilisation
        Assert.Contains(_server.Bodies, b => b.Contains("\"messages\""));
    }

    [Fact]
    public async Task Without_a_memory_source_peak_memory_is_reported_as_not_available()
    {
        Assert.Equal(0, await Run("--hardware", "local", "--requests", "1", "--warmup", "0"));
        var results = RawResult("20261123-030000-local").GetProperty("results");
        Assert.Equal(JsonValueKind.Null, results.GetProperty("peakMemoryBytes").ValueKind);
        Assert.Equal("n/a", results.GetProperty("peakMemorySource").GetString());
    }

    [Fact]
    public async Task Token_count_falls_back_to_text_chunks_when_the_server_sends_no_usage()
    {
        _server.SendUsage = false;
        _server.TokensPerReply = 4;
        Assert.Equal(0, await Run("--hardware", "local", "--requests", "2", "--warmup", "0"));
        Assert.Equal(8, RawResult("20261123-030000-local").GetProperty("results").GetProperty("totalTokens").GetInt64());
    }

    [Fact]
    public async Task Partial_failures_are_counted_and_exit_3()
    {
        _server.FailEveryNth = 2;
        Assert.Equal(3, await Run("--hardware", "local", "--requests", "4", "--warmup", "0"));
        Assert.Equal(2, RawResult("20261123-030000-local").GetProperty("results").GetProperty("errors").GetInt32());
    }

    [Fact]
    public async Task Bad_arguments_and_unreachable_servers_are_clear_errors()
    {
        Assert.Equal(1, await Run("--hardware", "nonesuch"));
        Assert.Contains("unknown hardware 'nonesuch'", _err.ToString());
        Assert.Equal(1, await Run("--hardware", "local", "--requests", "0"));
        Assert.Contains("--requests", _err.ToString());
        var root = new RootCommand { BenchCostCommand.Create(_out, _err, () => _now) };
        int exit = await root.Parse(["bench-cost", "--url", $"http://127.0.0.1:{FakeHubServer.FreePort()}", "--hardware", "local", "--results", _temp.Path])
            .InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(1, exit);
        Assert.Contains("warm-up request failed", _err.ToString());
    }

    [Theory]
    [InlineData("plain", "every request failed; first error: HTTP 200 (application/json) without completion events: {\"choices\":[{\"text\":\"hi\"}]}")]
    [InlineData("array", "every request failed; first error: a stream event is not a JSON object: [1,2]")]
    public async Task An_answer_that_is_not_a_completion_stream_fails_the_requests_instead_of_pricing_nothing(string kind, string message)
    {
        if (kind == "plain") _server.PlainReply = "{\"choices\":[{\"text\":\"hi\"}]}";
        else _server.RawEvent = "[1,2]";
        Assert.Equal(1, await Run("--hardware", "local", "--requests", "2", "--warmup", "0"));
        Assert.Equal($"error: {message}", _err.ToString().Trim().Split('\n')[^1]);
        Assert.False(Directory.Exists(_temp.Combine("raw")) && Directory.EnumerateFiles(_temp.Combine("raw")).Any());
    }

    [Fact]
    public async Task An_error_event_after_the_200_fails_the_request_instead_of_pricing_no_tokens()
    {
        const string error = """{"error":{"message":"the request timed out waiting for the model; retry later","type":"unavailable_error","param":null,"code":"queue_timeout"}}""";
        _server.RawEvent = error;
        Assert.Equal(1, await Run("--hardware", "local", "--requests", "2", "--warmup", "0"));
        Assert.Equal($"error: every request failed; first error: the stream ended with an error event: {error}", _err.ToString().Trim().Split('\n')[^1]);
    }

    [Fact]
    public async Task A_servers_text_quoted_in_an_error_has_its_control_characters_escaped()
    {
        _server.PlainReply = "\u001b[2J\u0007<html>";
        Assert.Equal(1, await Run("--hardware", "local", "--requests", "1", "--warmup", "0"));
        Assert.EndsWith("without completion events: \\x1B[2J\\x07<html>", _err.ToString().Trim());
        Assert.DoesNotContain('\u001b', _err.ToString());
    }

    [Fact]
    public async Task A_server_whose_metrics_never_answer_is_measured_without_peak_memory_in_bounded_time()
    {
        _server.StallProbes = true;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        int exit = await Run("--hardware", "local", "--requests", "2", "--warmup", "0").WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.True(exit == 0, _err.ToString());
        Assert.InRange(clock.Elapsed.TotalSeconds, 0, 30);
        Assert.Equal("n/a", RawResult("20261123-030000-local").GetProperty("results").GetProperty("peakMemorySource").GetString());
    }

    [Theory]
    [InlineData("0")]
    [InlineData("2")]
    public async Task A_server_that_accepts_and_never_answers_stops_the_run_after_the_idle_timeout(string warmup)
    {
        using var silent = new StallingServer();
        int exit = await RunAt(silent.BaseUrl, "--hardware", "local", "--requests", "3", "--warmup", warmup, "--idle-timeout", "1.5")
            .WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(1, exit);
        Assert.Equal($"error: {silent.BaseUrl}v1/completions sent nothing for 1.5 s; stopped waiting (--idle-timeout sets how long a server may stay silent)",
            _err.ToString().Trim().Split('\n')[^1]);
        Assert.Equal(1, silent.Connections);   // no request is sent after the first that got no answer
        Assert.False(Directory.Exists(_temp.Combine("raw")) && Directory.EnumerateFiles(_temp.Combine("raw")).Any());
    }

    [Fact]
    public async Task A_stream_that_stops_sending_midway_stops_the_run_after_the_idle_timeout()
    {
        using var stalling = StallingServer.AnswerThenStall("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nConnection: close\r\n\r\n" +
            "data: {\"model\":\"fake\",\"choices\":[{\"index\":0,\"text\":\"t0\"}]}\n\n");
        int exit = await RunAt(stalling.BaseUrl, "--hardware", "local", "--requests", "2", "--warmup", "0", "--idle-timeout", "1")
            .WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(1, exit);
        Assert.Equal($"error: {stalling.BaseUrl}v1/completions sent nothing for 1 s; stopped waiting (--idle-timeout sets how long a server may stay silent)",
            _err.ToString().Trim().Split('\n')[^1]);
        Assert.Equal(1, stalling.Connections);
    }

    [Fact]
    public async Task A_stream_that_keeps_sending_is_measured_however_much_longer_than_the_idle_timeout_it_lasts()
    {
        _server.FirstTokenDelay = TimeSpan.FromMilliseconds(400);
        _server.TokenDelay = TimeSpan.FromMilliseconds(400);
        _server.TokensPerReply = 8;
        int exit = await Run("--hardware", "local", "--requests", "1", "--warmup", "0", "--max-tokens", "8", "--idle-timeout", "2");
        Assert.True(exit == 0, _err.ToString());
        var results = RawResult("20261123-030000-local").GetProperty("results");
        Assert.Equal(0, results.GetProperty("errors").GetInt32());
        Assert.True(results.GetProperty("latencyP50Ms").GetDouble() > 2000);   // longer than the idle timeout, in bytes sent more often
        Assert.Equal(8, results.GetProperty("totalTokens").GetInt64());
    }

    /// <summary>A whole streamed completion of <paramref name="tokens"/> one-token chunks and its usage, as one HTTP/1.1 response.</summary>
    private static string CompletionResponse(int tokens)
    {
        var body = new System.Text.StringBuilder();
        for (int i = 0; i < tokens; i++)
            body.Append("data: {\"model\":\"fake\",\"choices\":[{\"index\":0,\"text\":\"t").Append(i).Append(" \"}]}\n\n");
        body.Append("data: {\"model\":\"fake\",\"choices\":[],\"usage\":{\"completion_tokens\":").Append(tokens).Append("}}\n\ndata: [DONE]\n\n");
        return $"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: {body.Length}\r\n\r\n{body}";
    }

    private const string SweepReport = "20261123-030000-local-sweep.md", PartialSweepReport = "20261123-030000-local-sweep-partial.md";

    /// <summary>The sweep report's table rows (concurrency first), and the partial report's line naming the interrupted level.</summary>
    private static List<string> SweepRows(string report) =>
        [.. report.Split('\n').Where(l => System.Text.RegularExpressions.Regex.IsMatch(l, @"^\| [0-9]+ \|"))];

    /// <summary>Level 1 measured (2 requests), then a server that goes silent: the sweep of 1,2 is cut at level 2.</summary>
    [Fact]
    public async Task A_sweep_whose_server_goes_silent_reports_the_levels_it_measured_and_names_the_one_it_stopped_at()
    {
        using var server = StallingServer.AnswerThenStall(2, "/v1/completions", CompletionResponse(3));
        int exit = await RunAt(server.BaseUrl, "--hardware", "local", "--price-per-hour", "0.2", "--requests", "1", "--warmup", "0", "--max-tokens", "3",
            "--sweep", "1,2", "--idle-timeout", "1").WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

        Assert.Equal(1, exit);
        string silence = $"{server.BaseUrl}v1/completions sent nothing for 1 s; stopped waiting (--idle-timeout sets how long a server may stay silent)";
        Assert.Equal($"error: {silence}", _err.ToString().Trim().Split('\n')[^1]);   // the error comes last, after the report
        var level1 = RawResult("20261123-030000-local-c1").GetProperty("results");
        Assert.Equal(6, level1.GetProperty("totalTokens").GetInt64());
        Assert.False(File.Exists(_temp.Combine("raw", "20261123-030000-local-c2.json")));

        Assert.False(File.Exists(_temp.Combine("reports", SweepReport)));   // a partial sweep is never taken for a whole one
        string report = File.ReadAllText(_temp.Combine("reports", PartialSweepReport));
        Assert.Contains("# Concurrency sweep on local (partial)", report);
        Assert.Contains($"- **Partial:** concurrency 2 was interrupted: {silence}", report);
        string row = Assert.Single(SweepRows(report));
        Assert.StartsWith(string.Create(System.Globalization.CultureInfo.InvariantCulture, $"| 1 | {level1.GetProperty("tokensPerSecond").GetDouble():0.00} | 1.00× |"), row);
        Assert.Contains("concurrency 1", File.ReadAllText(_temp.Combine("reports", "20261123-030000-local-sweep-partial.svg")));

        string stdout = _out.ToString();
        Assert.Contains("local concurrency 1: ", stdout);
        Assert.Contains($"sweep:   {_temp.Combine("reports", PartialSweepReport)} (partial: concurrency 2 was interrupted)", stdout);
    }

    [Fact]
    public async Task A_sweep_cancelled_midway_reports_the_levels_it_measured_and_exits_130()
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        // The first request of level 2 gets no answer and cancels the command's token.
        using var server = StallingServer.AnswerThenStall(2, "/v1/completions", CompletionResponse(3), stalled: cancel.Cancel);
        var root = new RootCommand { BenchCostCommand.Create(_out, _err, () => _now) };
        int exit = await root.Parse(["bench-cost", "--url", server.BaseUrl, "--results", _temp.Path, "--hardware", "local", "--price-per-hour", "0.2",
                "--requests", "1", "--warmup", "0", "--max-tokens", "3", "--sweep", "1,2,4"])
            .InvokeAsync(cancellationToken: cancel.Token).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

        Assert.Equal(130, exit);
        Assert.Equal("error: the run was cancelled (Ctrl-C or a termination signal)", _err.ToString().Trim().Split('\n')[^1]);
        string report = File.ReadAllText(_temp.Combine("reports", PartialSweepReport));
        Assert.Contains("- **Partial:** concurrency 2 was interrupted: the run was cancelled (Ctrl-C or a termination signal). Not run: concurrency 4.", report);
        Assert.Equal(["1"], SweepRows(report).Select(r => r.Split('|')[1].Trim()));
    }

    /// <summary>
    /// SIGTERM, handled as Ctrl-C is (SIGINT itself may be ignored by a process started in the background,
    /// as a test run can be, so the test sends the signal that never is).
    /// </summary>
    [Fact]
    public async Task A_sweep_stopped_by_a_signal_reports_the_levels_it_measured_and_exits_130()
    {
        Assert.SkipWhen(OperatingSystem.IsWindows(), "sends SIGTERM with kill(1)");
        int pid = 0, signalled = 0;
        // Level 2 sends two requests: one signal only (a second one would end the process at once, as it should).
        using var server = StallingServer.AnswerThenStall(2, "/v1/completions", CompletionResponse(3), stalled: () =>
        {
            if (Interlocked.Exchange(ref signalled, 1) == 0)
                Process.Start("kill", ["-TERM", Volatile.Read(ref pid).ToString(System.Globalization.CultureInfo.InvariantCulture)])!.WaitForExit();
        });
        var (exit, stdout, stderr) = await CliProcess.RunAsync(null, process => Volatile.Write(ref pid, process.Id),
            "bench-cost", "--url", server.BaseUrl, "--results", _temp.Path, "--hardware", "local", "--price-per-hour", "0.2",
            "--requests", "1", "--warmup", "0", "--max-tokens", "3", "--sweep", "1,2,4");

        Assert.True(exit == 130, stderr);
        Assert.Equal("error: the run was cancelled (Ctrl-C or a termination signal)", stderr.Trim().Split('\n')[^1]);
        string report = Assert.Single(Directory.GetFiles(_temp.Combine("reports"), "*-local-sweep-partial.md"));
        Assert.Contains($"sweep:   {report} (partial: concurrency 2 was interrupted)", stdout);
        Assert.Contains("- **Partial:** concurrency 2 was interrupted: the run was cancelled (Ctrl-C or a termination signal). Not run: concurrency 4.",
            File.ReadAllText(report));
        Assert.Equal(["1"], SweepRows(File.ReadAllText(report)).Select(r => r.Split('|')[1].Trim()));
    }

    [Fact]
    public async Task A_sweep_whose_server_drops_every_connection_reports_the_levels_it_measured()
    {
        using var server = StallingServer.AnswerThenStall(2, "/v1/completions", CompletionResponse(3), close: true);
        int exit = await RunAt(server.BaseUrl, "--hardware", "local", "--price-per-hour", "0.2", "--requests", "1", "--warmup", "0", "--max-tokens", "3",
            "--sweep", "1,2").WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

        Assert.Equal(1, exit);
        string error = _err.ToString().Trim().Split('\n')[^1];
        Assert.StartsWith("error: every request failed; first error: ", error);
        string report = File.ReadAllText(_temp.Combine("reports", PartialSweepReport));
        Assert.Contains($"- **Partial:** concurrency 2 was interrupted: {error["error: ".Length..]}", report);
        Assert.Equal(["1"], SweepRows(report).Select(r => r.Split('|')[1].Trim()));
    }

    [Fact]
    public void The_default_idle_timeout_outlasts_the_longest_our_server_keeps_a_queued_request_silent()
    {
        // A server started without BITNET_REQUEST_TIMEOUT_SECONDS answers a queued request, or refuses it with 503, within this.
        TimeSpan serverDeadline = ApiOptions.FromEnvironment(new DictionaryEnvironment(new Dictionary<string, string?>(), "/")).RequestTimeout;
        Assert.True(new BenchSettings { Url = new Uri("http://127.0.0.1/") }.IdleTimeout > serverDeadline);
        Assert.True(TimeSpan.FromSeconds(CommandCatalog.Parse(["bench-cost", "--url", "http://x", "--hardware", "local"])
            .GetValue<double>("--idle-timeout")) > serverDeadline);
    }

    private static void AssertClose(double expected, double actual) =>
        Assert.InRange(actual, expected * 0.995 - 1e-4, expected * 1.005 + 1e-4);
}
