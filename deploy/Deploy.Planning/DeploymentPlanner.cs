using System.Text.Json;

namespace BitNet.Deploy.Planning;

/// <summary>
/// Turns a validated configuration into the exact resources to create. Every decision lives here
/// (names, which resources exist for which settings, policies, schedules, app settings); the Pulumi
/// program only maps these records onto SDK types.
/// </summary>
public static class DeploymentPlanner
{
    /// <summary>Where the Lambda image keeps the model (see containers/Dockerfile.lambda).</summary>
    public const string LambdaModelPath = "/opt/bitnet/model.gguf";
    /// <summary>Where the Azure image keeps the model (see containers/Dockerfile.azure).</summary>
    public const string AzureModelPath = "/home/site/wwwroot/model.gguf";
    public const string LambdaBasicExecutionPolicyArn = "arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole";

    public static DeploymentPlan Plan(DeploymentConfig config)
    {
        ConfigValidator.ThrowIfInvalid(config);
        return config.Cloud == Cloud.Aws
            ? new DeploymentPlan(config, PlanAws(config), null)
            : new DeploymentPlan(config, null, PlanAzure(config));
    }

    private static ImagePlan Image(DeploymentConfig config, string dockerfile, string platform) => new(
        LogicalName: "image",
        Dockerfile: dockerfile,
        Context: ".",
        Platform: platform,
        Tag: config.ImageTag,
        BuildArgs: new SortedDictionary<string, string> { ["MODEL_SOURCE"] = config.ModelSource });

    // --------------------------------------------------------------------------------------------
    // AWS
    // --------------------------------------------------------------------------------------------

    private static AwsPlan PlanAws(DeploymentConfig config)
    {
        AwsConfig aws = config.Aws;
        string arch = aws.Architecture == LambdaArchitecture.Arm64 ? "arm64" : "x86_64";
        string platform = aws.Architecture == LambdaArchitecture.Arm64 ? "linux/arm64" : "linux/amd64";

        var repository = new EcrRepositoryPlan("repository", ResourceNames.EcrRepository(config), "MUTABLE", ForceDelete: true, ScanOnPush: true);
        var lifecycle = new EcrLifecyclePolicyPlan("repository-lifecycle", LifecyclePolicyJson(aws.KeepImages));
        var role = new IamRolePlan("lambda-role", ResourceNames.LambdaRole(config), AssumeRolePolicyJson("lambda.amazonaws.com"),
            [LambdaBasicExecutionPolicyArn]);
        var tiers = aws.Tiers.Select(t => PlanLambdaTier(config, t, arch)).ToList();
        return new AwsPlan(aws.Region, repository, lifecycle, Image(config, "containers/Dockerfile.lambda", platform), role, tiers);
    }

    private static LambdaTierPlan PlanLambdaTier(DeploymentConfig config, LambdaTierConfig tier, string arch)
    {
        AwsConfig aws = config.Aws;
        string t = ResourceNames.LambdaTier(tier.MemoryMb);
        string functionName = ResourceNames.LambdaFunction(config, tier.MemoryMb);
        var logGroup = new LogGroupPlan($"{t}-logs", ResourceNames.LogGroup(config, tier.MemoryMb), aws.LogRetentionDays);
        var environment = new SortedDictionary<string, string>
        {
            ["BITNET_MODEL"] = LambdaModelPath,
            ["BITNET_THREADS"] = LambdaSizing.Threads(tier.MemoryMb).ToString(System.Globalization.CultureInfo.InvariantCulture),
            // Lambda does not tell the runtime the URL's invoke mode; the host must be told it streams.
            ["BITNET_LAMBDA_STREAMING"] = "true",
        };
        var function = new LambdaFunctionPlan($"{t}-function", functionName, tier.MemoryMb, aws.TimeoutSeconds, aws.EphemeralStorageMb,
            arch, "Image", Publish: true, environment, logGroup.Name);
        var alias = new LambdaAliasPlan($"{t}-alias", ResourceNames.AliasName);
        ProvisionedConcurrencyPlan? pc = tier.ProvisionedConcurrency > 0
            ? new ProvisionedConcurrencyPlan($"{t}-provisioned", alias.Name, tier.ProvisionedConcurrency)
            : null;

        string authType = aws.UrlAuth == UrlAuth.None ? "NONE" : "AWS_IAM";
        var url = new FunctionUrlPlan($"{t}-url", alias.Name, authType, "RESPONSE_STREAM", aws.Cors);

        // A public URL needs a resource policy letting anyone call it. Since October 2025 new URLs need
        // both actions: InvokeFunctionUrl (scoped to auth type NONE) and InvokeFunction (only via the URL).
        // With AWS_IAM, callers are authorised by their own IAM policies, so no public statement is added.
        IReadOnlyList<LambdaPermissionPlan> urlPermissions = aws.UrlAuth == UrlAuth.None
            ?
            [
                new($"{t}-url-public", "FunctionURLAllowPublicAccess", "lambda:InvokeFunctionUrl", "*", alias.Name, FunctionUrlAuthType: "NONE"),
                new($"{t}-url-invoke", "FunctionURLAllowInvokeAction", "lambda:InvokeFunction", "*", alias.Name, InvokedViaFunctionUrl: true),
            ]
            : [];

        KeepWarmPlan? keepWarm = null;
        if (KeepWarm.IsOn(tier))
        {
            string ruleName = ResourceNames.KeepWarmRule(config, tier.MemoryMb);
            keepWarm = new KeepWarmPlan(
                new KeepWarmRulePlan($"{t}-keep-warm", ruleName, KeepWarm.RateExpression(aws.KeepWarmRateMinutes),
                    $"Keep-warm ping for {functionName}:{alias.Name} every {aws.KeepWarmRateMinutes} min"),
                new KeepWarmTargetPlan($"{t}-keep-warm-target", "keep-warm", KeepWarm.LambdaPayload),
                new LambdaPermissionPlan($"{t}-keep-warm-permission", "AllowKeepWarmRule", "lambda:InvokeFunction", "events.amazonaws.com",
                    alias.Name, SourceArnFromKeepWarmRule: true));
        }
        return new LambdaTierPlan(t, LambdaSizing.VcpuShare(tier.MemoryMb), logGroup, function, alias, pc, url, urlPermissions, keepWarm);
    }

    /// <summary>ECR lifecycle policy: expire untagged images after a day, keep the newest N images.</summary>
    public static string LifecyclePolicyJson(int keepImages) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["rules"] = new object[]
        {
            new Dictionary<string, object>
            {
                ["rulePriority"] = 1,
                ["description"] = "Expire untagged images after 1 day",
                ["selection"] = new Dictionary<string, object> { ["tagStatus"] = "untagged", ["countType"] = "sinceImagePushed", ["countUnit"] = "days", ["countNumber"] = 1 },
                ["action"] = new Dictionary<string, object> { ["type"] = "expire" },
            },
            new Dictionary<string, object>
            {
                ["rulePriority"] = 2,
                ["description"] = $"Keep the newest {keepImages} images",
                ["selection"] = new Dictionary<string, object> { ["tagStatus"] = "any", ["countType"] = "imageCountMoreThan", ["countNumber"] = keepImages },
                ["action"] = new Dictionary<string, object> { ["type"] = "expire" },
            },
        },
    }, PlanJsonContext.Default.DictionaryStringObject);

    /// <summary>Trust policy letting one AWS service assume the role.</summary>
    public static string AssumeRolePolicyJson(string service) => JsonSerializer.Serialize(new Dictionary<string, object>
    {
        ["Version"] = "2012-10-17",
        ["Statement"] = new object[]
        {
            new Dictionary<string, object>
            {
                ["Effect"] = "Allow",
                ["Principal"] = new Dictionary<string, object> { ["Service"] = service },
                ["Action"] = "sts:AssumeRole",
            },
        },
    }, PlanJsonContext.Default.DictionaryStringObject);

    // --------------------------------------------------------------------------------------------
    // Azure
    // --------------------------------------------------------------------------------------------

    private static AzurePlan PlanAzure(DeploymentConfig config)
    {
        AzureConfig azure = config.Azure;
        var group = new ResourceGroupPlan("resource-group", ResourceNames.ResourceGroup(config), azure.Location);
        var registry = new ContainerRegistryPlan("registry", ResourceNames.ContainerRegistry(config), "Basic", AdminUserEnabled: true,
            ImageRepository: config.Project.ToLowerInvariant());
        var storage = new StorageAccountPlan("storage", ResourceNames.StorageAccount(config), "StorageV2", "Standard_LRS");
        // Elastic Premium Linux workers are x86-64.
        var image = Image(config, "containers/Dockerfile.azure", "linux/amd64");
        var tiers = azure.Tiers.Select(t => PlanAzureTier(config, t)).ToList();
        return new AzurePlan(group, registry, storage, image, tiers);
    }

    private static AzureTierPlan PlanAzureTier(DeploymentConfig config, AzureTierConfig tier)
    {
        AzureConfig azure = config.Azure;
        string t = ResourceNames.AzureTier(tier.Sku);
        var (cores, memoryGb) = ConfigValidator.ElasticPremiumSkus[tier.Sku];
        var plan = new AppServicePlanPlan($"{t}-plan", ResourceNames.AppServicePlan(config, tier.Sku), "elastic", tier.Sku, "ElasticPremium",
            Reserved: true, tier.MaximumElasticWorkers);
        var settings = new SortedDictionary<string, string>
        {
            ["FUNCTIONS_EXTENSION_VERSION"] = "~4",
            // The host is a Functions .NET isolated worker (containers/Dockerfile.azure).
            ["FUNCTIONS_WORKER_RUNTIME"] = "dotnet-isolated",
            ["WEBSITES_ENABLE_APP_SERVICE_STORAGE"] = "false",
            ["BITNET_MODEL"] = AzureModelPath,
            ["BITNET_THREADS"] = cores.ToString(System.Globalization.CultureInfo.InvariantCulture),
            // The timer function must always have a valid schedule; "off" is one tick a year.
            [KeepWarm.AzureScheduleSetting] = azure.KeepWarm ? azure.KeepWarmSchedule : KeepWarm.AzureScheduleWhenOff,
        };
        var app = new FunctionAppPlan($"{t}-app", ResourceNames.FunctionApp(config, tier.Sku), "functionapp,linux,container",
            tier.AlwaysReady, tier.PreWarmed, settings, azure.CorsAllowedOrigins, "/health", HttpsOnly: true);
        return new AzureTierPlan(t, cores, memoryGb, plan, app);
    }
}
