namespace BitNet.Deploy.Planning;

/// <summary>
/// One resource the Pulumi program will create: its Pulumi type token and logical (URN) name.
/// The typed records below carry the properties; this is the flat list a reader (or a test) checks.
/// </summary>
public sealed record PlannedResource(string Type, string LogicalName);

/// <summary>A container image built from a Dockerfile and pushed to the stack's registry.</summary>
public sealed record ImagePlan(string LogicalName, string Dockerfile, string Context, string Platform, string Tag,
    IReadOnlyDictionary<string, string> BuildArgs)
{
    /// <summary>The tag pushed to the registry: <c>repository:tag</c>.</summary>
    public string TagReference(string repositoryUrl) => $"{repositoryUrl}:{Tag}";

    /// <summary>
    /// What the functions run: <c>repository@sha256:...</c>. A digest makes every rebuilt image a new
    /// function configuration (a moving tag would not), and Lambda refuses <c>repository:tag@digest</c>.
    /// </summary>
    public static string DigestReference(string repositoryUrl, string digest) => $"{repositoryUrl}@{digest}";
}

// ------------------------------------------------------------------------------------------------
// AWS
// ------------------------------------------------------------------------------------------------

public sealed record EcrRepositoryPlan(string LogicalName, string Name, string ImageTagMutability, bool ForceDelete, bool ScanOnPush);

public sealed record EcrLifecyclePolicyPlan(string LogicalName, string PolicyJson);

/// <summary>The execution role every tier shares, with its trust policy and managed policies.</summary>
public sealed record IamRolePlan(string LogicalName, string Name, string AssumeRolePolicyJson, IReadOnlyList<string> ManagedPolicyArns);

public sealed record LambdaFunctionPlan(string LogicalName, string Name, int MemoryMb, int TimeoutSeconds, int EphemeralStorageMb,
    string Architecture, string PackageType, bool Publish, IReadOnlyDictionary<string, string> Environment, string LogGroupName);

public sealed record LambdaAliasPlan(string LogicalName, string Name);

/// <summary>Provisioned concurrency on the alias (never on $LATEST).</summary>
public sealed record ProvisionedConcurrencyPlan(string LogicalName, string Qualifier, int ProvisionedConcurrentExecutions);

public sealed record FunctionUrlPlan(string LogicalName, string Qualifier, string AuthorizationType, string InvokeMode, CorsConfig Cors);

/// <summary>
/// A statement in the function's resource policy. <see cref="SourceArnFromKeepWarmRule"/> means the
/// Pulumi layer fills <c>SourceArn</c> from the rule it created.
/// </summary>
public sealed record LambdaPermissionPlan(string LogicalName, string StatementId, string Action, string Principal, string Qualifier,
    string? FunctionUrlAuthType = null, bool? InvokedViaFunctionUrl = null, bool SourceArnFromKeepWarmRule = false);

public sealed record KeepWarmRulePlan(string LogicalName, string Name, string ScheduleExpression, string Description);

/// <summary>The rule's target: the alias ARN (so the alias's environments are warmed), with a fixed input.</summary>
public sealed record KeepWarmTargetPlan(string LogicalName, string TargetId, string InputJson);

public sealed record KeepWarmPlan(KeepWarmRulePlan Rule, KeepWarmTargetPlan Target, LambdaPermissionPlan Permission);

public sealed record LogGroupPlan(string LogicalName, string Name, int RetentionInDays);

public sealed record LambdaTierPlan(string Tier, double VcpuShare, LogGroupPlan LogGroup, LambdaFunctionPlan Function, LambdaAliasPlan Alias,
    ProvisionedConcurrencyPlan? ProvisionedConcurrency, FunctionUrlPlan Url, IReadOnlyList<LambdaPermissionPlan> UrlPermissions,
    KeepWarmPlan? KeepWarm)
{
    public string UrlOutputName => $"url-{Tier}";
}

public sealed record AwsPlan(string Region, EcrRepositoryPlan Repository, EcrLifecyclePolicyPlan LifecyclePolicy, ImagePlan Image,
    IamRolePlan Role, IReadOnlyList<LambdaTierPlan> Tiers);

// ------------------------------------------------------------------------------------------------
// Azure
// ------------------------------------------------------------------------------------------------

public sealed record ResourceGroupPlan(string LogicalName, string Name, string Location);

/// <summary>The stack's registry; the image goes to <see cref="ImageRepository"/> inside it.</summary>
public sealed record ContainerRegistryPlan(string LogicalName, string Name, string Sku, bool AdminUserEnabled, string ImageRepository)
{
    public static string RepositoryUrl(string loginServer, string imageRepository) => $"{loginServer}/{imageRepository}";
}

public sealed record StorageAccountPlan(string LogicalName, string Name, string Kind, string Sku);

public sealed record AppServicePlanPlan(string LogicalName, string Name, string Kind, string SkuName, string SkuTier, bool Reserved,
    int MaximumElasticWorkerCount);

/// <summary>
/// A Linux container function app. <see cref="AppSettings"/> holds the literal settings; the Pulumi
/// layer adds the ones that come from other resources (<see cref="AzurePlan.SettingsFromResources"/>).
/// </summary>
public sealed record FunctionAppPlan(string LogicalName, string Name, string Kind, int MinimumElasticInstanceCount, int PreWarmedInstanceCount,
    IReadOnlyDictionary<string, string> AppSettings, IReadOnlyList<string> CorsAllowedOrigins, string HealthCheckPath, bool HttpsOnly)
{
    public string HostName => $"{Name}.azurewebsites.net";

    /// <summary>The site's container: <c>DOCKER|image</c>.</summary>
    public static string LinuxFxVersion(string imageReference) => $"DOCKER|{imageReference}";
}

public sealed record AzureTierPlan(string Tier, int Cores, double MemoryGb, AppServicePlanPlan Plan, FunctionAppPlan App)
{
    public string UrlOutputName => $"url-{Tier}";
}

public sealed record AzurePlan(ResourceGroupPlan ResourceGroup, ContainerRegistryPlan Registry, StorageAccountPlan Storage, ImagePlan Image,
    IReadOnlyList<AzureTierPlan> Tiers)
{
    /// <summary>App settings whose values only exist once other resources do (connection strings, registry credentials).</summary>
    public static IReadOnlyList<string> SettingsFromResources { get; } =
        ["AzureWebJobsStorage", "DOCKER_REGISTRY_SERVER_URL", "DOCKER_REGISTRY_SERVER_USERNAME", "DOCKER_REGISTRY_SERVER_PASSWORD"];
}

/// <summary>The whole deployment for one stack: exactly one of <see cref="Aws"/> / <see cref="Azure"/> is set.</summary>
public sealed record DeploymentPlan(DeploymentConfig Config, AwsPlan? Aws, AzurePlan? Azure)
{
    /// <summary>Every resource in creation order, with Pulumi type tokens.</summary>
    public IReadOnlyList<PlannedResource> Resources => [.. (Aws is not null ? AwsResources(Aws) : AzureResources(Azure!))];

    /// <summary>Stack output names: one URL per tier.</summary>
    public IReadOnlyList<string> Outputs =>
        Aws is not null ? [.. Aws.Tiers.Select(t => t.UrlOutputName)] : [.. Azure!.Tiers.Select(t => t.UrlOutputName)];

    private static IEnumerable<PlannedResource> AwsResources(AwsPlan aws)
    {
        yield return new("aws:ecr/repository:Repository", aws.Repository.LogicalName);
        yield return new("aws:ecr/lifecyclePolicy:LifecyclePolicy", aws.LifecyclePolicy.LogicalName);
        yield return new("docker-build:index:Image", aws.Image.LogicalName);
        yield return new("aws:iam/role:Role", aws.Role.LogicalName);
        for (int i = 0; i < aws.Role.ManagedPolicyArns.Count; i++)
            yield return new("aws:iam/rolePolicyAttachment:RolePolicyAttachment", $"{aws.Role.LogicalName}-policy-{i}");
        foreach (var tier in aws.Tiers)
        {
            yield return new("aws:cloudwatch/logGroup:LogGroup", tier.LogGroup.LogicalName);
            yield return new("aws:lambda/function:Function", tier.Function.LogicalName);
            yield return new("aws:lambda/alias:Alias", tier.Alias.LogicalName);
            if (tier.ProvisionedConcurrency is { } pc)
                yield return new("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig", pc.LogicalName);
            yield return new("aws:lambda/functionUrl:FunctionUrl", tier.Url.LogicalName);
            foreach (var permission in tier.UrlPermissions)
                yield return new("aws:lambda/permission:Permission", permission.LogicalName);
            if (tier.KeepWarm is { } warm)
            {
                yield return new("aws:cloudwatch/eventRule:EventRule", warm.Rule.LogicalName);
                yield return new("aws:cloudwatch/eventTarget:EventTarget", warm.Target.LogicalName);
                yield return new("aws:lambda/permission:Permission", warm.Permission.LogicalName);
            }
        }
    }

    private static IEnumerable<PlannedResource> AzureResources(AzurePlan azure)
    {
        yield return new("azure-native:resources:ResourceGroup", azure.ResourceGroup.LogicalName);
        yield return new("azure-native:containerregistry:Registry", azure.Registry.LogicalName);
        yield return new("azure-native:storage:StorageAccount", azure.Storage.LogicalName);
        yield return new("docker-build:index:Image", azure.Image.LogicalName);
        foreach (var tier in azure.Tiers)
        {
            yield return new("azure-native:web:AppServicePlan", tier.Plan.LogicalName);
            yield return new("azure-native:web:WebApp", tier.App.LogicalName);
        }
    }
}
