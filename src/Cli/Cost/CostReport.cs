using System.Globalization;
using System.Net;
using System.Text;

namespace BitNet.Cli.Cost;

/// <summary>
/// The Markdown report of a run, with a bar chart (an SVG written by hand, no chart library)
/// comparing this run with every earlier run in results/raw by $ per million tokens.
/// </summary>
public static class CostReport
{
    private static readonly CultureInfo Inv = CultureInfo.InvariantCulture;
    private static readonly string[] BarColours = ["#1f6feb", "#58a6ff", "#a5d6ff"];

    public static string Markdown(BenchRun run, IReadOnlyList<BenchRun> comparison, string svgFileName)
    {
        var r = run.Results;
        var md = new StringBuilder();
        md.AppendLine(Inv, $"# Cost benchmark {run.RunId}");
        md.AppendLine();
        md.AppendLine(Inv, $"- Endpoint: `{run.Url}` ({run.Endpoint}), model `{run.Model}`");
        md.AppendLine(Inv, $"- Hardware: **{run.Hardware}** ({run.Price.Kind}, {Money(run.HourlyUsd)}/h{(run.Price.Kind == "Lambda" ? " of busy time" : "")}; price source: {run.Price.Source})");
        md.AppendLine(Inv, $"- Load: {r.Requests} requests × up to {r.MaxTokens} tokens, concurrency {r.Concurrency}, started {run.StartedAt:u}");
        md.AppendLine();
        md.AppendLine("| Metric | Value |");
        md.AppendLine("|---|---|");
        md.AppendLine(Inv, $"| Throughput (all streams) | {r.TokensPerSecond:0.00} tokens/s |");
        md.AppendLine(Inv, $"| Decode rate per stream (p50) | {r.PerRequestTokensPerSecondP50:0.00} tokens/s |");
        md.AppendLine(Inv, $"| Time to first token p50 | {r.TtftP50Ms:0} ms |");
        md.AppendLine(Inv, $"| Latency p50 / p99 | {r.LatencyP50Ms:0} / {r.LatencyP99Ms:0} ms |");
        md.AppendLine(Inv, $"| Tokens generated | {r.TotalTokens} in {r.WallSeconds:0.0} s |");
        md.AppendLine(Inv, $"| Errors | {r.Errors} |");
        md.AppendLine(Inv, $"| Peak memory | {(r.PeakMemoryBytes is { } b ? $"{b / 1048576.0:0} MiB ({r.PeakMemorySource})" : "n/a")} |");
        foreach (var c in run.Cost)
            md.AppendLine(Inv, $"| $/1M tokens at {c.Utilisation:P0} utilisation | {Money(c.UsdPerMillionTokens)} |");
        md.AppendLine();
        if (!string.IsNullOrEmpty(run.Note))
        {
            md.AppendLine(run.Note);
            md.AppendLine();
        }
        md.AppendLine("## $ per million tokens, all runs in results/raw");
        md.AppendLine();
        md.AppendLine(Inv, $"![$ per 1M tokens]({svgFileName})");
        md.AppendLine();
        md.AppendLine("| Run | Hardware | tokens/s | 100 % | 70 % | 50 % |");
        md.AppendLine("|---|---|---|---|---|---|");
        foreach (var other in comparison)
            md.AppendLine(Inv, $"| {other.RunId} | {other.Hardware} | {other.Results.TokensPerSecond:0.00} | {string.Join(" | ", other.Cost.Select(c => Money(c.UsdPerMillionTokens)))} |");
        md.AppendLine();
        md.AppendLine("Cost = hourly price ÷ tokens per hour × 10⁶ ÷ utilisation (idle time is paid for). " +
                      "Lambda bills per GB-second and request, so its cost per token does not depend on utilisation.");
        return md.ToString();
    }

    /// <summary>Horizontal grouped bars: one group per run, one bar per utilisation.</summary>
    public static string Svg(IReadOnlyList<BenchRun> runs)
    {
        const int left = 220, barHeight = 14, gap = 4, groupGap = 16, chartWidth = 460, top = 30;
        int groupHeight = CostMath.Utilisations.Length * (barHeight + gap) + groupGap;
        int height = top + runs.Count * groupHeight + 30;
        double max = runs.SelectMany(r => r.Cost).Select(c => c.UsdPerMillionTokens).Where(double.IsFinite).DefaultIfEmpty(0).Max();
        if (max <= 0) max = 1;

        var svg = new StringBuilder();
        svg.AppendLine(Inv, $"""<svg xmlns="http://www.w3.org/2000/svg" width="{left + chartWidth + 90}" height="{height}" font-family="sans-serif" font-size="12">""");
        svg.AppendLine("""  <text x="10" y="18" font-weight="bold">$ per 1M tokens (lower is better)</text>""");
        for (int i = 0; i < CostMath.Utilisations.Length; i++)
        {
            int x = left + 160 * i;
            svg.AppendLine(Inv, $"""  <rect x="{x}" y="{height - 18}" width="10" height="10" fill="{BarColours[i]}"/><text x="{x + 14}" y="{height - 9}">{CostMath.Utilisations[i]:P0} utilisation</text>""");
        }
        for (int g = 0; g < runs.Count; g++)
        {
            var run = runs[g];
            int y0 = top + g * groupHeight;
            svg.AppendLine(Inv, $"""  <text x="{left - 8}" y="{y0 + barHeight + 8}" text-anchor="end">{Escape(run.Hardware)}</text>""");
            svg.AppendLine(Inv, $"""  <text x="{left - 8}" y="{y0 + 2 * barHeight + 10}" text-anchor="end" fill="#666" font-size="10">{Escape(run.RunId)}</text>""");
            for (int i = 0; i < run.Cost.Count && i < BarColours.Length; i++)
            {
                double value = run.Cost[i].UsdPerMillionTokens;
                int y = y0 + i * (barHeight + gap);
                double width = double.IsFinite(value) ? Math.Max(1, value / max * chartWidth) : 0;
                svg.AppendLine(Inv, $"""  <rect x="{left}" y="{y}" width="{width:0.#}" height="{barHeight}" fill="{BarColours[i]}"/>""");
                svg.AppendLine(Inv, $"""  <text x="{left + width + 4:0.#}" y="{y + barHeight - 3}">{Escape(Money(value))}</text>""");
            }
        }
        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    /// <summary>
    /// A concurrency sweep (one run per level, same endpoint and hardware): tokens/s and how it scales from
    /// the first level, TTFT, latency and $ per million tokens at each level, with <see cref="SweepSvg"/>.
    /// A sweep that stopped early (<paramref name="interrupted"/>) is titled partial and names the level it stopped at, and why.
    /// </summary>
    public static string SweepMarkdown(IReadOnlyList<BenchRun> runs, string svgFileName, SweepInterruption? interrupted = null)
    {
        ArgumentOutOfRangeException.ThrowIfZero(runs.Count);
        BenchRun first = runs[0];
        var md = new StringBuilder();
        md.AppendLine(Inv, $"# Concurrency sweep on {first.Hardware}{(interrupted is null ? "" : " (partial)")}");
        md.AppendLine();
        if (interrupted is { } stop)
        {
            md.Append(Inv, $"- **Partial:** concurrency {stop.Concurrency} was interrupted: {RunInterruption.Sentence(stop.Reason)}");
            if (stop.NotRun.Count > 0)
                md.Append(Inv, $" Not run: concurrency {string.Join(", ", stop.NotRun)}.");
            md.AppendLine(" The table and the chart hold the levels that completed.");
        }
        md.AppendLine(Inv, $"- Endpoint: `{first.Url}` ({first.Endpoint}), model `{first.Model}`, up to {first.Results.MaxTokens} tokens per request");
        md.AppendLine(Inv, $"- Hardware: **{first.Hardware}** ({first.Price.Kind}, {Money(first.HourlyUsd)}/h; price source: {first.Price.Source}), started {first.StartedAt:u}");
        md.AppendLine();
        md.AppendLine(Inv, $"![tokens/s and $ per 1M tokens by concurrency]({svgFileName})");
        md.AppendLine();
        md.AppendLine("| Concurrency | tokens/s | × concurrency " + first.Results.Concurrency + " | per stream tokens/s (p50) | TTFT p50 | latency p50 / p99 | $/1M at 100 % | 70 % | 50 % | errors |");
        md.AppendLine("|---|---|---|---|---|---|---|---|---|---|");
        foreach (BenchRun run in runs)
        {
            var r = run.Results;
            double scale = first.Results.TokensPerSecond > 0 ? r.TokensPerSecond / first.Results.TokensPerSecond : double.NaN;
            md.AppendLine(Inv, $"| {r.Concurrency} | {r.TokensPerSecond:0.00} | {scale:0.00}× | {r.PerRequestTokensPerSecondP50:0.00} | {r.TtftP50Ms:0} ms | {r.LatencyP50Ms:0} / {r.LatencyP99Ms:0} ms | {string.Join(" | ", run.Cost.Select(c => Money(c.UsdPerMillionTokens)))} | {r.Errors} |");
        }
        md.AppendLine();
        md.AppendLine("Raw results: " + string.Join(", ", runs.Select(r => $"`raw/{r.RunId}.json`")) + ".");
        return md.ToString();
    }

    /// <summary>Two bar charts side by side, one bar per concurrency level: tokens/s (higher is better) and $ per 1M tokens at 100 % utilisation (lower is better).</summary>
    public static string SweepSvg(IReadOnlyList<BenchRun> runs)
    {
        const int left = 110, barHeight = 18, gap = 8, chartWidth = 300, top = 44, panelGap = 110;
        int height = top + runs.Count * (barHeight + gap) + 20;
        double maxRate = runs.Select(r => r.Results.TokensPerSecond).DefaultIfEmpty(0).Max();
        double maxCost = runs.Select(r => r.Cost.Count > 0 ? r.Cost[0].UsdPerMillionTokens : 0).Where(double.IsFinite).DefaultIfEmpty(0).Max();
        if (maxRate <= 0) maxRate = 1;
        if (maxCost <= 0) maxCost = 1;
        int second = left + chartWidth + panelGap;
        var svg = new StringBuilder();
        svg.AppendLine(Inv, $"""<svg xmlns="http://www.w3.org/2000/svg" width="{second + chartWidth + 90}" height="{height}" font-family="sans-serif" font-size="12">""");
        svg.AppendLine(Inv, $"""  <text x="{left}" y="18" font-weight="bold">tokens/s (higher is better)</text>""");
        svg.AppendLine(Inv, $"""  <text x="{second}" y="18" font-weight="bold">$ per 1M tokens at 100 % (lower is better)</text>""");
        for (int i = 0; i < runs.Count; i++)
        {
            var run = runs[i];
            int y = top + i * (barHeight + gap);
            double rate = run.Results.TokensPerSecond, cost = run.Cost.Count > 0 ? run.Cost[0].UsdPerMillionTokens : double.NaN;
            double rateWidth = Math.Max(1, rate / maxRate * chartWidth);
            double costWidth = double.IsFinite(cost) ? Math.Max(1, cost / maxCost * chartWidth) : 0;
            svg.AppendLine(Inv, $"""  <text x="{left - 8}" y="{y + barHeight - 4}" text-anchor="end">concurrency {run.Results.Concurrency}</text>""");
            svg.AppendLine(Inv, $"""  <rect x="{left}" y="{y}" width="{rateWidth:0.#}" height="{barHeight}" fill="{BarColours[0]}"/>""");
            svg.AppendLine(Inv, $"""  <text x="{left + rateWidth + 4:0.#}" y="{y + barHeight - 4}">{rate:0.00}</text>""");
            svg.AppendLine(Inv, $"""  <rect x="{second}" y="{y}" width="{costWidth:0.#}" height="{barHeight}" fill="{BarColours[1]}"/>""");
            svg.AppendLine(Inv, $"""  <text x="{second + costWidth + 4:0.#}" y="{y + barHeight - 4}">{Escape(Money(cost))}</text>""");
        }
        svg.AppendLine("</svg>");
        return svg.ToString();
    }

    public static string Money(double usd) =>
        !double.IsFinite(usd) ? "n/a"
        : usd >= 100 ? usd.ToString("$#,0", Inv)
        : usd >= 1 ? usd.ToString("$0.00", Inv)
        : usd >= 0.01 || usd == 0 ? usd.ToString("$0.0000", Inv)
        : usd.ToString("$0.000000", Inv); // per-invocation Lambda prices are fractions of a cent

    private static string Escape(string text) => WebUtility.HtmlEncode(text);
}
