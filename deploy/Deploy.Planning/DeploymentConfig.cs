namespace BitNet.Deploy.Planning;

/// <summary>Which cloud a stack deploys to.</summary>
public enum Cloud { Aws, Azure }

/// <summary>Lambda instruction set; arm64 (Graviton) is cheaper per GB-s and is the default.</summary>
public enum LambdaArchitecture { Arm64, X86_64 }

/// <summary>Function URL authentication: public (NONE) or SigV4-signed (AWS_IAM).</summary>
public enum UrlAuth { None, AwsIam }

/// <summary>CORS answered by the platform (Lambda function URL or Azure site config), not by our code.</summary>
public sealed record CorsConfig
{
    public IReadOnlyList<string> AllowOrigins { get; init; } = ["*"];
    public IReadOnlyList<string> AllowMethods { get; init; } = ["GET", "POST"];
    public IReadOnlyList<string> AllowHeaders { get; init; } = ["content-type", "authorization"];
    public IReadOnlyList<string> ExposeHeaders { get; init; } = [];
    public bool AllowCredentials { get; init; }
    public int MaxAgeSeconds { get; init; } = 3600;
}

/// <summary>
/// One Lambda memory tier. Memory buys CPU: 1,769 MB = 1 vCPU, up to 6 vCPU at 10,240 MB.
/// <see cref="KeepWarm"/> null means "on unless provisioned concurrency already keeps it warm".
/// </summary>
public sealed record LambdaTierConfig(int MemoryMb, int ProvisionedConcurrency = 0, bool? KeepWarm = null);

/// <summary>Everything the AWS stack can be told; defaults are a sensible first deployment.</summary>
public sealed record AwsConfig
{
    public string Region { get; init; } = "us-east-1";
    public LambdaArchitecture Architecture { get; init; } = LambdaArchitecture.Arm64;
    public int TimeoutSeconds { get; init; } = 900;
    public int EphemeralStorageMb { get; init; } = 512;
    public UrlAuth UrlAuth { get; init; } = UrlAuth.None;
    public CorsConfig Cors { get; init; } = new();
    public int KeepWarmRateMinutes { get; init; } = 5;
    public int LogRetentionDays { get; init; } = 14;
    /// <summary>How many images the ECR lifecycle policy keeps.</summary>
    public int KeepImages { get; init; } = 5;
    public IReadOnlyList<LambdaTierConfig> Tiers { get; init; } = [new(2048), new(4096), new(10240)];
}

/// <summary>
/// One Azure Elastic Premium tier. Always-ready instances are billed all the time and never cold;
/// pre-warmed instances are the buffer the platform starts ahead of scale-out.
/// </summary>
public sealed record AzureTierConfig(string Sku, int AlwaysReady = 1, int PreWarmed = 1, int MaximumElasticWorkers = 3);

/// <summary>Everything the Azure stack can be told.</summary>
public sealed record AzureConfig
{
    public string Location { get; init; } = "eastus";
    /// <summary>
    /// Appended to the globally unique names (registry, storage account, function apps) so two people
    /// can deploy the same stack name; lowercase letters and digits.
    /// </summary>
    public string NameSuffix { get; init; } = "";
    public bool KeepWarm { get; init; } = true;
    /// <summary>NCRONTAB (6 fields, seconds first) for the keep-warm timer function.</summary>
    public string KeepWarmSchedule { get; init; } = "0 */5 * * * *";
    public IReadOnlyList<string> CorsAllowedOrigins { get; init; } = ["*"];
    public IReadOnlyList<AzureTierConfig> Tiers { get; init; } = [new("EP1"), new("EP2"), new("EP3")];
}

/// <summary>
/// A stack's configuration. <see cref="ModelSource"/> is the build argument that bakes the model
/// into the image: a path inside the Docker build context or an https URL.
/// </summary>
public sealed record DeploymentConfig
{
    public string Project { get; init; } = "bitnet";
    public string Stack { get; init; } = "dev";
    public Cloud Cloud { get; init; } = Cloud.Aws;
    public string ModelSource { get; init; } = "models/ggml-model-i2_s.gguf";
    /// <summary>The model file's size in bytes, for the memory check; null = the published 2B4T file's.</summary>
    public long? ModelBytes { get; init; }
    /// <summary>Image tag pushed to the registry.</summary>
    public string ImageTag { get; init; } = "latest";
    public AwsConfig Aws { get; init; } = new();
    public AzureConfig Azure { get; init; } = new();
}
