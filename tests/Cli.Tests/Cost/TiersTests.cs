using System.CommandLine;
using System.Text.Json;
using BitNet.Cli.Commands;
using BitNet.Cli.Cost;
using BitNet.Cli.Tests.Hub;

namespace BitNet.Cli.Tests.Cost;

public sealed class TiersTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>
    /// A stand-in for `bitnet generate`: checks the arguments it is given and prints a timings line
    /// where each token costs 40 ms divided by the thread count, after a 50 ms "model load".
    /// </summary>
    private string FakeBitnet()
    {
        string path = _temp.Combine("fake-bitnet.sh");
        File.WriteAllText(path, """
            #!/bin/bash
            [ "$1" = "generate" ] || { echo "expected generate, got $1" >&2; exit 9; }
            shift
            while [ $# -gt 0 ]; do
              case "$1" in
                -n) n=$2; shift 2;; -t) t=$2; shift 2;; -m) m=$2; shift 2;;
                --ignore-eos|--no-display-prompt) shift;; *) shift 2;;
              esac
            done
            [ -f "$m" ] || { echo "error: model file '$m' not found" >&2; exit 1; }
            sleep 0.05
            echo "generated text"
            echo "prompt eval: 6 tokens in $((20 / t)) ms (x tok/s); generation: $n tokens in $((n * 40 / t)) ms (y tok/s); first token after 5 ms; finish: length" >&2
            """.Replace("\r", ""));
        if (!OperatingSystem.IsWindows()) // the stand-in is a bash script; these tests run on Linux and macOS
            File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
        return path;
    }

    private Task<int> Run(params string[] args) =>
        new RootCommand { TiersCommand.Create(_out, _err, () => new DateTimeOffset(2026, 11, 23, 4, 0, 0, TimeSpan.Zero)) }
            .Parse(["tiers", .. args]).InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);

    [Fact]
    public async Task Local_emulation_runs_a_child_per_run_with_the_tiers_cores_and_prices_each_tier()
    {
        string model = _temp.Combine("model.gguf");
        File.WriteAllText(model, "x");
        int exit = await Run("--bitnet", FakeBitnet(), "-m", model, "--cores", "2", "--tiers", "2048,4096,10240",
            "--target-seconds", "3", "--results", _temp.Path);
        Assert.True(exit == 0, _err.ToString());

        var report = JsonDocument.Parse(File.ReadAllText(_temp.Combine("raw", "tiers-20261123-040000.json"))).RootElement;
        var rows = report.GetProperty("rows").EnumerateArray().ToList();
        Assert.Equal([1, 2, 2], rows.Select(r => r.GetProperty("threads").GetInt32()));
        // 2048 MB, 1 thread: n=100 → 20 ms prompt + 4000 ms generation.
        var warm2048 = rows[0].GetProperty("warm").EnumerateArray().ToList();
        Assert.Equal([10, 50, 100], warm2048.Select(w => w.GetProperty("nPredict").GetInt32()));
        Assert.Equal(4.02, warm2048[2].GetProperty("seconds").GetDouble(), 3);
        Assert.Equal(100, warm2048[2].GetProperty("tokens").GetInt32());
        Assert.Equal(2.01, rows[1].GetProperty("warm")[2].GetProperty("seconds").GetDouble(), 3);
        Assert.True(rows[0].GetProperty("cold").GetProperty("seconds").GetDouble() >= 0.05); // wall time of a whole child
        double perInvocation = rows[0].GetProperty("usdPerInvocation").GetDouble();
        Assert.Equal(4.02 * 2 * 0.0000133334 + 0.0000002, perInvocation, 9);
        Assert.Equal(perInvocation / 100 * 1e6, rows[0].GetProperty("usdPerMillionTokens").GetDouble(), 6);

        // 2048 MB misses 3 s; 4096 MB (2.01 s) is cheaper than 10240 MB (same speed here, more GB).
        Assert.Equal(4096, report.GetProperty("recommendedMemoryMb").GetInt32());
        Assert.Contains("| 2048 MB | 1.16 | 1 |", _out.ToString());
        Assert.Contains("recommendation: 4096 MB", _out.ToString());
        Assert.True(File.Exists(_temp.Combine("reports", "tiers-20261123-040000.md")));
    }

    [Fact]
    public async Task Tiers_too_small_for_the_model_are_skipped_with_the_reason()
    {
        // A sparse 3.9 GB file, the size of the 8B model: 2048 and 4096 MB cannot hold it (4120 MB needed), 10240 MB can.
        string model = _temp.Combine("big.gguf");
        using (var file = File.Create(model)) file.SetLength(3_900_000_000);
        int exit = await Run("--bitnet", FakeBitnet(), "-m", model, "--cores", "2", "--tiers", "2048,4096,10240", "--n-predict", "10",
            "--results", _temp.Path);
        Assert.True(exit == 0, _err.ToString());
        Assert.Contains("tiers: 2048 MB skipped: it cannot hold the model (3.90 GB file", _err.ToString());
        Assert.Contains("tiers: 4096 MB skipped", _err.ToString());
        var rows = JsonDocument.Parse(File.ReadAllText(_temp.Combine("raw", "tiers-20261123-040000.json"))).RootElement.GetProperty("rows");
        Assert.Equal([10240], rows.EnumerateArray().Select(r => r.GetProperty("memoryMb").GetInt32()));

        exit = await Run("--bitnet", FakeBitnet(), "-m", model, "--tiers", "1024,2048");
        Assert.Equal(1, exit);
        Assert.Contains("error: no tier in --tiers can hold the model: it needs at least 4120 MB", _err.ToString());
    }

    [Fact]
    public async Task Child_failures_and_bad_options_are_reported()
    {
        Assert.Equal(1, await Run("--bitnet", FakeBitnet(), "-m", _temp.Combine("missing.gguf"), "--tiers", "2048"));
        Assert.Contains("not found", _err.ToString());
        Assert.Equal(1, await Run("--tiers", "64", "-m", "x"));
        Assert.Contains("128-10240", _err.ToString());
        Assert.Equal(1, await Run("--url-per-tier", "big=http://x"));
        Assert.Contains("2048=https://", _err.ToString());
    }

    [Theory]
    [InlineData("2048=", "--url-per-tier '2048=': '' is not an http(s) URL")]
    [InlineData("2048=ftp://example.com/", "--url-per-tier '2048=ftp://example.com/': 'ftp://example.com/' is not an http(s) URL")]
    [InlineData("64=http://127.0.0.1:1", "--url-per-tier '64=http://127.0.0.1:1': 64 MB is outside Lambda's 128-10240 MB")]
    public async Task A_tier_url_that_is_not_http_or_a_tier_outside_lambdas_range_is_one_line(string pair, string message)
    {
        Assert.Equal(1, await Run("--url-per-tier", pair, "--n-predict", "1"));
        Assert.Equal($"error: {message}", _err.ToString().Trim());
    }

    [Fact]
    public async Task A_tier_url_answering_without_a_completion_stream_is_an_error_not_zero_tokens()
    {
        using var server = new FakeOpenAiServer { PlainReply = "<html>hello</html>" };
        Assert.Equal(1, await Run("--url-per-tier", $"2048={server.BaseUrl}", "--n-predict", "1"));
        Assert.EndsWith($"error: {server.BaseUrl}: HTTP 200 (application/json) without completion events: <html>hello</html>", _err.ToString().Trim());
    }

    [Fact]
    public async Task A_tier_url_that_accepts_and_never_answers_is_an_error_after_the_idle_timeout()
    {
        using var silent = new StallingServer();
        int exit = await Run("--url-per-tier", $"2048={silent.BaseUrl}", "--n-predict", "1", "--idle-timeout", "1")
            .WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(1, exit);
        Assert.Equal($"error: {silent.BaseUrl}v1/completions sent nothing for 1 s; stopped waiting (--idle-timeout sets how long a server may stay silent)",
            _err.ToString().Trim().Split('\n')[^1]);
        Assert.Equal(1, silent.Connections);
    }

    [Fact]
    public async Task Deployed_tiers_cut_short_by_a_silent_tier_print_and_write_the_tiers_measured_before_it()
    {
        using var small = new FakeOpenAiServer();
        using var silent = new StallingServer();
        using var large = new FakeOpenAiServer();
        int exit = await Run("--url-per-tier", $"2048={small.BaseUrl}", "--url-per-tier", $"4096={silent.BaseUrl}", "--url-per-tier", $"10240={large.BaseUrl}",
            "--n-predict", "10", "--idle-timeout", "1", "--results", _temp.Path).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

        Assert.Equal(1, exit);
        string silence = $"{silent.BaseUrl}v1/completions sent nothing for 1 s; stopped waiting (--idle-timeout sets how long a server may stay silent)";
        Assert.Equal($"error: {silence}", _err.ToString().Trim().Split('\n')[^1]);
        Assert.Empty(large.Bodies);   // nothing is sent after the tier that went silent

        string stdout = _out.ToString();
        Assert.Contains("Lambda arm64 tiers, deployed function URLs (partial):", stdout);
        Assert.Contains("| 2048 MB |", stdout);
        Assert.DoesNotContain("| 4096 MB |", stdout);
        Assert.Contains($"partial: 4096 MB was interrupted: {silence}; not measured: 10240 MB", stdout);
        Assert.Contains("recommendation among the measured tiers: cheapest per invocation: 2048 MB", stdout);

        var report = JsonDocument.Parse(File.ReadAllText(_temp.Combine("raw", "tiers-20261123-040000-partial.json"))).RootElement;
        Assert.Equal([2048], report.GetProperty("rows").EnumerateArray().Select(r => r.GetProperty("memoryMb").GetInt32()));
        var interrupted = report.GetProperty("interrupted");
        Assert.Equal(4096, interrupted.GetProperty("memoryMb").GetInt32());
        Assert.Equal(silence, interrupted.GetProperty("reason").GetString());
        Assert.Equal([10240], interrupted.GetProperty("notMeasured").EnumerateArray().Select(m => m.GetInt32()));
        string markdown = File.ReadAllText(_temp.Combine("reports", "tiers-20261123-040000-partial.md"));
        Assert.Contains($"**Partial:** 4096 MB was interrupted: {silence}. Not measured: 10240 MB.", markdown);
        Assert.Contains("| 2048 MB |", markdown);
        Assert.Contains($"results: {_temp.Combine("raw", "tiers-20261123-040000-partial.json")}", stdout);
    }

    [Fact]
    public async Task Deployed_tiers_cancelled_midway_print_the_tiers_measured_and_exit_130()
    {
        using var cancel = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        using var small = new FakeOpenAiServer();
        using var cancelling = new StallingServer(_ =>
        {
            cancel.Cancel();   // as Ctrl-C does, while the second tier's first request waits
            return null;
        });
        int exit = await new RootCommand { TiersCommand.Create(_out, _err, () => new DateTimeOffset(2026, 11, 23, 4, 0, 0, TimeSpan.Zero)) }
            .Parse(["tiers", "--url-per-tier", $"2048={small.BaseUrl}", "--url-per-tier", $"4096={cancelling.BaseUrl}", "--n-predict", "10"])
            .InvokeAsync(cancellationToken: cancel.Token).WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);

        Assert.Equal(130, exit);
        Assert.Equal("error: the run was cancelled (Ctrl-C or a termination signal)", _err.ToString().Trim().Split('\n')[^1]);
        Assert.Contains("| 2048 MB |", _out.ToString());
        Assert.Contains("partial: 4096 MB was interrupted: the run was cancelled (Ctrl-C or a termination signal)\n", _out.ToString().Replace("\r", ""));
    }

    [Fact]
    public async Task Deployed_tiers_are_measured_through_their_urls()
    {
        using var small = new FakeOpenAiServer { TokenDelay = TimeSpan.FromMilliseconds(4) };
        using var large = new FakeOpenAiServer { TokenDelay = TimeSpan.FromMilliseconds(1) };
        int exit = await Run("--url-per-tier", $"2048={small.BaseUrl}", "--url-per-tier", $"10240={large.BaseUrl}", "--n-predict", "10,20");
        Assert.True(exit == 0, _err.ToString());
        Assert.Contains("| 2048 MB |", _out.ToString());
        Assert.Contains("| 10240 MB |", _out.ToString());
        Assert.Equal(3, small.Bodies.Count); // cold + two warm sizes
        Assert.Contains(small.Bodies, b => b.Contains("\"max_tokens\":20"));
    }

    [Fact]
    public void Recommendation_picks_the_cheapest_tier_under_the_target_or_explains_why_none()
    {
        TierRow Row(int mb, double seconds) => TierMath.Price(
            new TierMeasurement(mb, 1, new TierRun(10, seconds * 2, 10), [new TierRun(100, seconds, 100)], "test"),
            PriceTable.Default.Resolve($"lambda-arm64-{mb}"));
        var rows = new[] { Row(2048, 9), Row(4096, 4), Row(10240, 1.8) };
        Assert.Equal(4096, TierMath.Recommend(rows, 5).MemoryMb);     // 4 GB × 4 s = 16 GB-s is cheaper than 10 GB × 1.8 s = 18 GB-s
        Assert.Equal(10240, TierMath.Recommend(rows, 2).MemoryMb);
        var none = TierMath.Recommend(rows, 1);
        Assert.Null(none.MemoryMb);
        Assert.Contains("fastest is 10240 MB", none.Text);
        Assert.Equal(4096, TierMath.Recommend(rows, null).MemoryMb); // no target: cheapest per invocation
    }

    [Fact]
    public void Timings_line_of_the_generate_command_is_parsed()
    {
        var (seconds, tokens) = LocalTierRunner.ParseTimings(
            "prompt eval: 7 tokens in 120 ms (58.33 tok/s); generation: 50 tokens in 2380 ms (21.01 tok/s); first token after 150 ms; finish: length");
        Assert.Equal(2.5, seconds, 6);
        Assert.Equal(50, tokens);
        Assert.Throws<InvalidOperationException>(() => LocalTierRunner.ParseTimings("nothing here"));
    }
}
