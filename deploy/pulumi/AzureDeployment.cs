using BitNet.Deploy.Planning;
using Pulumi;
using ContainerRegistry = Pulumi.AzureNative.ContainerRegistry;
using Docker = Pulumi.DockerBuild;
using Resources = Pulumi.AzureNative.Resources;
using Storage = Pulumi.AzureNative.Storage;
using Web = Pulumi.AzureNative.Web;

namespace BitNet.Deploy.Pulumi;

/// <summary>
/// The Azure side of a plan: resource group, container registry, storage account, the Functions
/// image, and per Elastic Premium tier a plan and a Linux container function app with always-ready
/// and pre-warmed instances, a health check and the keep-warm schedule as an app setting. Every
/// resource is in the plan's location. No decisions are made here.
/// </summary>
public sealed class AzureDeployment : ComponentResource
{
    public Dictionary<string, Output<string>> Urls { get; } = [];

    /// <summary>The image the function apps run, by digest.</summary>
    public Output<string> ImageReference { get; }

    public AzureDeployment(string name, AzurePlan plan, string repositoryRoot, ComponentResourceOptions? options = null)
        : base("bitnet:deploy:AzureDeployment", name, options)
    {
        var child = new CustomResourceOptions { Parent = this };
        string location = plan.ResourceGroup.Location;

        var group = new Resources.ResourceGroup(plan.ResourceGroup.LogicalName, new Resources.ResourceGroupArgs
        {
            ResourceGroupName = plan.ResourceGroup.Name,
            Location = location,
        }, child);

        var registry = new ContainerRegistry.Registry(plan.Registry.LogicalName, new ContainerRegistry.RegistryArgs
        {
            RegistryName = plan.Registry.Name,
            ResourceGroupName = group.Name,
            Location = location,
            Sku = new ContainerRegistry.Inputs.SkuArgs { Name = plan.Registry.Sku },
            AdminUserEnabled = plan.Registry.AdminUserEnabled,
        }, child);
        var credentials = ContainerRegistry.ListRegistryCredentials.Invoke(new ContainerRegistry.ListRegistryCredentialsInvokeArgs
        {
            ResourceGroupName = group.Name,
            RegistryName = registry.Name,
        });
        Output<string> registryUser = credentials.Apply(c => c.Username ?? "");
        Output<string> registryPassword = Output.CreateSecret(credentials.Apply(c => c.Passwords[0].Value ?? ""));

        var storage = new Storage.StorageAccount(plan.Storage.LogicalName, new Storage.StorageAccountArgs
        {
            AccountName = plan.Storage.Name,
            ResourceGroupName = group.Name,
            Location = location,
            Kind = plan.Storage.Kind,
            Sku = new Storage.Inputs.SkuArgs { Name = plan.Storage.Sku },
        }, child);
        var keys = Storage.ListStorageAccountKeys.Invoke(new Storage.ListStorageAccountKeysInvokeArgs
        {
            ResourceGroupName = group.Name,
            AccountName = storage.Name,
        });
        Output<string> storageConnection = Output.CreateSecret(Output.Tuple(storage.Name, keys).Apply(t =>
            $"DefaultEndpointsProtocol=https;AccountName={t.Item1};AccountKey={t.Item2.Keys[0].Value};EndpointSuffix=core.windows.net"));

        Output<string> repositoryUrl = registry.LoginServer.Apply(server => ContainerRegistryPlan.RepositoryUrl(server, plan.Registry.ImageRepository));
        var image = ImageBuild.Create(plan.Image, repositoryRoot, repositoryUrl, new Docker.Inputs.RegistryArgs
        {
            Address = registry.LoginServer,
            Username = registryUser,
            Password = registryPassword,
        }, child);
        ImageReference = ImageBuild.DigestReference(repositoryUrl, image);

        var fromResources = new Dictionary<string, Input<string>>
        {
            ["AzureWebJobsStorage"] = storageConnection,
            ["DOCKER_REGISTRY_SERVER_URL"] = registry.LoginServer.Apply(server => $"https://{server}"),
            ["DOCKER_REGISTRY_SERVER_USERNAME"] = registryUser,
            ["DOCKER_REGISTRY_SERVER_PASSWORD"] = registryPassword,
        };

        foreach (var tier in plan.Tiers)
        {
            var servicePlan = new Web.AppServicePlan(tier.Plan.LogicalName, new Web.AppServicePlanArgs
            {
                Name = tier.Plan.Name,
                ResourceGroupName = group.Name,
                Location = location,
                Kind = tier.Plan.Kind,
                Reserved = tier.Plan.Reserved,
                Sku = new Web.Inputs.SkuDescriptionArgs { Name = tier.Plan.SkuName, Tier = tier.Plan.SkuTier },
                MaximumElasticWorkerCount = tier.Plan.MaximumElasticWorkerCount,
            }, child);

            var settings = new InputList<Web.Inputs.NameValuePairArgs>();
            foreach (var (key, value) in tier.App.AppSettings)
                settings.Add(new Web.Inputs.NameValuePairArgs { Name = key, Value = value });
            foreach (string key in AzurePlan.SettingsFromResources)
                settings.Add(new Web.Inputs.NameValuePairArgs { Name = key, Value = fromResources[key] });

            var app = new Web.WebApp(tier.App.LogicalName, new Web.WebAppArgs
            {
                Name = tier.App.Name,
                ResourceGroupName = group.Name,
                Location = location,
                Kind = tier.App.Kind,
                ServerFarmId = servicePlan.Id,
                HttpsOnly = tier.App.HttpsOnly,
                SiteConfig = new Web.Inputs.SiteConfigArgs
                {
                    LinuxFxVersion = ImageReference.Apply(FunctionAppPlan.LinuxFxVersion),
                    AppSettings = settings,
                    MinimumElasticInstanceCount = tier.App.MinimumElasticInstanceCount,
                    PreWarmedInstanceCount = tier.App.PreWarmedInstanceCount,
                    HealthCheckPath = tier.App.HealthCheckPath,
                    Cors = new Web.Inputs.CorsSettingsArgs { AllowedOrigins = [.. tier.App.CorsAllowedOrigins] },
                },
            }, child);
            Urls[tier.UrlOutputName] = app.DefaultHostName.Apply(host => $"https://{host}/");
        }

        RegisterOutputs(Urls.ToDictionary(kv => kv.Key, kv => (object?)kv.Value));
    }
}
