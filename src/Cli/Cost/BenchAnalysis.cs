namespace BitNet.Cli.Cost;

/// <summary>Turns the raw samples of a run into the numbers and costs that go into results/raw.</summary>
public static class BenchAnalysis
{
    public static BenchNumbers Summarise(IReadOnlyList<RequestSample> samples, double wallSeconds, int concurrency, int maxTokens,
        long? peakMemory, string peakSource)
    {
        var ok = samples.Where(s => s.Error is null).ToList();
        long tokens = ok.Sum(s => (long)s.Tokens);
        var latencies = ok.Select(s => s.LatencySeconds * 1000).ToList();
        var ttfts = ok.Where(s => s.TtftSeconds is not null).Select(s => s.TtftSeconds!.Value * 1000).ToList();
        // Decode rate of one stream: tokens after the first over the time after the first token.
        var perRequest = ok.Where(s => s.Tokens > 1 && s.TtftSeconds is { } t && s.LatencySeconds > t)
            .Select(s => (s.Tokens - 1) / (s.LatencySeconds - s.TtftSeconds!.Value)).ToList();
        return new BenchNumbers(
            Requests: samples.Count,
            Errors: samples.Count - ok.Count,
            Concurrency: concurrency,
            MaxTokens: maxTokens,
            TotalTokens: tokens,
            WallSeconds: Math.Round(wallSeconds, 3),
            TokensPerSecond: wallSeconds > 0 ? Math.Round(tokens / wallSeconds, 3) : 0,
            PerRequestTokensPerSecondP50: Math.Round(perRequest.Count > 0 ? CostMath.Percentile(perRequest, 50) : 0, 3),
            TtftP50Ms: Math.Round(CostMath.Percentile(ttfts, 50), 1),
            LatencyP50Ms: Math.Round(CostMath.Percentile(latencies, 50), 1),
            LatencyP99Ms: Math.Round(CostMath.Percentile(latencies, 99), 1),
            PeakMemoryBytes: peakMemory,
            PeakMemorySource: peakSource);
    }

    public static IReadOnlyList<CostAtUtilisation> Costs(ResolvedPrice price, BenchNumbers numbers, IReadOnlyList<RequestSample> samples)
    {
        if (price.Kind == PriceKind.Lambda)
        {
            var ok = samples.Where(s => s.Error is null).ToList();
            double perMillion = CostMath.LambdaPerMillionTokens(ok.Select(s => s.LatencySeconds), numbers.TotalTokens,
                price.MemoryGb!.Value, price.PerGbSecondUsd, price.PerRequestUsd);
            return [.. CostMath.Utilisations.Select(u => new CostAtUtilisation(u, Round(perMillion)))];
        }
        return [.. CostMath.Utilisations.Select(u => new CostAtUtilisation(u, Round(CostMath.HourlyPerMillionTokens(price.HourlyUsd, numbers.TokensPerSecond, u))))];
    }

    private static double Round(double value) => double.IsFinite(value) ? Math.Round(value, 4) : value;
}
