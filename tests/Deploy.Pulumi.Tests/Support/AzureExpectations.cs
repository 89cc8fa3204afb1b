using BitNet.Deploy.Planning;

namespace BitNet.Deploy.Pulumi.Tests.Support;

/// <summary>What the program must have registered for an Azure plan: every resource by type token and logical name, with its inputs.</summary>
public static class AzureExpectations
{
    public static async Task VerifyAsync(ProgramRun run, AzurePlan plan, string repositoryRoot)
    {
        string location = plan.ResourceGroup.Location;
        string groupName = plan.ResourceGroup.Name;
        var group = run.Resource("azure-native:resources:ResourceGroup", plan.ResourceGroup.LogicalName);
        Assert.Equal((groupName, location), (group.Text("resourceGroupName"), group.Text("location")));

        var registry = run.Resource("azure-native:containerregistry:Registry", plan.Registry.LogicalName);
        Assert.Equal((plan.Registry.Name, groupName, location, plan.Registry.Sku, plan.Registry.AdminUserEnabled),
            (registry.Text("registryName"), registry.Text("resourceGroupName"), registry.Text("location"), registry.Object("sku").Text("name"),
             registry.Flag("adminUserEnabled")));
        string loginServer = RecordingMocks.LoginServer(plan.Registry.Name);
        var credentials = Assert.Single(run.CallsTo("azure-native:containerregistry:listRegistryCredentials"));
        Assert.Equal((groupName, plan.Registry.Name), ((string)credentials.Args["resourceGroupName"], (string)credentials.Args["registryName"]));

        var storage = run.Resource("azure-native:storage:StorageAccount", plan.Storage.LogicalName);
        Assert.Equal((plan.Storage.Name, groupName, location, plan.Storage.Kind, plan.Storage.Sku),
            (storage.Text("accountName"), storage.Text("resourceGroupName"), storage.Text("location"), storage.Text("kind"), storage.Object("sku").Text("name")));
        var keys = Assert.Single(run.CallsTo("azure-native:storage:listStorageAccountKeys"));
        Assert.Equal((groupName, plan.Storage.Name), ((string)keys.Args["resourceGroupName"], (string)keys.Args["accountName"]));

        string repositoryUrl = ContainerRegistryPlan.RepositoryUrl(loginServer, plan.Registry.ImageRepository);
        var image = ImageExpectations.Verify(run, plan.Image, repositoryRoot, repositoryUrl);
        var imageRegistry = Assert.Single(image.Objects("registries"));
        Assert.Equal((loginServer, plan.Registry.Name, RecordingMocks.AcrPassword),
            (imageRegistry.Text("address"), imageRegistry.Text("username"), imageRegistry.Text("password")));
        string imageReference = ImagePlan.DigestReference(repositoryUrl, RecordingMocks.Digest(image.Values));

        var fromResources = new Dictionary<string, string>
        {
            ["AzureWebJobsStorage"] =
                $"DefaultEndpointsProtocol=https;AccountName={plan.Storage.Name};AccountKey={RecordingMocks.StorageKey};EndpointSuffix=core.windows.net",
            ["DOCKER_REGISTRY_SERVER_URL"] = $"https://{loginServer}",
            ["DOCKER_REGISTRY_SERVER_USERNAME"] = plan.Registry.Name,
            ["DOCKER_REGISTRY_SERVER_PASSWORD"] = RecordingMocks.AcrPassword,
        };
        Assert.Equal(AzurePlan.SettingsFromResources.Order(), fromResources.Keys.Order());

        foreach (var tier in plan.Tiers)
        {
            var servicePlan = run.Resource("azure-native:web:AppServicePlan", tier.Plan.LogicalName);
            Assert.Equal((tier.Plan.Name, groupName, location, tier.Plan.Kind, tier.Plan.Reserved, tier.Plan.MaximumElasticWorkerCount),
                (servicePlan.Text("name"), servicePlan.Text("resourceGroupName"), servicePlan.Text("location"), servicePlan.Text("kind"),
                 servicePlan.Flag("reserved"), servicePlan.Number("maximumElasticWorkerCount")));
            var sku = servicePlan.Object("sku");
            Assert.Equal((tier.Plan.SkuName, tier.Plan.SkuTier), (sku.Text("name"), sku.Text("tier")));

            var app = run.Resource("azure-native:web:WebApp", tier.App.LogicalName);
            Assert.Equal((tier.App.Name, groupName, location, tier.App.Kind, $"{tier.Plan.LogicalName}-id", tier.App.HttpsOnly),
                (app.Text("name"), app.Text("resourceGroupName"), app.Text("location"), app.Text("kind"), app.Text("serverFarmId"), app.Flag("httpsOnly")));
            var site = app.Object("siteConfig");
            Assert.Equal(FunctionAppPlan.LinuxFxVersion(imageReference), site.Text("linuxFxVersion"));
            Assert.Equal(tier.App.MinimumElasticInstanceCount, site.Number("minimumElasticInstanceCount"));
            Assert.Equal(tier.App.PreWarmedInstanceCount, site.Number("preWarmedInstanceCount"));
            Assert.Equal(tier.App.HealthCheckPath, site.Text("healthCheckPath"));
            Assert.Equal(tier.App.CorsAllowedOrigins, site.Object("cors").Texts("allowedOrigins"));

            var settings = site.Objects("appSettings").Select(s => KeyValuePair.Create(s.Text("name"), s.Text("value"))).ToList();
            Assert.Equal(settings.Count, settings.Select(s => s.Key).Distinct().Count());
            var expected = tier.App.AppSettings.Concat(fromResources);
            Assert.Equal(expected.OrderBy(kv => kv.Key, StringComparer.Ordinal), settings.OrderBy(kv => kv.Key, StringComparer.Ordinal));

            Assert.Equal($"https://{tier.App.Name}.azurewebsites.net/", await run.OutputAsync(tier.UrlOutputName));
        }

        Assert.Equal(imageReference, await run.OutputAsync(BitNetStack.ImageOutput));
    }
}
