using System.Reflection;
using System.Runtime.CompilerServices;
using System.Text;
using BitNet.Deploy.Planning;
using BitNet.Hosts.AzureFunctions;
using BitNet.Hosts.Lambda;
using BitNet.Inference.Api;
using Microsoft.Azure.Functions.Worker;

namespace BitNet.Deploy.Tests;

/// <summary>What the deployment configures (environment, payloads, schedules, file names) is what the hosts read.</summary>
public sealed class HostContractTests
{
    private static string RepoRoot([CallerFilePath] string file = "") => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));

    [Fact]
    public void Lambda_host_classifies_the_keep_warm_payload_as_keep_warm()
    {
        Assert.Equal(LambdaEventKind.KeepWarm, LambdaEvents.Classify(Encoding.UTF8.GetBytes(KeepWarm.LambdaPayload)));
    }

    [Fact]
    public void Lambda_environment_uses_the_variables_the_hosts_read()
    {
        var function = DeploymentPlanner.Plan(new DeploymentConfig()).Aws!.Tiers[0].Function;
        Assert.Equal(
            new[] { EnvVars.LambdaStreaming, EnvVars.Model, EnvVars.Threads }.Order(),
            function.Environment.Keys.Order());
    }

    [Fact]
    public void Azure_app_settings_and_timer_schedule_match_the_keep_warm_function()
    {
        var app = DeploymentPlanner.Plan(new DeploymentConfig { Cloud = Cloud.Azure }).Azure!.Tiers[0].App;
        Assert.Equal(EnvVars.KeepWarmSchedule, KeepWarm.AzureScheduleSetting);
        Assert.Contains(EnvVars.Model, app.AppSettings.Keys);
        Assert.Contains(EnvVars.Threads, app.AppSettings.Keys);
        Assert.Contains(KeepWarm.AzureScheduleSetting, app.AppSettings.Keys);

        // The timer's schedule is a binding expression naming the app setting the plan fills.
        MethodInfo run = typeof(KeepWarmFunction).GetMethod(nameof(KeepWarmFunction.RunAsync))!;
        var timer = run.GetParameters().Select(p => p.GetCustomAttribute<TimerTriggerAttribute>()).Single(a => a is not null)!;
        Assert.Equal($"%{KeepWarm.AzureScheduleSetting}%", timer.Schedule);
    }

    [Fact]
    public void Azure_image_installs_the_worker_the_functions_host_starts()
    {
        string dockerfile = File.ReadAllText(Path.Combine(RepoRoot(), "containers", "Dockerfile.azure"));
        Assert.Contains($"test -f /app/{typeof(KeepWarmFunction).Assembly.GetName().Name}.dll", dockerfile);
        Assert.Contains("COPY --from=build /app/ /home/site/wwwroot/", dockerfile);
        Assert.Contains($"BITNET_MODEL={DeploymentPlanner.AzureModelPath}", dockerfile);
    }
}
