using BitNet.Cli.Cost;

namespace BitNet.Cli.Tests.Cost;

public sealed class CostMathTests
{
    [Theory]
    [InlineData(1.0, 100.0, 1.0, 2.7778)]   // $1/h, 100 tok/s = 360k tok/h → $2.78 per 1M
    [InlineData(1.0, 100.0, 0.5, 5.5556)]   // half busy: twice the cost
    [InlineData(0.205, 10.0, 0.7, 8.1349)]  // EP1 at 10 tok/s, 70 %
    [InlineData(0.0, 50.0, 1.0, 0.0)]
    public void Hourly_cost_per_million_tokens_divides_by_tokens_per_hour_and_utilisation(double hourly, double tps, double util, double expected)
    {
        Assert.Equal(expected, CostMath.HourlyPerMillionTokens(hourly, tps, util), 4);
    }

    [Fact]
    public void Zero_throughput_costs_infinity_and_bad_utilisation_throws()
    {
        Assert.True(double.IsPositiveInfinity(CostMath.HourlyPerMillionTokens(1, 0, 1)));
        Assert.Throws<ArgumentOutOfRangeException>(() => CostMath.HourlyPerMillionTokens(1, 1, 0));
        Assert.Throws<ArgumentOutOfRangeException>(() => CostMath.HourlyPerMillionTokens(1, 1, 1.5));
    }

    [Fact]
    public void Lambda_invocation_bills_rounded_up_milliseconds_times_gb_plus_the_request()
    {
        // 2.0004 s → 2.001 s billed × 2 GB × $0.0000133334 + $0.0000002
        Assert.Equal(2.001 * 2 * 0.0000133334 + 0.0000002, CostMath.LambdaInvocationUsd(2.0004, 2, 0.0000133334, 0.0000002), 12);
        double perMillion = CostMath.LambdaPerMillionTokens([1.0, 1.0], 100, 4, 0.0000133334, 0.0000002);
        Assert.Equal((2 * 4 * 0.0000133334 + 2 * 0.0000002) / 100 * 1e6, perMillion, 6);
    }

    [Theory]
    [InlineData(50, 3)]
    [InlineData(99, 5)]
    [InlineData(100, 5)]
    [InlineData(1, 1)]
    public void Percentile_is_nearest_rank(double p, double expected)
    {
        Assert.Equal(expected, CostMath.Percentile([5, 1, 4, 2, 3], p));
    }

    [Fact]
    public void Price_table_resolves_lambda_tiers_hourly_rows_and_overrides()
    {
        var lambda = PriceTable.Default.Resolve("lambda-arm64-2048");
        Assert.Equal(PriceKind.Lambda, lambda.Kind);
        Assert.Equal(2.0, lambda.MemoryGb);
        Assert.Equal(2 * 3600 * 0.0000133334, lambda.HourlyUsd, 9);
        Assert.Equal(0.0000166667, PriceTable.Default.Resolve("lambda-x86_64-1024").PerGbSecondUsd);
        Assert.Equal(0.205, PriceTable.Default.Resolve("azure-ep1").HourlyUsd);
        Assert.Equal(3.5, PriceTable.Default.Resolve("my-box", pricePerHour: 3.5).HourlyUsd);
        Assert.Contains("memory", Assert.Throws<ArgumentException>(() => PriceTable.Default.Resolve("lambda-arm64")).Message);
        Assert.Contains("128-10240", Assert.Throws<ArgumentException>(() => PriceTable.Default.Resolve("lambda-arm64-99999")).Message);
        Assert.Contains("azure-ep1", Assert.Throws<ArgumentException>(() => PriceTable.Default.Resolve("tpu-v9")).Message);
    }

    [Fact]
    public void Price_file_adds_and_replaces_rows()
    {
        string file = Path.GetTempFileName();
        try
        {
            File.WriteAllText(file, """
                [ {"name":"azure-ep1","hourlyUsd":0.25,"source":"my invoice"},
                  {"name":"lambda-arm64","kind":"lambda","perGbSecondUsd":0.00001,"perMillionRequestsUsd":0.1},
                  {"name":"h100","hourlyUsd":2.5} ]
                """);
            var table = PriceTable.WithOverrides(file);
            Assert.Equal(0.25, table.Resolve("azure-ep1").HourlyUsd);
            Assert.Equal(0.00001, table.Resolve("lambda-arm64-1024").PerGbSecondUsd);
            Assert.Equal(2.5, table.Resolve("h100").HourlyUsd);
            Assert.Equal(0.41, table.Resolve("azure-ep2").HourlyUsd);
            File.WriteAllText(file, "{ not json");
            Assert.Contains("JSON array", Assert.Throws<InvalidDataException>(() => PriceTable.WithOverrides(file)).Message);
        }
        finally { File.Delete(file); }
    }

    [Fact]
    public void Svg_chart_draws_one_bar_per_run_and_utilisation_scaled_to_the_largest()
    {
        var numbers = new BenchNumbers(1, 0, 1, 1, 10, 1, 10, 10, 1, 1, 1, null, "n/a");
        BenchRun Run(string hw, double c100) => new("id-" + hw, DateTimeOffset.UnixEpoch, "u", "completions", "m", hw,
            new PriceInfo("Hourly", 1, 0, 0, null, "s"), numbers, 1, [new(1, c100), new(0.7, c100 / 0.7), new(0.5, c100 * 2)], "");
        string svg = CostReport.Svg([Run("a<b", 1), Run("gpu", 4)]);
        Assert.StartsWith("<svg", svg);
        Assert.Equal(6 + 3, svg.Split("<rect").Length - 1); // 6 bars + 3 legend swatches
        Assert.Contains("a&lt;b", svg);
        Assert.Contains("""width="460" height="14" """.Trim(), svg); // the largest bar (gpu at 50 % = $8) spans the chart
        System.Xml.Linq.XDocument.Parse(svg); // well-formed
    }

    [Theory]
    [InlineData(1234.5, "$1,235")]
    [InlineData(2.5, "$2.50")]
    [InlineData(0.0123, "$0.0123")]
    [InlineData(0.0000712, "$0.000071")]
    [InlineData(0, "$0.0000")]
    [InlineData(double.PositiveInfinity, "n/a")]
    public void Money_keeps_significant_digits_for_fractions_of_a_cent(double usd, string text)
    {
        Assert.Equal(text, CostReport.Money(usd));
    }
}
