using BitNet.Deploy.Planning;

namespace BitNet.Deploy.Tests;

public sealed class ConfigReaderTests
{
    private static Func<string, string?> Settings(params (string Key, string Value)[] values) =>
        key => values.FirstOrDefault(v => v.Key == key).Value;

    [Fact]
    public void Reads_the_aws_stack_settings_as_pulumi_passes_them()
    {
        var config = ConfigReader.Read("bitnet", "aws-dev", Settings(
            ("cloud", "aws"),
            ("modelSource", "models/m.gguf"),
            ("aws", """
                {"region":"eu-west-1","architecture":"x86_64","timeoutSeconds":"600","urlAuth":"AWS_IAM",
                 "cors":{"allowOrigins":["https://a.example"],"maxAgeSeconds":60},
                 "keepWarmRateMinutes":10,"logRetentionDays":7,
                 "tiers":[2048,{"memoryMb":4096,"provisionedConcurrency":1,"keepWarm":"true"}]}
                """)));
        Assert.Equal(("aws-dev", Cloud.Aws, "models/m.gguf"), (config.Stack, config.Cloud, config.ModelSource));
        Assert.Equal(("eu-west-1", LambdaArchitecture.X86_64, 600, UrlAuth.AwsIam, 10, 7),
            (config.Aws.Region, config.Aws.Architecture, config.Aws.TimeoutSeconds, config.Aws.UrlAuth, config.Aws.KeepWarmRateMinutes, config.Aws.LogRetentionDays));
        Assert.Equal(["https://a.example"], config.Aws.Cors.AllowOrigins);
        Assert.Equal(60, config.Aws.Cors.MaxAgeSeconds);
        Assert.Equal([new LambdaTierConfig(2048), new LambdaTierConfig(4096, 1, true)], config.Aws.Tiers);
    }

    [Fact]
    public void Reads_the_azure_stack_settings()
    {
        var config = ConfigReader.Read("bitnet", "azure-dev", Settings(
            ("cloud", "azure"),
            ("azure", """{"location":"westeurope","nameSuffix":"ab12","keepWarmSchedule":"0 */2 * * * *","tiers":["EP1",{"sku":"EP3","alwaysReady":2,"preWarmed":2,"maximumElasticWorkers":4}]}""")));
        Assert.Equal(Cloud.Azure, config.Cloud);
        Assert.Equal(("westeurope", "ab12", "0 */2 * * * *"), (config.Azure.Location, config.Azure.NameSuffix, config.Azure.KeepWarmSchedule));
        Assert.Equal([new AzureTierConfig("EP1"), new AzureTierConfig("EP3", 2, 2, 4)], config.Azure.Tiers);
    }

    [Fact]
    public void Missing_settings_fall_back_to_the_defaults()
    {
        var config = ConfigReader.Read("bitnet", "dev", Settings());
        Assert.Equal(new DeploymentConfig().Aws.Tiers, config.Aws.Tiers);
        Assert.Equal(Cloud.Aws, config.Cloud);
    }

    [Fact]
    public void Unreadable_and_invalid_settings_are_reported_together_once_each()
    {
        var settings = Settings(("aws", """{"urlAuth":"OPEN","logRetentionDays":13,"tiers":[{"memoryMb":64},{"provisionedConcurrency":2}]}"""));
        var error = Assert.Throws<DeploymentConfigException>(() => ConfigReader.Read("bitnet", "dev", settings));
        Assert.Equal(["aws.logRetentionDays", "aws.tiers[0].memoryMb", "aws.tiers[1].memoryMb", "aws.urlAuth"],
            error.Errors.Select(e => e.Path).Order(StringComparer.Ordinal));
        Assert.Contains("is required", error.Errors.Single(e => e.Path == "aws.tiers[1].memoryMb").Message);
    }

    [Theory]
    [InlineData("cloud", "gcp", "cloud", "'aws' or 'azure'")]
    [InlineData("aws", "{", "aws", "not valid JSON")]
    [InlineData("aws", "[1]", "aws", "must be an object")]
    [InlineData("aws", """{"memory":2048}""", "aws.memory", "unknown setting")]
    [InlineData("aws", """{"architecture":"arm"}""", "aws.architecture", "'arm64' or 'x86_64'")]
    [InlineData("aws", """{"urlAuth":"IAM"}""", "aws.urlAuth", "'NONE' or 'AWS_IAM'")]
    [InlineData("aws", """{"timeoutSeconds":"soon"}""", "aws.timeoutSeconds", "whole number")]
    [InlineData("aws", """{"tiers":2048}""", "aws.tiers", "must be a list")]
    [InlineData("aws", """{"tiers":[{"provisionedConcurrency":1}]}""", "aws.tiers[0].memoryMb", "is required")]
    [InlineData("aws", """{"tiers":[{"memoryMb":2048,"keepWarm":"maybe"}]}""", "aws.tiers[0].keepWarm", "true or false")]
    [InlineData("aws", """{"tiers":[512]}""", "aws.tiers[0].memoryMb", "cannot hold the model")]
    [InlineData("azure", """{"tiers":[{"sku":"EP1","instances":2}]}""", "azure.tiers[0].instances", "unknown setting")]
    public void Bad_settings_are_reported_with_their_path(string key, string value, string path, string fragment)
    {
        var settings = key == "azure" ? Settings(("cloud", "azure"), (key, value)) : Settings((key, value));
        var error = Assert.Throws<DeploymentConfigException>(() => ConfigReader.Read("bitnet", "dev", settings));
        Assert.Contains(error.Errors, e => e.Path == path && e.Message.Contains(fragment, StringComparison.Ordinal));
    }
}
