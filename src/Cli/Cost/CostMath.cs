namespace BitNet.Cli.Cost;

/// <summary>Dollars per million tokens, the one number that compares a Lambda tier with a GPU.</summary>
public static class CostMath
{
    /// <summary>The utilisations the reports show: fully busy, 70 % and 50 % busy.</summary>
    public static readonly double[] Utilisations = [1.0, 0.7, 0.5];

    /// <summary>
    /// Hourly-billed hardware: cost = hourly price / tokens per hour × 1e6, divided by utilisation
    /// (an idle hour is paid for too). <paramref name="tokensPerSecond"/> is the aggregate rate at the
    /// measured concurrency.
    /// </summary>
    public static double HourlyPerMillionTokens(double hourlyUsd, double tokensPerSecond, double utilisation)
    {
        if (utilisation is <= 0 or > 1)
            throw new ArgumentOutOfRangeException(nameof(utilisation), utilisation, "utilisation must be in (0, 1]");
        if (tokensPerSecond <= 0)
            return double.PositiveInfinity;
        return hourlyUsd / (tokensPerSecond * 3600) * 1e6 / utilisation;
    }

    /// <summary>One Lambda invocation: billed duration (rounded up to 1 ms) × GB × price + the request charge.</summary>
    public static double LambdaInvocationUsd(double seconds, double memoryGb, double perGbSecondUsd, double perRequestUsd) =>
        Math.Ceiling(seconds * 1000) / 1000 * memoryGb * perGbSecondUsd + perRequestUsd;

    /// <summary>
    /// Lambda bills use, not time: $/1M tokens is the same at any utilisation.
    /// </summary>
    public static double LambdaPerMillionTokens(IEnumerable<double> invocationSeconds, long tokens, double memoryGb, double perGbSecondUsd, double perRequestUsd)
    {
        if (tokens <= 0)
            return double.PositiveInfinity;
        double total = invocationSeconds.Sum(s => LambdaInvocationUsd(s, memoryGb, perGbSecondUsd, perRequestUsd));
        return total / tokens * 1e6;
    }

    /// <summary>Nearest-rank percentile of a sample (p in 0..100).</summary>
    public static double Percentile(IReadOnlyCollection<double> values, double p)
    {
        if (values.Count == 0)
            return double.NaN;
        var sorted = values.Order().ToArray();
        int rank = (int)Math.Ceiling(p / 100 * sorted.Length);
        return sorted[Math.Clamp(rank - 1, 0, sorted.Length - 1)];
    }
}
