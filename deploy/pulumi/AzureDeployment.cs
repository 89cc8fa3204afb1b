using BitNet.Deploy.Planning;
using Pulumi;
using Docker = Pulumi.DockerBuild;
using ContainerRegistry = Pulumi.AzureNative.ContainerRegistry;
using Resources = Pulumi.AzureNative.Resources;
using Storage = Pulumi.AzureNative.Storage;
using Web = Pulumi.AzureNative.Web;

namespace BitNet.Deploy.Pulumi;

/// <summary>
/// The Azure side of a plan: resource group, container registry, storage account, the custom-handler
/// image, and per Elastic Premium tier a plan and a Linux container function app with always-ready
/// and pre-warmed instances and the keep-warm schedule as an app setting. No decisions are made here.
/// </summary>
public sealed class AzureDeployment : ComponentResource
{
    public Dictionary<string, Output<string>> Urls { get; } = [];
    public Output<string> ImageRef { get; }

    public AzureDeployment(string name, AzurePlan plan, string repositoryRoot, ComponentResourceOptions? options = null)
        : base("bitnet:deploy:AzureDeployment", name, options)
    {
        var child = new CustomResourceOptions { Parent = this };

        var group = new Resources.ResourceGroup(plan.ResourceGroup.LogicalName, new Resources.ResourceGroupArgs
        {
            ResourceGroupName = plan.ResourceGroup.Name,
            Location = plan.ResourceGroup.Location,
        }, child);

        var registry = new ContainerRegistry.Registry(plan.Registry.LogicalName, new ContainerRegistry.RegistryArgs
        {
            RegistryName = plan.Registry.Name,
            ResourceGroupName = group.Name,
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

        var image = new Docker.Image(plan.Image.LogicalName, AwsDeployment.ImageArgs(plan.Image, repositoryRoot,
            Output.Format($"{registry.LoginServer}/bitnet"), registry.LoginServer, registryUser, registryPassword), child);
        ImageRef = image.Ref;

        foreach (var tier in plan.Tiers)
        {
            var servicePlan = new Web.AppServicePlan(tier.Plan.LogicalName, new Web.AppServicePlanArgs
            {
                Name = tier.Plan.Name,
                ResourceGroupName = group.Name,
                Kind = tier.Plan.Kind,
                Reserved = tier.Plan.Reserved,
                Sku = new Web.Inputs.SkuDescriptionArgs { Name = tier.Plan.SkuName, Tier = tier.Plan.SkuTier },
                MaximumElasticWorkerCount = tier.Plan.MaximumElasticWorkerCount,
            }, child);

            var settings = new InputList<Web.Inputs.NameValuePairArgs>();
            foreach (var (key, value) in tier.App.AppSettings)
                settings.Add(new Web.Inputs.NameValuePairArgs { Name = key, Value = value });
            settings.Add(new Web.Inputs.NameValuePairArgs { Name = "AzureWebJobsStorage", Value = storageConnection });
            settings.Add(new Web.Inputs.NameValuePairArgs { Name = "DOCKER_REGISTRY_SERVER_URL", Value = Output.Format($"https://{registry.LoginServer}") });
            settings.Add(new Web.Inputs.NameValuePairArgs { Name = "DOCKER_REGISTRY_SERVER_USERNAME", Value = registryUser });
            settings.Add(new Web.Inputs.NameValuePairArgs { Name = "DOCKER_REGISTRY_SERVER_PASSWORD", Value = registryPassword });

            var app = new Web.WebApp(tier.App.LogicalName, new Web.WebAppArgs
            {
                Name = tier.App.Name,
                ResourceGroupName = group.Name,
                Kind = tier.App.Kind,
                ServerFarmId = servicePlan.Id,
                HttpsOnly = tier.App.HttpsOnly,
                SiteConfig = new Web.Inputs.SiteConfigArgs
                {
                    LinuxFxVersion = image.Ref.Apply(r => $"DOCKER|{r}"),
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
