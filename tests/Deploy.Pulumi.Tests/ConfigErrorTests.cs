using System.Text.Json.Nodes;
using BitNet.Deploy.Pulumi.Tests.Support;

namespace BitNet.Deploy.Pulumi.Tests;

/// <summary>A stack that cannot be deployed stops before any resource or provider call, naming every problem and no stack trace.</summary>
public sealed class ConfigErrorTests
{
    public static TheoryData<string, string?, string[]> BadStacks() => new()
    {
        {
            "aws", """{ "urlAuth": "OPEN", "logRetentionDays": 13, "tiers": [ { "memoryMb": 64 }, { "memoryMb": 4096, "provisionedConcurrency": -1 } ] }""",
            ["aws.urlAuth", "aws.logRetentionDays", "aws.tiers[0].memoryMb", "aws.tiers[1].provisionedConcurrency"]
        },
        {
            "aws", """{ "region": "mars-1", "timeoutSeconds": 5000, "tiers": [ { "memory": 2048 } ] }""",
            ["aws.region", "aws.timeoutSeconds", "aws.tiers[0].memory", "aws.tiers[0].memoryMb"]
        },
        {
            "azure", """{ "keepWarmSchedule": "*/5 * * * *", "tiers": [ { "sku": "P1V2" }, { "sku": "EP2", "alwaysReady": 0 } ] }""",
            ["azure.keepWarmSchedule", "azure.tiers[0].sku", "azure.tiers[1].alwaysReady"]
        },
        { "gcp", null, ["cloud"] },
        { "aws", """[ "not", "an", "object" ]""", ["aws"] },
    };

    [Theory]
    [MemberData(nameof(BadStacks))]
    public async Task Invalid_settings_stop_before_any_resource_and_list_every_problem(string cloud, string? settings, string[] paths)
    {
        var bitnet = new Dictionary<string, JsonNode> { ["cloud"] = cloud };
        if (settings is not null)
            bitnet[cloud] = JsonNode.Parse(settings)!;

        var run = await ProgramRun.TryRunAsync(StackConfig.Generated("dev", bitnet));

        Assert.NotNull(run.Error);
        string message = run.Error.Message;
        Assert.StartsWith("invalid deployment configuration:", message);
        foreach (string path in paths)
            Assert.Contains($"  - {path}: ", message);
        Assert.DoesNotContain("   at ", message); // no stack trace
        Assert.Empty(run.Mocks.Resources);
        Assert.Empty(run.Mocks.Calls);
    }
}
