using BitNet.Deploy.Pulumi.Tests.Support;

namespace BitNet.Deploy.Pulumi.Tests;

/// <summary>Every stack file shipped beside the program deploys under the mocks exactly as planned.</summary>
public sealed class StackFileTests
{
    public static TheoryData<string> StackFiles() => [.. StackConfig.ShippedStackFiles()];

    [Fact]
    public void Both_clouds_ship_a_stack_file()
    {
        var clouds = StackConfig.ShippedStackFiles().Select(f => StackConfig.FromStackFile(f).Bitnet("cloud")).ToHashSet();
        Assert.Superset(new HashSet<string?> { "aws", "azure" }, clouds);
    }

    [Theory]
    [MemberData(nameof(StackFiles))]
    public async Task Shipped_stack_file_registers_every_planned_resource_with_its_inputs(string stackFile)
    {
        var config = StackConfig.FromStackFile(stackFile);
        var plan = PlanExpectations.PlanFor(config);

        var run = await ProgramRun.RunAsync(config);

        PlanExpectations.RegisteredExactly(run, plan);
        PlanExpectations.OutputsAsPlanned(run, plan);
        if (plan.Aws is { } aws)
            await AwsExpectations.VerifyAsync(run, aws, StackConfig.RepositoryRoot);
        else
            await AzureExpectations.VerifyAsync(run, plan.Azure!, StackConfig.RepositoryRoot);
    }

    [Fact]
    public async Task Aws_dev_stack_deploys_three_arm64_streaming_tiers_in_its_region()
    {
        var run = await ProgramRun.RunAsync(StackConfig.FromStackFile("Pulumi.aws-dev.yaml"));

        foreach (int memory in new[] { 2048, 4096, 10240 })
        {
            var function = run.Resource("aws:lambda/function:Function", $"{memory}mb-function");
            Assert.Equal(["arm64"], function.Texts("architectures"));
            Assert.Equal(memory, function.Number("memorySize"));
            Assert.Equal("us-east-1", function.Text("region"));
            Assert.Equal("RESPONSE_STREAM", run.Resource("aws:lambda/functionUrl:FunctionUrl", $"{memory}mb-url").Text("invokeMode"));
            Assert.StartsWith($"https://bitnet-aws-dev-{memory}mb.lambda-url.us-east-1.", await run.OutputAsync($"url-{memory}mb"));
        }
        Assert.Equal(["linux/arm64"], run.Resource("docker-build:index:Image", "image").Texts("platforms"));
    }

    [Fact]
    public async Task Azure_dev_stack_deploys_an_ep1_container_app_with_the_isolated_worker()
    {
        var run = await ProgramRun.RunAsync(StackConfig.FromStackFile("Pulumi.azure-dev.yaml"));

        var plan = run.Resource("azure-native:web:AppServicePlan", "ep1-plan");
        Assert.Equal(("EP1", "ElasticPremium"), (plan.Object("sku").Text("name"), plan.Object("sku").Text("tier")));
        var site = run.Resource("azure-native:web:WebApp", "ep1-app").Object("siteConfig");
        Assert.StartsWith("DOCKER|bitnetazuredevacr.azurecr.io/bitnet@sha256:", site.Text("linuxFxVersion"));
        var settings = site.Objects("appSettings").ToDictionary(s => s.Text("name"), s => s.Text("value"));
        Assert.Equal("dotnet-isolated", settings["FUNCTIONS_WORKER_RUNTIME"]);
        Assert.Equal("0 */5 * * * *", settings["BITNET_KEEPWARM_SCHEDULE"]);
        Assert.Equal(["linux/amd64"], run.Resource("docker-build:index:Image", "image").Texts("platforms"));
        Assert.Equal("https://bitnet-azure-dev-ep1.azurewebsites.net/", await run.OutputAsync("url-ep1"));
    }
}
