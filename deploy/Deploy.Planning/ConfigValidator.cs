using System.Text.RegularExpressions;

namespace BitNet.Deploy.Planning;

/// <summary>
/// Checks a <see cref="DeploymentConfig"/> against the clouds' limits and our model's needs, and
/// returns every problem (empty = deployable). Only the chosen cloud's section is checked.
/// </summary>
public static partial class ConfigValidator
{
    /// <summary>The 2B model's working set is ~1.3 GB (weights 1.12 GiB + KV cache + buffers); below this a tier cannot load it.</summary>
    public const int ModelMemoryFloorMb = 1536;
    /// <summary>Memory beyond the model file a tier needs: a 4096-position KV cache (512 MiB for an 8B GQA model), buffers, the runtime.</summary>
    public const int ModelHeadroomMb = 400;

    /// <summary>The least tier memory for a model file of <paramref name="modelBytes"/> (null: the 2B4T file): its size plus headroom, at least the 2B floor.</summary>
    public static int RequiredMemoryMb(long? modelBytes) =>
        modelBytes is long bytes ? Math.Max(ModelMemoryFloorMb, (int)Math.Ceiling(bytes / 1048576.0) + ModelHeadroomMb) : ModelMemoryFloorMb;
    public const int MaxProvisionedConcurrency = 1000;

    /// <summary>The only retention values CloudWatch Logs accepts.</summary>
    public static readonly IReadOnlySet<int> LogRetentionDays = new HashSet<int>
        { 1, 3, 5, 7, 14, 30, 60, 90, 120, 150, 180, 365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653 };

    /// <summary>Azure Elastic Premium SKUs: cores and memory per instance.</summary>
    public static readonly IReadOnlyDictionary<string, (int Cores, double MemoryGb)> ElasticPremiumSkus =
        new Dictionary<string, (int, double)> { ["EP1"] = (1, 3.5), ["EP2"] = (2, 7), ["EP3"] = (4, 14) };

    private static readonly string[] HttpMethods = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "*"];

    public static IReadOnlyList<ConfigError> Validate(DeploymentConfig config)
    {
        var errors = new List<ConfigError>();
        void Error(string path, string message) => errors.Add(new ConfigError(path, message));

        if (!ProjectPattern().IsMatch(config.Project))
            Error("project", $"'{config.Project}' must start with a letter and use only letters, digits and '-' (it prefixes every resource name)");
        if (!ProjectPattern().IsMatch(config.Stack))
            Error("stack", $"'{config.Stack}' must start with a letter and use only letters, digits and '-'");
        ValidateModelSource(config.ModelSource, Error);
        if (!ImageTagPattern().IsMatch(config.ImageTag))
            Error("imageTag", $"'{config.ImageTag}' is not a valid image tag (letters, digits, '_', '.', '-'; at most 128; not starting with '.' or '-')");

        if (errors.Count == 0) // names derive from project/stack; checking them twice would repeat the same fault
        {
            if (config.Cloud == Cloud.Aws) ValidateAwsNames(config, Error);
            else ValidateAzureNames(config, Error);
        }
        if (config.Cloud == Cloud.Aws) ValidateAws(config.Aws, config.ModelBytes, Error);
        else ValidateAzure(config.Azure, Error);
        return errors;
    }

    /// <summary>Throws <see cref="DeploymentConfigException"/> listing every problem, or returns.</summary>
    public static void ThrowIfInvalid(DeploymentConfig config)
    {
        var errors = Validate(config);
        if (errors.Count > 0)
            throw new DeploymentConfigException(errors);
    }

    private static void ValidateModelSource(string source, Action<string, string> error)
    {
        if (string.IsNullOrWhiteSpace(source))
        {
            error("modelSource", "is empty; give a path inside the Docker build context or an https:// URL of the GGUF file");
            return;
        }
        if (source.Contains("://", StringComparison.Ordinal))
        {
            if (!Uri.TryCreate(source, UriKind.Absolute, out var uri) || uri.Scheme != "https")
                error("modelSource", $"'{source}' must be an https:// URL (or a path inside the build context)");
            return;
        }
        if (Path.IsPathRooted(source) || source.Replace('\\', '/').Split('/').Contains(".."))
            error("modelSource", $"'{source}' must be a relative path inside the Docker build context (the repository root), without '..'");
    }

    private static void ValidateAws(AwsConfig aws, long? modelBytes, Action<string, string> error)
    {
        if (!AwsRegionPattern().IsMatch(aws.Region))
            error("aws.region", $"'{aws.Region}' is not an AWS region name like us-east-1");
        if (aws.TimeoutSeconds is < 1 or > 900)
            error("aws.timeoutSeconds", $"{aws.TimeoutSeconds} is outside Lambda's 1-900 seconds");
        if (aws.EphemeralStorageMb is < 512 or > 10_240)
            error("aws.ephemeralStorageMb", $"{aws.EphemeralStorageMb} is outside Lambda's 512-10240 MB");
        if (aws.KeepWarmRateMinutes is < 1 or > 1440)
            error("aws.keepWarmRateMinutes", $"{aws.KeepWarmRateMinutes} must be 1-1440 minutes (Lambda recycles idle environments after minutes, so a ping rarer than daily warms nothing)");
        if (!LogRetentionDays.Contains(aws.LogRetentionDays))
            error("aws.logRetentionDays", $"{aws.LogRetentionDays} is not a CloudWatch retention value ({string.Join(", ", LogRetentionDays.Order())})");
        if (aws.KeepImages is < 1 or > 1000)
            error("aws.keepImages", $"{aws.KeepImages} must be 1-1000 images");
        ValidateCors(aws.Cors, "aws.cors", error);

        if (aws.Tiers.Count == 0)
            error("aws.tiers", "no memory tiers; configure at least one, e.g. [2048]");
        for (int i = 0; i < aws.Tiers.Count; i++)
        {
            var tier = aws.Tiers[i];
            string path = $"aws.tiers[{i}]";
            if (tier.MemoryMb is < LambdaSizing.MinMemoryMb or > LambdaSizing.MaxMemoryMb)
                error($"{path}.memoryMb", $"{tier.MemoryMb} MB is outside Lambda's {LambdaSizing.MinMemoryMb}-{LambdaSizing.MaxMemoryMb} MB");
            else if (tier.MemoryMb < RequiredMemoryMb(modelBytes))
                error($"{path}.memoryMb", modelBytes is long bytes
                    ? $"{tier.MemoryMb} MB cannot hold the model ({bytes / 1e9:F2} GB file + working memory); use at least {RequiredMemoryMb(bytes)} MB"
                    : $"{tier.MemoryMb} MB cannot hold the model (~1.3 GB working set); use at least {ModelMemoryFloorMb} MB");
            if (tier.ProvisionedConcurrency is < 0 or > MaxProvisionedConcurrency)
                error($"{path}.provisionedConcurrency", $"{tier.ProvisionedConcurrency} must be 0 (off) to {MaxProvisionedConcurrency}");
            if (aws.Tiers.Take(i).Any(t => t.MemoryMb == tier.MemoryMb))
                error($"{path}.memoryMb", $"{tier.MemoryMb} MB is configured twice; each tier is one function named by its memory");
        }
    }

    private static void ValidateCors(CorsConfig cors, string path, Action<string, string> error)
    {
        if (cors.AllowOrigins.Count == 0)
            error($"{path}.allowOrigins", "is empty; use [\"*\"] or list the origins (https://example.com)");
        foreach (string origin in cors.AllowOrigins)
            if (origin != "*" && !(Uri.TryCreate(origin, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https" && uri.AbsolutePath == "/"))
                error($"{path}.allowOrigins", $"'{origin}' is not '*' or an origin like https://example.com");
        foreach (string method in cors.AllowMethods)
            if (!HttpMethods.Contains(method))
                error($"{path}.allowMethods", $"'{method}' is not one of {string.Join(", ", HttpMethods)}");
        if (cors.MaxAgeSeconds is < 0 or > 86_400)
            error($"{path}.maxAgeSeconds", $"{cors.MaxAgeSeconds} must be 0-86400");
        if (cors.AllowCredentials && cors.AllowOrigins.Contains("*"))
            error($"{path}.allowCredentials", "browsers refuse credentials with origin '*'; list the origins explicitly");
    }

    private static void ValidateAzure(AzureConfig azure, Action<string, string> error)
    {
        if (!AzureLocationPattern().IsMatch(azure.Location))
            error("azure.location", $"'{azure.Location}' is not an Azure location name like eastus or westeurope");
        if (!SuffixPattern().IsMatch(azure.NameSuffix))
            error("azure.nameSuffix", $"'{azure.NameSuffix}' must be at most 8 lowercase letters and digits");
        if (azure.KeepWarm)
            ValidateNcrontab(azure.KeepWarmSchedule, error);
        foreach (string origin in azure.CorsAllowedOrigins)
            if (origin != "*" && !(Uri.TryCreate(origin, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"))
                error("azure.corsAllowedOrigins", $"'{origin}' is not '*' or an origin like https://example.com");

        if (azure.Tiers.Count == 0)
            error("azure.tiers", "no plans; configure at least one of EP1, EP2, EP3");
        for (int i = 0; i < azure.Tiers.Count; i++)
        {
            var tier = azure.Tiers[i];
            string path = $"azure.tiers[{i}]";
            if (!ElasticPremiumSkus.ContainsKey(tier.Sku))
                error($"{path}.sku", $"'{tier.Sku}' is not an Elastic Premium SKU (EP1, EP2, EP3); the model needs a container plan");
            else if (azure.Tiers.Take(i).Any(t => t.Sku == tier.Sku))
                error($"{path}.sku", $"{tier.Sku} is configured twice; each tier is one plan and app named by its SKU");
            if (tier.AlwaysReady is < 1 or > 20)
                error($"{path}.alwaysReady", $"{tier.AlwaysReady} must be 1-20 (Premium always bills at least one instance)");
            if (tier.PreWarmed < 0)
                error($"{path}.preWarmed", $"{tier.PreWarmed} must be 0 or more");
            if (tier.MaximumElasticWorkers is < 1 or > 100)
                error($"{path}.maximumElasticWorkers", $"{tier.MaximumElasticWorkers} must be 1-100");
            else if (tier.MaximumElasticWorkers < tier.AlwaysReady)
                error($"{path}.maximumElasticWorkers", $"{tier.MaximumElasticWorkers} is below alwaysReady ({tier.AlwaysReady})");
            else if (tier.PreWarmed > tier.MaximumElasticWorkers)
                error($"{path}.preWarmed", $"{tier.PreWarmed} exceeds maximumElasticWorkers ({tier.MaximumElasticWorkers})");
        }
    }

    private static void ValidateNcrontab(string schedule, Action<string, string> error)
    {
        string[] fields = schedule.Split(' ', StringSplitOptions.RemoveEmptyEntries);
        if (fields.Length == 5)
            error("azure.keepWarmSchedule", $"'{schedule}' has 5 fields; Azure timers use NCRONTAB with 6 (seconds first), e.g. '0 */5 * * * *'");
        else if (fields.Length != 6 || fields.Any(f => !CronFieldPattern().IsMatch(f)))
            error("azure.keepWarmSchedule", $"'{schedule}' is not a 6-field NCRONTAB expression like '0 */5 * * * *'");
    }

    private static void ValidateAwsNames(DeploymentConfig config, Action<string, string> error)
    {
        void Check(ResourceNames.Rule rule, string name, string path) { if (rule.Check(name) is { } message) error(path, message); }
        Check(ResourceNames.EcrRepositoryRule, ResourceNames.EcrRepository(config), "project/stack");
        Check(ResourceNames.IamRoleRule, ResourceNames.LambdaRole(config), "project/stack");
        foreach (var tier in config.Aws.Tiers.DistinctBy(t => t.MemoryMb))
        {
            Check(ResourceNames.LambdaFunctionRule, ResourceNames.LambdaFunction(config, tier.MemoryMb), "project/stack");
            Check(ResourceNames.EventRuleRule, ResourceNames.KeepWarmRule(config, tier.MemoryMb), "project/stack");
            Check(ResourceNames.LogGroupRule, ResourceNames.LogGroup(config, tier.MemoryMb), "project/stack");
        }
    }

    private static void ValidateAzureNames(DeploymentConfig config, Action<string, string> error)
    {
        void Check(ResourceNames.Rule rule, string name, string path) { if (rule.Check(name) is { } message) error(path, message); }
        Check(ResourceNames.ResourceGroupRule, ResourceNames.ResourceGroup(config), "project/stack");
        Check(ResourceNames.ContainerRegistryRule, ResourceNames.ContainerRegistry(config), "project/stack/azure.nameSuffix");
        Check(ResourceNames.StorageAccountRule, ResourceNames.StorageAccount(config), "project/stack/azure.nameSuffix");
        foreach (var tier in config.Azure.Tiers.DistinctBy(t => t.Sku))
        {
            Check(ResourceNames.AppServicePlanRule, ResourceNames.AppServicePlan(config, tier.Sku), "project/stack");
            Check(ResourceNames.FunctionAppRule, ResourceNames.FunctionApp(config, tier.Sku), "project/stack/azure.nameSuffix");
        }
    }

    [GeneratedRegex("^[A-Za-z][A-Za-z0-9-]*$")] private static partial Regex ProjectPattern();
    [GeneratedRegex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")] private static partial Regex ImageTagPattern();
    [GeneratedRegex(@"^[a-z]{2}(-gov|-iso[a-z]*)?-[a-z]+-\d+$")] private static partial Regex AwsRegionPattern();
    [GeneratedRegex("^[a-z][a-z0-9]+$")] private static partial Regex AzureLocationPattern();
    [GeneratedRegex("^[a-z0-9]{0,8}$")] private static partial Regex SuffixPattern();
    [GeneratedRegex(@"^(?:\*|\d+(?:-\d+)?|[A-Za-z]{3}(?:-[A-Za-z]{3})?)(?:/\d+)?(?:,(?:\*|\d+(?:-\d+)?|[A-Za-z]{3}(?:-[A-Za-z]{3})?)(?:/\d+)?)*$")] private static partial Regex CronFieldPattern();
}
