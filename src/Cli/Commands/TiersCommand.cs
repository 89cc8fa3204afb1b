using System.CommandLine;
using System.Globalization;
using System.Text.Json;
using BitNet.Cli.Cost;
using BitNet.Deploy.Planning;
using BitNet.Inference.Hub;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet tiers`: the memory-tier table — per Lambda memory tier a cold start and warm runs at
/// n_predict 10/50/100, with $/invocation and $/1M tokens, and the cheapest tier meeting a latency
/// target. Measured against deployed URLs (--url-per-tier) or emulated locally (child processes
/// with the tier's share of cores). A run stopped at a tier (a silent or failing URL, a failed child, Ctrl-C)
/// prints and writes the tiers measured before it, marked partial, then the error.
/// </summary>
internal static class TiersCommand
{
    public static Command Create() => Create(Console.Out, Console.Error, () => DateTimeOffset.UtcNow);

    internal static Command Create(TextWriter stdout, TextWriter stderr, Func<DateTimeOffset> clock)
    {
        var tiers = new Option<string>("--tiers") { Description = "Memory tiers in MB, comma-separated", DefaultValueFactory = _ => "2048,4096,10240" };
        var nPredict = new Option<string>("--n-predict") { Description = "Warm runs' n_predict values, comma-separated", DefaultValueFactory = _ => "10,50,100" };
        var coldN = NumberOption.Create("--cold-n-predict", "n_predict of the cold-start run", 10);
        var urlPerTier = new Option<string[]>("--url-per-tier") { Description = "MB=URL of a deployed tier (repeatable); measures those instead of emulating locally", AllowMultipleArgumentsPerToken = false };
        var model = new Option<string?>("--model", "-m") { Description = "Model for local runs (default: BITNET_MODEL or the pulled default model)" };
        var prompt = new Option<string>("--prompt", "-p") { Description = "Prompt", DefaultValueFactory = _ => "The capital of France is" };
        var target = NumberOption.Optional<double>("--target-seconds", "Latency target for the largest n_predict; recommends the cheapest tier meeting it")
            .Must(s => s > 0 && double.IsFinite(s), "a number of seconds above 0");
        var arch = new Option<string>("--arch") { Description = "Lambda architecture to price: arm64 or x86_64", DefaultValueFactory = _ => "arm64" };
        arch.OneOf("arm64", "x86_64");
        var prices = new Option<string?>("--prices") { Description = "JSON price table overriding/adding rows" };
        var results = new Option<string?>("--results") { Description = "Also write raw/tiers-*.json and reports/tiers-*.md under this folder" };
        var bitnet = new Option<string?>("--bitnet") { Description = "Command that runs `bitnet` for local child processes (default: this executable)" };
        var cores = NumberOption.Optional<int>("--cores", "Cores this machine may use for emulation (default: all)").Must(n => n >= 1, "1 or more");
        var apiKey = new Option<string?>("--api-key") { Description = "Bearer token for --url-per-tier (default: BITNET_API_KEY)" };
        var idleTimeout = BenchCostCommand.IdleTimeoutOption();

        var command = new Command("tiers", "Lambda memory-tier table: cold start, warm n_predict 10/50/100, $/invocation, $/1M tokens, and the cheapest tier meeting a latency target")
        {
            tiers, nPredict, coldN, urlPerTier, model, prompt, target, arch, prices, results, bitnet, cores, apiKey, idleTimeout,
        };
        command.SetAction(async (parse, cancellationToken) =>
        {
            using var signals = Interrupt.StartWithTermination(cancellationToken);
            CancellationToken stop = signals.Token;
            try
            {
                int[] memory = NumberList.Parse(parse.GetValue(tiers)!, "--tiers", "Lambda memory size in MB", 128, 10240);
                int[] ns = NumberList.Parse(parse.GetValue(nPredict)!, "--n-predict", "n_predict value", 1, int.MaxValue);
                if (parse.GetValue(coldN) < 1) throw new ArgumentException("n_predict values must be at least 1");

                PriceTable table = parse.GetValue(prices) is { } file ? PriceTable.WithOverrides(file) : PriceTable.Default;
                string? resultsDir = parse.GetValue(results) is { } folder ? ModelCommandOptions.OutputFolder(folder, "--results") : null;
                string architecture = parse.GetValue(arch)!;

                ITierRunner runner;
                string source;
                using var http = new HttpClient { Timeout = Timeout.InfiniteTimeSpan };
                string[] urls = parse.GetValue(urlPerTier) ?? [];
                if (urls.Length > 0)
                {
                    var map = new Dictionary<int, Uri>();
                    foreach (string pair in urls)
                    {
                        int eq = pair.IndexOf('=');
                        if (eq <= 0 || !int.TryParse(pair[..eq], NumberStyles.Integer, CultureInfo.InvariantCulture, out int mb))
                            throw new ArgumentException($"--url-per-tier '{pair}' must look like 2048=https://xyz.lambda-url.us-east-1.on.aws");
                        if (mb is < 128 or > 10240)
                            throw new ArgumentException($"--url-per-tier '{pair}': {mb} MB is outside Lambda's 128-10240 MB");
                        map[mb] = BenchSettings.BaseUrl(pair[(eq + 1)..], $"--url-per-tier '{pair}':");
                    }
                    memory = [.. map.Keys.Order()];
                    runner = new UrlTierRunner(map, http, parse.GetValue(prompt)!, parse.GetValue(apiKey) ?? Environment.GetEnvironmentVariable("BITNET_API_KEY"))
                    {
                        IdleTimeout = TimeSpan.FromSeconds(parse.GetValue(idleTimeout)),
                    };
                    source = "deployed function URLs";
                }
                else
                {
                    string modelPath = parse.GetValue(model) ?? ModelLocator.DefaultModelPath();
                    memory = await TiersThatHoldAsync(memory, modelPath, stderr);
                    int machine = parse.GetValue(cores) ?? Environment.ProcessorCount;
                    runner = new LocalTierRunner(ChildCommand(parse.GetValue(bitnet)), modelPath, parse.GetValue(prompt)!, machine);
                    source = string.Create(CultureInfo.InvariantCulture, $"local emulation on {machine} cores ({Path.GetFileName(modelPath)}{LoadAverage()})");
                }

                var rows = new List<TierRow>();
                TierInterruption? interrupted = null;
                Exception? stoppedBy = null;
                for (int index = 0; index < memory.Length; index++)
                {
                    int mb = memory[index];
                    await stderr.WriteLineAsync($"tiers: measuring {mb} MB...");
                    TierMeasurement measurement;
                    try
                    {
                        measurement = await runner.MeasureAsync(mb, parse.GetValue(coldN), ns, stop);
                    }
                    catch (Exception e) when (rows.Count > 0 && (IsMeasurementFailure(e) || RunInterruption.IsCancellation(e, stop)))
                    {
                        // The tiers already measured are still printed and written, marked partial, before the error.
                        interrupted = new TierInterruption(mb, RunInterruption.Reason(e, stop), memory[(index + 1)..]);
                        stoppedBy = e;
                        break;
                    }
                    rows.Add(TierMath.Price(measurement, table.Resolve($"lambda-{architecture}-{mb}")));
                }
                var (recommended, text) = TierMath.Recommend(rows, parse.GetValue(target));
                var report = new TierReport(source, architecture, parse.GetValue(target), rows, recommended, text, interrupted);
                string markdown = TierMath.Table(report);
                string among = interrupted is null ? "" : " among the measured tiers";
                string notMeasured = interrupted is null ? "" : string.Join(", ", interrupted.NotMeasured.Select(mb => $"{mb} MB"));

                await stdout.WriteLineAsync($"Lambda {architecture} tiers, {source}{(interrupted is null ? "" : " (partial)")}:");
                await stdout.WriteAsync(markdown);
                if (interrupted is not null)
                    await stdout.WriteLineAsync($"partial: {interrupted.MemoryMb} MB was interrupted: {interrupted.Reason}{(notMeasured.Length > 0 ? $"; not measured: {notMeasured}" : "")}");
                await stdout.WriteLineAsync($"recommendation{among}: {text}");
                if (resultsDir is { } dir)
                {
                    // A partial table gets a name of its own, so it is never taken for a whole one.
                    string id = $"tiers-{clock():yyyyMMdd-HHmmss}{(interrupted is null ? "" : "-partial")}";
                    string title = interrupted is null ? architecture : $"{architecture}, partial";
                    string partial = interrupted is null ? ""
                        : $"**Partial:** {interrupted.MemoryMb} MB was interrupted: {RunInterruption.Sentence(interrupted.Reason)}{(notMeasured.Length > 0 ? $" Not measured: {notMeasured}." : "")}\n\n";
                    Directory.CreateDirectory(Path.Combine(dir, "raw"));
                    Directory.CreateDirectory(Path.Combine(dir, "reports"));
                    // Written whatever the token says: a Ctrl-C now must not lose the tiers measured.
                    await File.WriteAllTextAsync(Path.Combine(dir, "raw", id + ".json"), JsonSerializer.Serialize(report, CostJsonContext.Default.TierReport), CancellationToken.None);
                    await File.WriteAllTextAsync(Path.Combine(dir, "reports", id + ".md"),
                        $"# Lambda memory tiers ({title})\n\nSource: {source}.\n\n{partial}{markdown}\n**Recommendation{among}:** {text}\n",
                        CancellationToken.None);
                    await stdout.WriteLineAsync($"results: {Path.Combine(dir, "raw", id + ".json")}");
                }
                if (stoppedBy is not null)
                    return await BenchCostCommand.StoppedAsync(stderr, stoppedBy, stop);
                return 0;
            }
            catch (Exception e) when (e is ArgumentException || IsMeasurementFailure(e) || RunInterruption.IsCancellation(e, stop))
            {
                return await BenchCostCommand.StoppedAsync(stderr, e, stop);
            }
        });
        return command;
    }

    /// <summary>A tier that could not be measured: a URL that failed or went silent, a child run that failed or could not start.</summary>
    private static bool IsMeasurementFailure(Exception e) =>
        e is InvalidOperationException or HttpRequestException or IOException or InvalidDataException or System.ComponentModel.Win32Exception;

    /// <summary>How to start `bitnet` again: the given command, this apphost, or `dotnet bitnet.dll`.</summary>
    private static string[] ChildCommand(string? configured)
    {
        if (!string.IsNullOrWhiteSpace(configured))
            return configured.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        string process = Environment.ProcessPath ?? "bitnet";
        return Path.GetFileNameWithoutExtension(process) == "dotnet"
            ? [process, Path.Combine(AppContext.BaseDirectory, "bitnet.dll")]
            : [process];
    }

    /// <summary>", load average 0.42" on Linux: a busy machine makes emulated timings pessimistic, so the table says so.</summary>
    private static string LoadAverage()
    {
        try
        {
            string[] fields = File.ReadAllText("/proc/loadavg").Split(' ');
            return fields.Length > 0 ? $", load average {fields[0]} at start" : "";
        }
        catch (IOException) { return ""; }
        catch (UnauthorizedAccessException) { return ""; }
    }

    /// <summary>
    /// The tiers whose memory can hold the model (the deploy plan's rule, <see cref="ConfigValidator.RequiredMemoryMb"/>):
    /// a smaller tier is skipped with a line saying why, since emulating it here would time a function Lambda could not run.
    /// A missing file is left to the child runs, which report it.
    /// </summary>
    private static async Task<int[]> TiersThatHoldAsync(int[] memory, string modelPath, TextWriter stderr)
    {
        if (!File.Exists(modelPath)) return memory;
        long bytes = new FileInfo(modelPath).Length;
        int required = ConfigValidator.RequiredMemoryMb(bytes);
        foreach (int mb in memory.Where(mb => mb < required))
            await stderr.WriteLineAsync(string.Create(CultureInfo.InvariantCulture,
                $"tiers: {mb} MB skipped: it cannot hold the model ({bytes / 1e9:F2} GB file + working memory needs at least {required} MB)"));
        int[] fitting = [.. memory.Where(mb => mb >= required)];
        return fitting.Length > 0 ? fitting
            : throw new ArgumentException($"no tier in --tiers can hold the model: it needs at least {required} MB");
    }
}
