using BitNet.Deploy.Planning;

namespace BitNet.Deploy.Tests;

public sealed class ConfigValidationTests
{
    private static DeploymentConfig Aws(Func<AwsConfig, AwsConfig> change) => new() { Aws = change(new AwsConfig()) };
    private static DeploymentConfig Azure(Func<AzureConfig, AzureConfig> change) => new() { Cloud = Cloud.Azure, Azure = change(new AzureConfig()) };

    public static TheoryData<string, DeploymentConfig, string, string> Cases() => new()
    {
        { "bad project", new DeploymentConfig { Project = "9lives" }, "project", "start with a letter" },
        { "bad stack", new DeploymentConfig { Stack = "dev_1" }, "stack", "letters, digits and '-'" },
        { "empty model", new DeploymentConfig { ModelSource = " " }, "modelSource", "is empty" },
        { "http model", new DeploymentConfig { ModelSource = "http://example.com/m.gguf" }, "modelSource", "https://" },
        { "absolute model", new DeploymentConfig { ModelSource = "/models/m.gguf" }, "modelSource", "relative path" },
        { "escaping model", new DeploymentConfig { ModelSource = "../m.gguf" }, "modelSource", "without '..'" },
        { "bad tag", new DeploymentConfig { ImageTag = "-x" }, "imageTag", "not a valid image tag" },
        { "long names", new DeploymentConfig { Project = "p" + new string('a', 60) }, "project/stack", "1-64" },
        { "region", Aws(a => a with { Region = "Virginia" }), "aws.region", "us-east-1" },
        { "timeout 0", Aws(a => a with { TimeoutSeconds = 0 }), "aws.timeoutSeconds", "1-900" },
        { "timeout 901", Aws(a => a with { TimeoutSeconds = 901 }), "aws.timeoutSeconds", "1-900" },
        { "storage small", Aws(a => a with { EphemeralStorageMb = 511 }), "aws.ephemeralStorageMb", "512-10240" },
        { "storage big", Aws(a => a with { EphemeralStorageMb = 10241 }), "aws.ephemeralStorageMb", "512-10240" },
        { "rate 0", Aws(a => a with { KeepWarmRateMinutes = 0 }), "aws.keepWarmRateMinutes", "1-1440" },
        { "retention", Aws(a => a with { LogRetentionDays = 10 }), "aws.logRetentionDays", "CloudWatch retention" },
        { "keep images", Aws(a => a with { KeepImages = 0 }), "aws.keepImages", "1-1000" },
        { "no tiers", Aws(a => a with { Tiers = [] }), "aws.tiers", "at least one" },
        { "memory low", Aws(a => a with { Tiers = [new(127)] }), "aws.tiers[0].memoryMb", "128-10240" },
        { "memory high", Aws(a => a with { Tiers = [new(10241)] }), "aws.tiers[0].memoryMb", "128-10240" },
        { "memory below model", Aws(a => a with { Tiers = [new(1024)] }), "aws.tiers[0].memoryMb", "cannot hold the model" },
        { "8B model in 3 GB", Aws(a => a with { Tiers = [new(3008)] }) with { ModelBytes = 3_851_257_472 }, "aws.tiers[0].memoryMb", "3.85 GB file" },
        { "duplicate tier", Aws(a => a with { Tiers = [new(2048), new(2048)] }), "aws.tiers[1].memoryMb", "twice" },
        { "negative pc", Aws(a => a with { Tiers = [new(2048, -1)] }), "aws.tiers[0].provisionedConcurrency", "0 (off)" },
        { "huge pc", Aws(a => a with { Tiers = [new(2048, 1001)] }), "aws.tiers[0].provisionedConcurrency", "1000" },
        { "no origins", Aws(a => a with { Cors = new CorsConfig { AllowOrigins = [] } }), "aws.cors.allowOrigins", "is empty" },
        { "bad origin", Aws(a => a with { Cors = new CorsConfig { AllowOrigins = ["example.com"] } }), "aws.cors.allowOrigins", "not '*' or an origin" },
        { "origin with path", Aws(a => a with { Cors = new CorsConfig { AllowOrigins = ["https://a.com/x"] } }), "aws.cors.allowOrigins", "not '*' or an origin" },
        { "bad method", Aws(a => a with { Cors = new CorsConfig { AllowMethods = ["FETCH"] } }), "aws.cors.allowMethods", "'FETCH'" },
        { "max age", Aws(a => a with { Cors = new CorsConfig { MaxAgeSeconds = 86401 } }), "aws.cors.maxAgeSeconds", "0-86400" },
        { "credentials with *", Aws(a => a with { Cors = new CorsConfig { AllowCredentials = true } }), "aws.cors.allowCredentials", "origin '*'" },
        { "location", Azure(a => a with { Location = "East US" }), "azure.location", "eastus" },
        { "suffix", Azure(a => a with { NameSuffix = "UPPER" }), "azure.nameSuffix", "lowercase" },
        { "5-field cron", Azure(a => a with { KeepWarmSchedule = "*/5 * * * *" }), "azure.keepWarmSchedule", "6 (seconds first)" },
        { "junk cron", Azure(a => a with { KeepWarmSchedule = "every 5 minutes x y z" }), "azure.keepWarmSchedule", "NCRONTAB" },
        { "azure origin", Azure(a => a with { CorsAllowedOrigins = ["nope"] }), "azure.corsAllowedOrigins", "not '*'" },
        { "no azure tiers", Azure(a => a with { Tiers = [] }), "azure.tiers", "EP1, EP2, EP3" },
        { "consumption sku", Azure(a => a with { Tiers = [new("Y1")] }), "azure.tiers[0].sku", "Elastic Premium" },
        { "duplicate sku", Azure(a => a with { Tiers = [new("EP1"), new("EP1")] }), "azure.tiers[1].sku", "twice" },
        { "always ready 0", Azure(a => a with { Tiers = [new("EP1", AlwaysReady: 0)] }), "azure.tiers[0].alwaysReady", "1-20" },
        { "always ready 21", Azure(a => a with { Tiers = [new("EP1", AlwaysReady: 21, MaximumElasticWorkers: 30)] }), "azure.tiers[0].alwaysReady", "1-20" },
        { "prewarmed negative", Azure(a => a with { Tiers = [new("EP1", PreWarmed: -1)] }), "azure.tiers[0].preWarmed", "0 or more" },
        { "prewarmed above max", Azure(a => a with { Tiers = [new("EP1", PreWarmed: 4, MaximumElasticWorkers: 3)] }), "azure.tiers[0].preWarmed", "exceeds" },
        { "max workers", Azure(a => a with { Tiers = [new("EP1", MaximumElasticWorkers: 0)] }), "azure.tiers[0].maximumElasticWorkers", "1-100" },
        { "max below ready", Azure(a => a with { Tiers = [new("EP1", AlwaysReady: 3, MaximumElasticWorkers: 2)] }), "azure.tiers[0].maximumElasticWorkers", "below alwaysReady" },
        { "storage name too long", new DeploymentConfig { Cloud = Cloud.Azure, Project = "bitnetserverless", Stack = "production" }, "project/stack/azure.nameSuffix", "3-24" },
    };

    [Theory]
    [MemberData(nameof(Cases))]
    public void Each_config_error_is_reported_with_its_path_and_a_clear_reason(string _, DeploymentConfig config, string path, string fragment)
    {
        var errors = ConfigValidator.Validate(config);
        Assert.Contains(errors, e => e.Path == path && e.Message.Contains(fragment, StringComparison.Ordinal));
        var thrown = Assert.Throws<DeploymentConfigException>(() => DeploymentPlanner.Plan(config));
        Assert.Contains(path, thrown.Message);
    }

    [Fact]
    public void All_problems_are_reported_at_once()
    {
        var config = new DeploymentConfig { Aws = new AwsConfig { TimeoutSeconds = 0, LogRetentionDays = 2, Tiers = [new(64)] } };
        var errors = ConfigValidator.Validate(config);
        Assert.Equal(["aws.timeoutSeconds", "aws.logRetentionDays", "aws.tiers[0].memoryMb"], errors.Select(e => e.Path));
    }

    [Fact]
    public void Only_the_chosen_clouds_section_is_checked()
    {
        Assert.Empty(ConfigValidator.Validate(new DeploymentConfig { Azure = new AzureConfig { Tiers = [] } }));
        Assert.Empty(ConfigValidator.Validate(new DeploymentConfig { Cloud = Cloud.Azure, Aws = new AwsConfig { Tiers = [] } }));
    }

    [Fact]
    public void Defaults_are_valid_for_both_clouds()
    {
        Assert.Empty(ConfigValidator.Validate(new DeploymentConfig()));
        Assert.Empty(ConfigValidator.Validate(new DeploymentConfig { Cloud = Cloud.Azure }));
    }

    [Fact]
    public void Keep_warm_schedule_is_not_checked_when_keep_warm_is_off()
    {
        Assert.Empty(ConfigValidator.Validate(new DeploymentConfig { Cloud = Cloud.Azure, Azure = new AzureConfig { KeepWarm = false, KeepWarmSchedule = "" } }));
    }
}

public class ModelMemoryTests
{
    [Fact]
    public void An_8B_model_fits_the_10_GB_tier_and_the_2B_floor_is_unchanged()
    {
        // Llama3-8B-1.58-shaped file (bitnet dummy --shape llama3-8b): 3.85 GB; peak RSS 3.08 GB measured at a short context.
        Assert.Equal(4073, ConfigValidator.RequiredMemoryMb(3_851_257_472));
        Assert.Empty(ConfigValidator.Validate(new DeploymentConfig { ModelBytes = 3_851_257_472, Aws = new AwsConfig { Tiers = [new(10240)] } }));
        Assert.Equal(ConfigValidator.ModelMemoryFloorMb, ConfigValidator.RequiredMemoryMb(1_187_000_000));
        Assert.Equal(ConfigValidator.ModelMemoryFloorMb, ConfigValidator.RequiredMemoryMb(null));
    }

    [Fact]
    public void The_reader_takes_the_model_size_from_the_stack_or_refuses_a_bad_one()
    {
        string? Get(string key) => key switch { "modelBytes" => "3851257472", "aws" => """{"tiers":[10240]}""", _ => null };
        Assert.Equal(3_851_257_472, ConfigReader.Read("bitnet", "dev", Get).ModelBytes);
        var error = Assert.Throws<DeploymentConfigException>(() => ConfigReader.Read("bitnet", "dev", k => k == "modelBytes" ? "4GB" : null));
        Assert.Contains("modelBytes", error.Message);
    }
}
