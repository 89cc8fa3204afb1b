using BitNet.Deploy.Planning;

namespace BitNet.Deploy.Tests;

public sealed class AzurePlanMatrixTests
{
    public static TheoryData<string, int, int, bool> Matrix()
    {
        var data = new TheoryData<string, int, int, bool>();
        foreach (string sku in new[] { "EP1", "EP2", "EP3" })
            foreach (int alwaysReady in new[] { 1, 3 })
                foreach (int preWarmed in new[] { 0, 1, 3 })
                    foreach (bool keepWarm in new[] { true, false })
                        data.Add(sku, alwaysReady, preWarmed, keepWarm);
        return data;
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Every_sku_warm_capacity_and_keep_warm_combination_plans_a_premium_container_app(string sku, int alwaysReady, int preWarmed, bool keepWarm)
    {
        var config = new DeploymentConfig
        {
            Cloud = Cloud.Azure,
            Azure = new AzureConfig { Tiers = [new(sku, alwaysReady, preWarmed, MaximumElasticWorkers: 5)], KeepWarm = keepWarm, KeepWarmSchedule = "0 */10 * * * *" },
        };
        DeploymentPlan plan = DeploymentPlanner.Plan(config);
        AzureTierPlan tier = Assert.Single(plan.Azure!.Tiers);
        string t = sku.ToLowerInvariant();

        Assert.Equal(($"bitnet-dev-{t}-plan", "elastic", sku, "ElasticPremium", true, 5),
            (tier.Plan.Name, tier.Plan.Kind, tier.Plan.SkuName, tier.Plan.SkuTier, tier.Plan.Reserved, tier.Plan.MaximumElasticWorkerCount));
        Assert.Equal($"bitnet-dev-{t}", tier.App.Name);
        Assert.Equal("functionapp,linux,container", tier.App.Kind);
        Assert.Equal(alwaysReady, tier.App.MinimumElasticInstanceCount);
        Assert.Equal(preWarmed, tier.App.PreWarmedInstanceCount);
        Assert.Equal("/health", tier.App.HealthCheckPath);
        Assert.Equal(new Dictionary<string, int> { ["EP1"] = 1, ["EP2"] = 2, ["EP3"] = 4 }[sku], tier.Cores);
        Assert.Equal(tier.Cores.ToString(), tier.App.AppSettings["BITNET_THREADS"]);

        Assert.Equal("dotnet-isolated", tier.App.AppSettings["FUNCTIONS_WORKER_RUNTIME"]);
        Assert.Equal("~4", tier.App.AppSettings["FUNCTIONS_EXTENSION_VERSION"]);
        Assert.Equal(keepWarm ? "0 */10 * * * *" : "0 0 0 1 1 *", tier.App.AppSettings["BITNET_KEEPWARM_SCHEDULE"]);
        Assert.Empty(tier.App.AppSettings.Keys.Intersect(AzurePlan.SettingsFromResources));

        Assert.Equal(
        [
            "azure-native:resources:ResourceGroup", "azure-native:containerregistry:Registry", "azure-native:storage:StorageAccount",
            "docker-build:index:Image", "azure-native:web:AppServicePlan", "azure-native:web:WebApp",
        ], plan.Resources.Select(r => r.Type));
        Assert.Equal([$"url-{t}"], plan.Outputs);
    }

    [Fact]
    public void Default_azure_plan_has_one_plan_and_app_per_ep_sku_and_an_amd64_image()
    {
        var plan = DeploymentPlanner.Plan(new DeploymentConfig { Cloud = Cloud.Azure });
        Assert.Equal(["ep1", "ep2", "ep3"], plan.Azure!.Tiers.Select(t => t.Tier));
        Assert.Equal("linux/amd64", plan.Azure.Image.Platform);
        Assert.Equal("containers/Dockerfile.azure", plan.Azure.Image.Dockerfile);
        Assert.Equal(("bitnet-dev-rg", "bitnetdevacr", "bitnetdevst"),
            (plan.Azure.ResourceGroup.Name, plan.Azure.Registry.Name, plan.Azure.Storage.Name));
        Assert.Null(plan.Aws);
        Assert.Equal("bitnetdevacr.azurecr.io/bitnet", ContainerRegistryPlan.RepositoryUrl("bitnetdevacr.azurecr.io", plan.Azure.Registry.ImageRepository));
    }

    [Fact]
    public void Image_repository_follows_the_project_name_in_lowercase()
    {
        var plan = DeploymentPlanner.Plan(new DeploymentConfig { Project = "BitNet-Chat", Cloud = Cloud.Azure });
        Assert.Equal("bitnet-chat", plan.Azure!.Registry.ImageRepository);
    }

    [Fact]
    public void Name_suffix_makes_the_globally_unique_names_unique()
    {
        var plan = DeploymentPlanner.Plan(new DeploymentConfig { Cloud = Cloud.Azure, Azure = new AzureConfig { NameSuffix = "x7k2" } });
        Assert.Equal("bitnetdevx7k2acr", plan.Azure!.Registry.Name);
        Assert.Equal("bitnetdevx7k2st", plan.Azure.Storage.Name);
        Assert.Equal("bitnet-dev-ep1-x7k2", plan.Azure.Tiers[0].App.Name);
        Assert.Equal("bitnet-dev-ep1-x7k2.azurewebsites.net", plan.Azure.Tiers[0].App.HostName);
    }
}
