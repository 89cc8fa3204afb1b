using System.Runtime.CompilerServices;
using System.Text;
using System.Text.Json;
using System.Xml.Linq;
using BitNet.Deploy.Planning;
using BitNet.Hosts.Lambda;
using BitNet.Inference.Api;

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
    public void Azure_app_settings_and_timer_schedule_match_the_custom_handler()
    {
        var app = DeploymentPlanner.Plan(new DeploymentConfig { Cloud = Cloud.Azure }).Azure!.Tiers[0].App;
        Assert.Equal(EnvVars.KeepWarmSchedule, KeepWarm.AzureScheduleSetting);
        Assert.Contains(EnvVars.Model, app.AppSettings.Keys);
        Assert.Contains(EnvVars.Threads, app.AppSettings.Keys);

        string functions = Path.Combine(RepoRoot(), "src", "Hosts.AzureFunctions");
        var timers = Directory.GetFiles(functions, "function.json", SearchOption.AllDirectories)
            .Where(f => !f.Contains($"{Path.DirectorySeparatorChar}bin{Path.DirectorySeparatorChar}") && !f.Contains($"{Path.DirectorySeparatorChar}obj{Path.DirectorySeparatorChar}"))
            .Select(f => JsonDocument.Parse(File.ReadAllText(f)).RootElement.GetProperty("bindings").EnumerateArray()
                .FirstOrDefault(b => b.GetProperty("type").GetString() == "timerTrigger"))
            .Where(b => b.ValueKind == JsonValueKind.Object).ToList();
        var timer = Assert.Single(timers);
        Assert.Equal($"%{KeepWarm.AzureScheduleSetting}%", timer.GetProperty("schedule").GetString());
    }

    [Fact]
    public void Azure_host_json_starts_the_binary_the_image_installs()
    {
        string project = Path.Combine(RepoRoot(), "src", "Hosts.AzureFunctions");
        string assembly = XDocument.Load(Path.Combine(project, "Hosts.AzureFunctions.csproj")).Descendants("AssemblyName").Single().Value;
        using var host = JsonDocument.Parse(File.ReadAllText(Path.Combine(project, "host.json")));
        string executable = host.RootElement.GetProperty("customHandler").GetProperty("description").GetProperty("defaultExecutablePath").GetString()!;
        Assert.Equal(assembly, executable);
        string dockerfile = File.ReadAllText(Path.Combine(RepoRoot(), "containers", "Dockerfile.azure"));
        Assert.Contains($"cp /out/{executable} /app/", dockerfile);
        Assert.Contains("COPY --from=build /app/ /home/site/wwwroot/", dockerfile);
    }
}
