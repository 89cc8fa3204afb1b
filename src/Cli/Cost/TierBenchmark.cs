using System.Diagnostics;
using System.Globalization;
using System.Text;
using System.Text.RegularExpressions;
using BitNet.Deploy.Planning;

namespace BitNet.Cli.Cost;

/// <summary>One timed run: tokens asked for, seconds it took, tokens produced.</summary>
public sealed record TierRun(int NPredict, double Seconds, int Tokens);

/// <summary>What was measured for one memory tier.</summary>
public sealed record TierMeasurement(int MemoryMb, int Threads, TierRun Cold, IReadOnlyList<TierRun> Warm, string Source);

/// <summary>A measured tier with its Lambda price.</summary>
public sealed record TierRow(int MemoryMb, double VcpuShare, int Threads, TierRun Cold, IReadOnlyList<TierRun> Warm,
    double UsdPerInvocation, double UsdPerMillionTokens, double ColdUsd)
{
    /// <summary>The warm run used for pricing and the latency target: the largest n_predict.</summary>
    public TierRun Reference => Warm.MaxBy(r => r.NPredict)!;
}

/// <summary>The tier table; <paramref name="Interrupted"/> names the tier it stopped at when it is partial.</summary>
public sealed record TierReport(string Source, string Architecture, double? TargetSeconds, IReadOnlyList<TierRow> Rows, int? RecommendedMemoryMb, string Recommendation,
    TierInterruption? Interrupted = null);

/// <summary>Measures a tier: a cold start (new process or first request) and warm runs at each n_predict.</summary>
public interface ITierRunner
{
    Task<TierMeasurement> MeasureAsync(int memoryMb, int coldNPredict, IReadOnlyList<int> warmNPredicts, CancellationToken cancellationToken);
}

/// <summary>
/// The tier table's arithmetic: Lambda prices per invocation and per million tokens, and the
/// recommendation — the cheapest tier whose warm response at the largest n_predict meets the target.
/// </summary>
public static class TierMath
{
    public static TierRow Price(TierMeasurement m, ResolvedPrice lambda)
    {
        double gb = m.MemoryMb / 1024.0;
        TierRun reference = m.Warm.MaxBy(r => r.NPredict)!;
        double perInvocation = CostMath.LambdaInvocationUsd(reference.Seconds, gb, lambda.PerGbSecondUsd, lambda.PerRequestUsd);
        double perMillion = reference.Tokens > 0 ? perInvocation / reference.Tokens * 1e6 : double.PositiveInfinity;
        double cold = CostMath.LambdaInvocationUsd(m.Cold.Seconds, gb, lambda.PerGbSecondUsd, lambda.PerRequestUsd);
        return new TierRow(m.MemoryMb, Math.Round(LambdaSizing.VcpuShare(m.MemoryMb), 2), m.Threads, m.Cold, m.Warm,
            perInvocation, perMillion, cold);
    }

    public static (int? MemoryMb, string Text) Recommend(IReadOnlyList<TierRow> rows, double? targetSeconds)
    {
        if (rows.Count == 0)
            return (null, "no tiers measured");
        if (targetSeconds is not { } target)
        {
            var cheapest = rows.MinBy(r => r.UsdPerInvocation)!;
            return (cheapest.MemoryMb, string.Create(CultureInfo.InvariantCulture,
                $"cheapest per invocation: {cheapest.MemoryMb} MB ({CostReport.Money(cheapest.UsdPerInvocation)} for n_predict {cheapest.Reference.NPredict}); pass --target-seconds to weigh latency"));
        }
        var meeting = rows.Where(r => r.Reference.Seconds <= target).ToList();
        if (meeting.Count == 0)
        {
            var fastest = rows.MinBy(r => r.Reference.Seconds)!;
            return (null, string.Create(CultureInfo.InvariantCulture,
                $"no tier meets {target:0.##} s at n_predict {fastest.Reference.NPredict}; the fastest is {fastest.MemoryMb} MB at {fastest.Reference.Seconds:0.00} s"));
        }
        var best = meeting.MinBy(r => r.UsdPerInvocation)!;
        return (best.MemoryMb, string.Create(CultureInfo.InvariantCulture,
            $"{best.MemoryMb} MB: cheapest tier meeting {target:0.##} s at n_predict {best.Reference.NPredict} ({best.Reference.Seconds:0.00} s, {CostReport.Money(best.UsdPerInvocation)} per invocation, {CostReport.Money(best.UsdPerMillionTokens)} per 1M tokens)"));
    }

    public static string Table(TierReport report)
    {
        var inv = CultureInfo.InvariantCulture;
        var ns = report.Rows.Count > 0 ? report.Rows[0].Warm.Select(w => w.NPredict).ToList() : [];
        var sb = new StringBuilder();
        sb.Append("| Memory | vCPU share | threads | cold start (n=").Append(report.Rows.Count > 0 ? report.Rows[0].Cold.NPredict : 0).Append(") |");
        foreach (int n in ns) sb.Append(inv, $" warm n={n} |");
        sb.AppendLine(" tok/s | $/invocation | $/1M tokens |");
        sb.Append("|---|---|---|---|");
        foreach (int _ in ns) sb.Append("---|");
        sb.AppendLine("---|---|---|");
        foreach (var row in report.Rows)
        {
            sb.Append(inv, $"| {row.MemoryMb} MB | {row.VcpuShare:0.00} | {row.Threads} | {row.Cold.Seconds:0.00} s |");
            foreach (var run in row.Warm) sb.Append(inv, $" {run.Seconds:0.00} s |");
            var reference = row.Reference;
            double tps = reference.Seconds > 0 ? reference.Tokens / reference.Seconds : 0;
            sb.AppendLine(inv, $" {tps:0.0} | {CostReport.Money(row.UsdPerInvocation)} | {CostReport.Money(row.UsdPerMillionTokens)} |");
        }
        return sb.ToString();
    }
}

/// <summary>
/// Emulates tiers on this machine: each run is a fresh `bitnet generate` child process with the
/// tier's cores as threads. The cold start is the child's wall time (process start, model load,
/// prompt, n_predict tokens); a warm run is the time the child reports for prompt evaluation plus
/// generation, i.e. what a request costs once the model is loaded.
/// </summary>
public sealed partial class LocalTierRunner(IReadOnlyList<string> command, string model, string prompt, int machineCores) : ITierRunner
{
    public async Task<TierMeasurement> MeasureAsync(int memoryMb, int coldNPredict, IReadOnlyList<int> warmNPredicts, CancellationToken cancellationToken)
    {
        int threads = LambdaSizing.EmulatedCores(memoryMb, machineCores);
        var (coldWall, coldTimings) = await RunAsync(threads, coldNPredict, cancellationToken);
        var cold = new TierRun(coldNPredict, coldWall, coldTimings.Tokens);
        var warm = new List<TierRun>();
        foreach (int n in warmNPredicts)
        {
            var (_, timings) = await RunAsync(threads, n, cancellationToken);
            warm.Add(new TierRun(n, timings.Seconds, timings.Tokens));
        }
        return new TierMeasurement(memoryMb, threads, cold, warm, "local");
    }

    private async Task<(double Wall, (double Seconds, int Tokens) Timings)> RunAsync(int threads, int nPredict, CancellationToken cancellationToken)
    {
        var start = new ProcessStartInfo(command[0])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        foreach (string arg in command.Skip(1)) start.ArgumentList.Add(arg);
        foreach (string arg in new[] { "generate", "-m", model, "-p", prompt, "-n", nPredict.ToString(CultureInfo.InvariantCulture),
                     "-t", threads.ToString(CultureInfo.InvariantCulture), "--temp", "0", "--ignore-eos", "--no-display-prompt" })
            start.ArgumentList.Add(arg);

        var clock = Stopwatch.StartNew();
        using var process = Process.Start(start) ?? throw new InvalidOperationException($"could not start {command[0]}");
        var stdout = process.StandardOutput.ReadToEndAsync(cancellationToken);
        var stderr = process.StandardError.ReadToEndAsync(cancellationToken);
        try
        {
            await process.WaitForExitAsync(cancellationToken);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);   // a cancelled run leaves no child computing behind it
            throw;
        }
        double wall = clock.Elapsed.TotalSeconds;
        string errors = await stderr;
        await stdout;
        if (process.ExitCode != 0)
            throw new InvalidOperationException($"`{string.Join(' ', start.ArgumentList)}` exited with {process.ExitCode}: {errors.Trim()}");
        return (wall, ParseTimings(errors));
    }

    /// <summary>Reads `prompt eval: P tokens in X ms ...; generation: N tokens in Y ms` from the child's stderr.</summary>
    internal static (double Seconds, int Tokens) ParseTimings(string stderr)
    {
        var match = TimingsPattern().Match(stderr);
        if (!match.Success)
            throw new InvalidOperationException($"no timings line in the child's output: {stderr.Trim()}");
        double promptMs = double.Parse(match.Groups[1].Value, CultureInfo.InvariantCulture);
        int tokens = int.Parse(match.Groups[2].Value, CultureInfo.InvariantCulture);
        double generationMs = double.Parse(match.Groups[3].Value, CultureInfo.InvariantCulture);
        return ((promptMs + generationMs) / 1000, tokens);
    }

    [GeneratedRegex(@"prompt eval: \d+ tokens in ([\d.]+) ms.*?generation: (\d+) tokens in ([\d.]+) ms", RegexOptions.Singleline)]
    private static partial Regex TimingsPattern();
}

/// <summary>
/// Measures deployed tiers through their URLs: the first request is the cold start (cold only if
/// the function was idle or freshly deployed), then one streamed request per n_predict.
/// </summary>
public sealed class UrlTierRunner(IReadOnlyDictionary<int, Uri> urls, HttpClient http, string prompt, string? apiKey) : ITierRunner
{
    /// <summary>How long a tier may send nothing before the measurement stops (<see cref="BenchSettings.IdleTimeout"/>).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(BenchSettings.DefaultIdleTimeoutSeconds);

    public async Task<TierMeasurement> MeasureAsync(int memoryMb, int coldNPredict, IReadOnlyList<int> warmNPredicts, CancellationToken cancellationToken)
    {
        var runner = new BenchRunner(http);
        async Task<TierRun> Once(int n)
        {
            var settings = new BenchSettings { Url = urls[memoryMb], Prompt = prompt, MaxTokens = n, Requests = 1, Warmup = 0, Concurrency = 1, ApiKey = apiKey, IdleTimeout = IdleTimeout };
            var (samples, _, _) = await runner.RunAsync(settings, null, cancellationToken);
            var sample = samples[0];
            if (sample.Error is not null)
                throw new HttpRequestException($"{urls[memoryMb]}: {sample.Error}");
            return new TierRun(n, sample.LatencySeconds, sample.Tokens);
        }
        var cold = await Once(coldNPredict);
        var warm = new List<TierRun>();
        foreach (int n in warmNPredicts)
            warm.Add(await Once(n));
        return new TierMeasurement(memoryMb, LambdaSizing.Threads(memoryMb), cold, warm, urls[memoryMb].ToString());
    }
}
