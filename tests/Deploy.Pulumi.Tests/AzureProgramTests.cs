using System.Text.Json.Nodes;
using BitNet.Deploy.Planning;
using BitNet.Deploy.Pulumi.Tests.Support;

namespace BitNet.Deploy.Pulumi.Tests;

/// <summary>The program under mocks for generated Azure stacks: SKUs × always-ready × pre-warmed × keep-warm.</summary>
public sealed class AzureProgramTests
{
    public static TheoryData<string, int, int, bool> Matrix()
    {
        var data = new TheoryData<string, int, int, bool>();
        foreach (string skus in new[] { "EP1", "EP1,EP2,EP3" })
            foreach (int alwaysReady in new[] { 1, 2 })
                foreach (int preWarmed in new[] { 0, 1 })
                    foreach (bool keepWarm in new[] { true, false })
                        data.Add(skus, alwaysReady, preWarmed, keepWarm);
        return data;
    }

    private static StackConfig Stack(string skus, int alwaysReady, int preWarmed, bool keepWarm)
    {
        int variant = skus.Length + alwaysReady + preWarmed + (keepWarm ? 1 : 0);
        var azure = new JsonObject
        {
            ["location"] = variant % 2 == 0 ? "westeurope" : "eastus2",
            ["nameSuffix"] = variant % 2 == 0 ? $"x{variant}" : "",
            ["keepWarm"] = keepWarm,
            ["keepWarmSchedule"] = "0 */7 * * * *",
            ["corsAllowedOrigins"] = new JsonArray("https://chat.example.com", "https://admin.example.com"),
            ["tiers"] = new JsonArray([.. skus.Split(',').Select(sku => (JsonNode)new JsonObject
            {
                ["sku"] = sku,
                ["alwaysReady"] = alwaysReady,
                ["preWarmed"] = preWarmed,
                ["maximumElasticWorkers"] = 4 + variant,
            })]),
        };
        return StackConfig.Generated($"gen{variant}", new Dictionary<string, JsonNode>
        {
            ["cloud"] = "azure",
            ["imageTag"] = $"build-{variant}",
            ["azure"] = azure,
        });
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task Every_combination_registers_every_planned_resource_with_its_inputs(string skus, int alwaysReady, int preWarmed, bool keepWarm)
    {
        var config = Stack(skus, alwaysReady, preWarmed, keepWarm);
        var plan = PlanExpectations.PlanFor(config);

        var run = await ProgramRun.RunAsync(config);

        PlanExpectations.RegisteredExactly(run, plan);
        PlanExpectations.OutputsAsPlanned(run, plan);
        await AzureExpectations.VerifyAsync(run, plan.Azure!, StackConfig.RepositoryRoot);

        // The same facts stated from the matrix alone.
        foreach (string sku in skus.Split(','))
        {
            string t = sku.ToLowerInvariant();
            var servicePlan = run.Resource("azure-native:web:AppServicePlan", $"{t}-plan");
            Assert.Equal((sku, "ElasticPremium", "elastic", true),
                (servicePlan.Object("sku").Text("name"), servicePlan.Object("sku").Text("tier"), servicePlan.Text("kind"), servicePlan.Flag("reserved")));
            var site = run.Resource("azure-native:web:WebApp", $"{t}-app").Object("siteConfig");
            Assert.Equal((alwaysReady, preWarmed, "/health"),
                (site.Number("minimumElasticInstanceCount"), site.Number("preWarmedInstanceCount"), site.Text("healthCheckPath")));
            Assert.Matches(@"^DOCKER\|[a-z0-9]+acr\.azurecr\.io/bitnet@sha256:[0-9a-f]{64}$", site.Text("linuxFxVersion"));
            var settings = site.Objects("appSettings").ToDictionary(s => s.Text("name"), s => s.Text("value"));
            Assert.Equal("dotnet-isolated", settings["FUNCTIONS_WORKER_RUNTIME"]);
            Assert.Equal("~4", settings["FUNCTIONS_EXTENSION_VERSION"]);
            Assert.Equal(keepWarm ? "0 */7 * * * *" : KeepWarm.AzureScheduleWhenOff, settings[KeepWarm.AzureScheduleSetting]);
            Assert.Equal(ConfigValidator.ElasticPremiumSkus[sku].Cores.ToString(), settings["BITNET_THREADS"]);
            Assert.StartsWith("DefaultEndpointsProtocol=https;AccountName=", settings["AzureWebJobsStorage"]);
            Assert.Equal(RecordingMocks.AcrPassword, settings["DOCKER_REGISTRY_SERVER_PASSWORD"]);
        }
    }

    [Fact]
    public async Task Default_azure_stack_deploys_one_app_per_elastic_premium_sku()
    {
        var config = StackConfig.Generated("dev", new Dictionary<string, JsonNode> { ["cloud"] = "azure" });
        var run = await ProgramRun.RunAsync(config);

        Assert.Equal(["image", "url-ep1", "url-ep2", "url-ep3"], run.Outputs.Keys.Order(StringComparer.Ordinal));
        await AzureExpectations.VerifyAsync(run, PlanExpectations.PlanFor(config).Azure!, StackConfig.RepositoryRoot);
    }
}
