using BitNet.Deploy.Planning;

namespace BitNet.Deploy.Pulumi.Tests.Support;

public static class PlanExpectations
{
    /// <summary>The plan the program should have followed: the same settings through Deploy.Planning.</summary>
    public static DeploymentPlan PlanFor(StackConfig config) =>
        DeploymentPlanner.Plan(ConfigReader.Read(config.Project, config.Stack, config.Bitnet));

    /// <summary>Every planned resource was registered once, with its type token and logical name, and nothing else was.</summary>
    public static void RegisteredExactly(ProgramRun run, DeploymentPlan plan)
    {
        var registered = run.Registered.Select(r => $"{r.Type} {r.Name}").Order(StringComparer.Ordinal).ToList();
        var planned = plan.Resources.Select(r => $"{r.Type} {r.LogicalName}").Order(StringComparer.Ordinal).ToList();
        Assert.Equal(planned, registered);
    }

    /// <summary>The stack outputs are the plan's URL outputs plus the image.</summary>
    public static void OutputsAsPlanned(ProgramRun run, DeploymentPlan plan) =>
        Assert.Equal(plan.Outputs.Append(BitNetStack.ImageOutput).Order(StringComparer.Ordinal), run.Outputs.Keys.Order(StringComparer.Ordinal));
}
