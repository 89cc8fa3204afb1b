using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using BitNet.Cli.Cost;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet bench-cost --url URL --hardware NAME [--sweep 1,2,4,8]`: measure an OpenAI-compatible endpoint
/// under load and price it in $ per million tokens; writes results/raw/{run}.json and results/reports/{run}.md
/// (+ .svg), and with --sweep one run per concurrency level plus results/reports/{sweep}.md comparing them. A sweep
/// stopped at a level (a silent server, every request failing, Ctrl-C) reports the levels before it in {sweep}-partial.md.
/// </summary>
internal static class BenchCostCommand
{
    public static Command Create() => Create(Console.Out, Console.Error, () => DateTimeOffset.UtcNow);

    internal static Command Create(TextWriter stdout, TextWriter stderr, Func<DateTimeOffset> clock)
    {
        var url = new Option<string>("--url") { Description = "Base URL of the server (e.g. http://127.0.0.1:8080 or a function URL)", Required = true };
        var hardware = new Option<string>("--hardware") { Description = "Price-table name (lambda-arm64-2048, azure-ep1, aws-c7g.xlarge, local, ...) or any name with --price-per-hour", Required = true };
        var pricePerHour = NumberOption.Optional<double>("--price-per-hour", "Hourly price in USD; overrides the table")
            .Must(p => p >= 0 && double.IsFinite(p), "a price of 0 or more");
        var concurrency = NumberOption.Create("--concurrency", "Parallel clients", 1, "-c");
        var requests = NumberOption.Create("--requests", "Measured requests", 8, "-n");
        var maxTokens = NumberOption.Create("--max-tokens", "max_tokens per request", 64);
        var warmup = NumberOption.Create("--warmup", "Unmeasured warm-up requests first", 2);
        var prices = new Option<string?>("--prices") { Description = "JSON price table overriding/adding rows" };
        var prompt = new Option<string>("--prompt") { Description = "Prompt text", DefaultValueFactory = _ => "Explain in a few sentences why the sky is blue." };
        var endpoint = new Option<string>("--endpoint") { Description = "completions (/v1/completions) or chat (/v1/chat/completions)", DefaultValueFactory = _ => "completions" };
        endpoint.OneOf("completions", "chat");
        var apiKey = new Option<string?>("--api-key") { Description = "Bearer token (default: BITNET_API_KEY)" };
        var pid = NumberOption.Optional<int>("--pid", "PID of a local server: peak memory from /proc when the server does not report it")
            .Must(p => p >= 1, "a process id (1 or more)");
        var sweep = new Option<string?>("--sweep")
        {
            Description = "Run once per concurrency level, e.g. 1,2,4,8 (overrides --concurrency; each level sends at least 2 × its concurrency requests) and write a sweep report comparing them",
        };
        var idleTimeout = IdleTimeoutOption();
        var results = new Option<string>("--results") { Description = "Results folder (raw/ and reports/ inside)", DefaultValueFactory = _ => "results" };

        var command = new Command("bench-cost", "Benchmark an OpenAI-compatible endpoint and price it in $ per million tokens at 100/70/50 % utilisation")
        {
            url, hardware, pricePerHour, concurrency, requests, maxTokens, warmup, prices, prompt, endpoint, apiKey, pid, results, sweep, idleTimeout,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var signals = Interrupt.StartWithTermination(cancellationToken);
            CancellationToken stop = signals.Token;
            try
            {
                Uri baseUri = BenchSettings.BaseUrl(parse.GetValue(url)!, "--url");
                int n = parse.GetValue(requests), c = parse.GetValue(concurrency), m = parse.GetValue(maxTokens), w = parse.GetValue(warmup);
                if (n < 1) throw new ArgumentException("--requests must be at least 1");
                if (c < 1) throw new ArgumentException("--concurrency must be at least 1");
                if (m < 1) throw new ArgumentException("--max-tokens must be at least 1");
                if (w < 0) throw new ArgumentException("--warmup must be 0 or more");

                PriceTable table = parse.GetValue(prices) is { } file ? PriceTable.WithOverrides(file) : PriceTable.Default;
                ResolvedPrice price = table.Resolve(parse.GetValue(hardware)!, parse.GetValue(pricePerHour));
                var settings = new BenchSettings
                {
                    Url = baseUri, Endpoint = parse.GetValue(endpoint)!, Prompt = parse.GetValue(prompt)!, MaxTokens = m, Requests = n,
                    Concurrency = c, Warmup = w, ApiKey = parse.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("BITNET_API_KEY"),
                    Pid = parse.GetValue(pid), IdleTimeout = TimeSpan.FromSeconds(parse.GetValue(idleTimeout)),
                };

                int[] levels = parse.GetValue(sweep) is { } list ? BenchCommand.ParseStreams(list, "--sweep") : [c];

                using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
                var runner = new BenchRunner(http);
                string root = ModelCommandOptions.OutputFolder(parse.GetValue(results)!, "--results");
                string rawDir = Path.Combine(root, "raw"), reportDir = Path.Combine(root, "reports");
                Directory.CreateDirectory(rawDir);
                Directory.CreateDirectory(reportDir);
                var inv = CultureInfo.InvariantCulture;
                DateTimeOffset sweepStarted = clock();
                var runs = new List<BenchRun>();
                int errors = 0;
                SweepInterruption? interrupted = null;
                Exception? stoppedBy = null;
                for (int index = 0; index < levels.Length; index++)
                {
                    int level = levels[index];
                    var levelSettings = levels.Length == 1 ? settings
                        : settings with { Concurrency = level, Requests = Math.Max(n, 2 * level), Warmup = runs.Count == 0 ? w : 0 };
                    DateTimeOffset started = clock();
                    await stderr.WriteLineAsync($"bench-cost: {levelSettings.Warmup} warm-up + {levelSettings.Requests} requests, concurrency {level}, max_tokens {m} → {baseUri}");
                    IReadOnlyList<RequestSample> samples;
                    double wall;
                    string? model, peakSource;
                    long? peak;
                    try
                    {
                        (samples, wall, model) = await runner.RunAsync(levelSettings, new Progress<int>(), stop);
                        if (samples.All(s => s.Error is not null))   // before the probes: a server that failed everything is not asked more
                            throw new HttpRequestException($"every request failed; first error: {samples[0].Error}");
                        (peak, peakSource) = await runner.PeakMemoryAsync(levelSettings, stop);
                    }
                    catch (Exception e) when (runs.Count > 0 && (e is HttpRequestException || RunInterruption.IsCancellation(e, stop)))
                    {
                        // The levels already measured still get their sweep report, marked partial, before the error.
                        interrupted = new SweepInterruption(level, RunInterruption.Reason(e, stop), levels[(index + 1)..]);
                        stoppedBy = e;
                        break;
                    }
                    BenchNumbers numbers = BenchAnalysis.Summarise(samples, wall, level, m, peak, peakSource);
                    errors += numbers.Errors;

                    string runId = $"{started:yyyyMMdd-HHmmss}-{Sanitise(price.Hardware)}{(levels.Length > 1 ? $"-c{level}" : "")}";
                    var run = new BenchRun(runId, started, baseUri.ToString(), levelSettings.Endpoint, model ?? "unknown", price.Hardware,
                        new PriceInfo(price.Kind.ToString(), price.HourlyUsd, price.PerGbSecondUsd, price.PerRequestUsd, price.MemoryGb, price.Source),
                        numbers, Math.Round(price.HourlyUsd, 6), BenchAnalysis.Costs(price, numbers, samples),
                        numbers.Errors > 0 ? $"{numbers.Errors} of {numbers.Requests} requests failed; first: {samples.First(s => s.Error is not null).Error}" : "");
                    runs.Add(run);

                    // Written whatever the token says: a Ctrl-C during these few writes must not lose a measured level.
                    string rawPath = Path.Combine(rawDir, runId + ".json");
                    await File.WriteAllTextAsync(rawPath, JsonSerializer.Serialize(run, CostJsonContext.Default.BenchRun), CancellationToken.None);
                    var comparison = LoadRuns(rawDir);
                    string svgName = runId + ".svg";
                    await File.WriteAllTextAsync(Path.Combine(reportDir, svgName), CostReport.Svg(comparison), CancellationToken.None);
                    string reportPath = Path.Combine(reportDir, runId + ".md");
                    await File.WriteAllTextAsync(reportPath, CostReport.Markdown(run, comparison, svgName), CancellationToken.None);

                    await stdout.WriteLineAsync(string.Create(inv, $"{price.Hardware}{(levels.Length > 1 ? $" concurrency {level}" : "")}: {numbers.TokensPerSecond:0.00} tokens/s, TTFT p50 {numbers.TtftP50Ms:0} ms, latency p50 {numbers.LatencyP50Ms:0} ms / p99 {numbers.LatencyP99Ms:0} ms, peak memory {(peak is { } p ? $"{p / 1048576.0:0} MiB" : "n/a")}"));
                    await stdout.WriteLineAsync(string.Create(inv, $"$/hr {CostReport.Money(price.HourlyUsd)}; $/1M tokens: {string.Join(", ", run.Cost.Select(x => $"{x.Utilisation:P0} {CostReport.Money(x.UsdPerMillionTokens)}"))}"));
                    await stdout.WriteLineAsync($"results: {rawPath}");
                    await stdout.WriteLineAsync($"report:  {reportPath}");
                }
                if (levels.Length > 1)
                {
                    // A partial sweep gets a name of its own, so it is never taken for a whole one.
                    string sweepId = $"{sweepStarted:yyyyMMdd-HHmmss}-{Sanitise(price.Hardware)}-sweep{(interrupted is null ? "" : "-partial")}";
                    string svgName = sweepId + ".svg";
                    await File.WriteAllTextAsync(Path.Combine(reportDir, svgName), CostReport.SweepSvg(runs), CancellationToken.None);
                    string sweepPath = Path.Combine(reportDir, sweepId + ".md");
                    await File.WriteAllTextAsync(sweepPath, CostReport.SweepMarkdown(runs, svgName, interrupted), CancellationToken.None);
                    await stdout.WriteLineAsync($"sweep:   {sweepPath}{(interrupted is null ? "" : $" (partial: concurrency {interrupted.Concurrency} was interrupted)")}");
                }
                if (stoppedBy is not null)
                    return await StoppedAsync(stderr, stoppedBy, stop);
                return errors > 0 ? 3 : 0;
            }
            catch (Exception e) when (e is ArgumentException or InvalidDataException or HttpRequestException or IOException
                || RunInterruption.IsCancellation(e, stop))
            {
                return await StoppedAsync(stderr, e, stop);
            }
        });
        return command;
    }

    /// <summary>The error line of a run that stopped (bench-cost, tiers) and its exit code: 130 once the user cancelled it, else 1.</summary>
    internal static async Task<int> StoppedAsync(TextWriter stderr, Exception e, CancellationToken stop)
    {
        bool cancelled = stop.IsCancellationRequested;
        await stderr.WriteLineAsync(cancelled ? $"error: {RunInterruption.CancelledReason}" : ModelCommandOptions.ErrorLine(e));
        return cancelled ? RunInterruption.CancelledExitCode : 1;
    }

    /// <summary>--idle-timeout of bench-cost and tiers: how long a server may send nothing before the run stops.</summary>
    internal static Option<double> IdleTimeoutOption() =>
        NumberOption.Create<double>("--idle-timeout",
            $"Seconds a server may send nothing (before its answer or within it) before the run stops with an error; the default outlasts the longest our server keeps a request queued (BITNET_REQUEST_TIMEOUT_SECONDS, {Inference.Api.ApiOptions.DefaultRequestTimeoutSeconds})",
            BenchSettings.DefaultIdleTimeoutSeconds)
            .Must(s => s > 0 && s <= 86_400, "a number of seconds above 0, at most 86400");

    /// <summary>Every readable run in results/raw, oldest first (files that are not runs are skipped).</summary>
    internal static List<BenchRun> LoadRuns(string rawDir)
    {
        var runs = new List<BenchRun>();
        foreach (string file in Directory.EnumerateFiles(rawDir, "*.json"))
        {
            try
            {
                if (JsonSerializer.Deserialize(File.ReadAllText(file), CostJsonContext.Default.BenchRun) is { Cost: not null, Results: not null } run)
                    runs.Add(run);
            }
            catch (JsonException) { }
        }
        return [.. runs.OrderBy(r => r.StartedAt).ThenBy(r => r.RunId, StringComparer.Ordinal)];
    }

    private static string Sanitise(string name) =>
        new([.. name.Select(ch => char.IsAsciiLetterOrDigit(ch) || ch is '-' or '.' or '_' ? ch : '-')]);
}
