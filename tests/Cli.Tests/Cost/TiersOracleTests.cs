using System.CommandLine;
using System.Text.Json;
using BitNet.Cli.Commands;
using BitNet.Cli.Tests.Hub;
using BitNet.Tests.Shared;

namespace BitNet.Cli.Tests.Cost;

/// <summary>The local tier table with the real engine: `bitnet generate` children on the small oracle model.</summary>
public sealed class TiersOracleTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    [Fact]
    public async Task Local_tier_table_runs_real_generate_children_on_the_oracle_model()
    {
        // The referenced CLI's apphost is copied beside the test assembly.
        string bitnet = Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "bitnet.exe" : "bitnet");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = await new RootCommand { TiersCommand.Create(stdout, stderr, () => DateTimeOffset.UnixEpoch) }
            .Parse(["tiers", "--bitnet", bitnet, "-m", SharedData.OracleModelPath, "--tiers", "1769,3538", "--cores", "2",
                "--n-predict", "2,4", "--cold-n-predict", "2", "--results", _temp.Path])
            .InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);
        Assert.True(exit == 0, stderr.ToString());

        var rows = JsonDocument.Parse(File.ReadAllText(_temp.Combine("raw", "tiers-19700101-000000.json"))).RootElement
            .GetProperty("rows").EnumerateArray().ToList();
        Assert.Equal([1, 2], rows.Select(r => r.GetProperty("threads").GetInt32()));
        foreach (var row in rows)
        {
            var warm = row.GetProperty("warm").EnumerateArray().ToList();
            Assert.Equal([2, 4], warm.Select(w => w.GetProperty("tokens").GetInt32())); // --ignore-eos: exactly n_predict
            Assert.All(warm, w => Assert.InRange(w.GetProperty("seconds").GetDouble(), 0.0001, 120));
            // A cold start includes process start and model load, so it outlasts the warm run of the same size.
            Assert.True(row.GetProperty("cold").GetProperty("seconds").GetDouble() > warm[0].GetProperty("seconds").GetDouble());
            Assert.True(row.GetProperty("usdPerInvocation").GetDouble() > 0);
        }
    }
}
