using System.Runtime.CompilerServices;
using System.Text.RegularExpressions;
using BitNet.Deploy.Planning;

namespace BitNet.Deploy.Tests;

/// <summary>
/// The Pulumi program cannot be compiled here (no Pulumi packages on the reachable feed), so these
/// tests read it: the stack files must be configurations the planner accepts, and every resource
/// type the plan can contain must be created somewhere in the program.
/// </summary>
public sealed partial class PulumiProgramTests
{
    private static string PulumiDir([CallerFilePath] string file = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", "..", "deploy", "pulumi"));

    /// <summary>Reads `bitnet:*` settings from a stack file: scalars, and the JSON flow-mapping objects.</summary>
    private static Func<string, string?> StackSettings(string stackFile)
    {
        string text = File.ReadAllText(Path.Combine(PulumiDir(), stackFile));
        var settings = new Dictionary<string, string>();
        foreach (Match m in SettingPattern().Matches(text))
        {
            string key = m.Groups[1].Value, rest = m.Groups[2].Value.Trim();
            if (rest.StartsWith('{'))
            {
                int start = m.Groups[2].Index, depth = 0, i = start;
                for (; i < text.Length; i++)
                {
                    if (text[i] == '{') depth++;
                    else if (text[i] == '}' && --depth == 0) break;
                }
                settings[key] = text[start..(i + 1)];
            }
            else
            {
                settings[key] = rest;
            }
        }
        return key => settings.GetValueOrDefault(key);
    }

    [Fact]
    public void Aws_dev_stack_file_is_a_valid_configuration_with_three_arm64_tiers()
    {
        var plan = DeploymentPlanner.Plan(ConfigReader.Read("bitnet", "aws-dev", StackSettings("Pulumi.aws-dev.yaml")));
        Assert.Equal(["2048mb", "4096mb", "10240mb"], plan.Aws!.Tiers.Select(t => t.Tier));
        Assert.All(plan.Aws.Tiers, t => Assert.Equal("arm64", t.Function.Architecture));
        Assert.Equal("bitnet-aws-dev-2048mb", plan.Aws.Tiers[0].Function.Name);
    }

    [Fact]
    public void Azure_dev_stack_file_is_a_valid_configuration()
    {
        var plan = DeploymentPlanner.Plan(ConfigReader.Read("bitnet", "azure-dev", StackSettings("Pulumi.azure-dev.yaml")));
        Assert.Equal(["ep1"], plan.Azure!.Tiers.Select(t => t.Tier));
        Assert.Equal("0 */5 * * * *", plan.Azure.Tiers[0].App.AppSettings[KeepWarm.AzureScheduleSetting]);
    }

    [Fact]
    public void Project_file_uses_runtime_dotnet_and_pins_the_pulumi_packages_outside_central_management()
    {
        Assert.Contains("runtime: dotnet", File.ReadAllText(Path.Combine(PulumiDir(), "Pulumi.yaml")));
        string csproj = File.ReadAllText(Path.Combine(PulumiDir(), "BitNet.Deploy.Pulumi.csproj"));
        Assert.Contains("<ManagePackageVersionsCentrally>false</ManagePackageVersionsCentrally>", csproj);
        foreach (string package in new[] { "Pulumi", "Pulumi.Aws", "Pulumi.AzureNative", "Pulumi.DockerBuild" })
            Assert.Matches($"<PackageReference Include=\"{Regex.Escape(package)}\" Version=\"\\d+\\.\\d+\\.\\d+\" />", csproj);
        string solution = File.ReadAllText(Path.Combine(PulumiDir(), "..", "..", "Serverless.sln"));
        Assert.DoesNotContain("BitNet.Deploy.Pulumi", solution);
    }

    public static TheoryData<string> PlannedTypes()
    {
        var types = new TheoryData<string>();
        var all = DeploymentPlanner.Plan(new DeploymentConfig { Aws = new AwsConfig { Tiers = [new(2048, 1, true)] } }).Resources
            .Concat(DeploymentPlanner.Plan(new DeploymentConfig { Cloud = Cloud.Azure }).Resources)
            .Select(r => r.Type).Distinct();
        foreach (string type in all)
            types.Add(type);
        return types;
    }

    /// <summary>Pulumi type token → the C# type the program must construct.</summary>
    private static readonly Dictionary<string, string> SdkTypes = new()
    {
        ["aws:ecr/repository:Repository"] = "Aws.Ecr.Repository",
        ["aws:ecr/lifecyclePolicy:LifecyclePolicy"] = "Aws.Ecr.LifecyclePolicy",
        ["docker-build:index:Image"] = "Docker.Image",
        ["aws:iam/role:Role"] = "Aws.Iam.Role",
        ["aws:iam/rolePolicyAttachment:RolePolicyAttachment"] = "Aws.Iam.RolePolicyAttachment",
        ["aws:cloudwatch/logGroup:LogGroup"] = "Aws.CloudWatch.LogGroup",
        ["aws:lambda/function:Function"] = "Aws.Lambda.Function",
        ["aws:lambda/alias:Alias"] = "Aws.Lambda.Alias",
        ["aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig"] = "Aws.Lambda.ProvisionedConcurrencyConfig",
        ["aws:lambda/functionUrl:FunctionUrl"] = "Aws.Lambda.FunctionUrl",
        ["aws:lambda/permission:Permission"] = "Aws.Lambda.Permission",
        ["aws:cloudwatch/eventRule:EventRule"] = "Aws.CloudWatch.EventRule",
        ["aws:cloudwatch/eventTarget:EventTarget"] = "Aws.CloudWatch.EventTarget",
        ["azure-native:resources:ResourceGroup"] = "Resources.ResourceGroup",
        ["azure-native:containerregistry:Registry"] = "ContainerRegistry.Registry",
        ["azure-native:storage:StorageAccount"] = "Storage.StorageAccount",
        ["azure-native:web:AppServicePlan"] = "Web.AppServicePlan",
        ["azure-native:web:WebApp"] = "Web.WebApp",
    };

    [Theory]
    [MemberData(nameof(PlannedTypes))]
    public void Every_planned_resource_type_is_created_by_the_pulumi_program(string type)
    {
        Assert.True(SdkTypes.TryGetValue(type, out string? sdkType), $"no SDK type known for {type}");
        string program = string.Concat(Directory.GetFiles(PulumiDir(), "*.cs").Select(File.ReadAllText));
        Assert.Contains($"new {sdkType}(", program);
    }

    [GeneratedRegex(@"^\s*bitnet:(\w+):(.*)$", RegexOptions.Multiline)]
    private static partial Regex SettingPattern();
}
