using System.Text.Json;
using BitNet.Deploy.Planning;

namespace BitNet.Deploy.Tests;

public sealed class LambdaPlanMatrixTests
{
    public static TheoryData<int, int, bool?, UrlAuth> Matrix()
    {
        var data = new TheoryData<int, int, bool?, UrlAuth>();
        foreach (int memory in new[] { 1536, 1769, 2048, 3008, 4096, 10240 })
            foreach (int pc in new[] { 0, 1, 5 })
                foreach (bool? keepWarm in new bool?[] { null, true, false })
                    foreach (var auth in new[] { UrlAuth.None, UrlAuth.AwsIam })
                        data.Add(memory, pc, keepWarm, auth);
        return data;
    }

    private static DeploymentConfig Config(int memory, int pc, bool? keepWarm, UrlAuth auth, int rate = 5) => new()
    {
        Cloud = Cloud.Aws,
        Aws = new AwsConfig { Tiers = [new LambdaTierConfig(memory, pc, keepWarm)], UrlAuth = auth, KeepWarmRateMinutes = rate },
    };

    [Theory]
    [MemberData(nameof(Matrix))]
    public void Every_tier_concurrency_keep_warm_and_auth_combination_plans_exactly_the_resources_it_needs(int memory, int pc, bool? keepWarm, UrlAuth auth)
    {
        DeploymentPlan plan = DeploymentPlanner.Plan(Config(memory, pc, keepWarm, auth));
        LambdaTierPlan tier = Assert.Single(plan.Aws!.Tiers);

        Assert.Equal($"{memory}mb", tier.Tier);
        Assert.Equal($"bitnet-dev-{memory}mb", tier.Function.Name);
        Assert.Equal(memory, tier.Function.MemoryMb);
        Assert.Equal("arm64", tier.Function.Architecture);
        Assert.Equal("Image", tier.Function.PackageType);
        Assert.True(tier.Function.Publish); // an alias needs a published version
        Assert.Equal(Math.Min(6, memory / 1769.0), tier.VcpuShare, 6);
        Assert.Equal(((int)Math.Ceiling(Math.Min(6, memory / 1769.0) - 1e-9)).ToString(), tier.Function.Environment["BITNET_THREADS"]);
        Assert.Equal("true", tier.Function.Environment["BITNET_LAMBDA_STREAMING"]); // matches InvokeMode RESPONSE_STREAM
        Assert.Equal($"/aws/lambda/bitnet-dev-{memory}mb", tier.LogGroup.Name);
        Assert.Equal(tier.LogGroup.Name, tier.Function.LogGroupName);

        // Provisioned concurrency: only when asked for, and on the alias.
        if (pc > 0)
        {
            Assert.NotNull(tier.ProvisionedConcurrency);
            Assert.Equal(pc, tier.ProvisionedConcurrency!.ProvisionedConcurrentExecutions);
            Assert.Equal("live", tier.ProvisionedConcurrency.Qualifier);
        }
        else
        {
            Assert.Null(tier.ProvisionedConcurrency);
        }

        // Function URL: streaming, on the alias, with the configured auth.
        Assert.Equal("RESPONSE_STREAM", tier.Url.InvokeMode);
        Assert.Equal("live", tier.Url.Qualifier);
        Assert.Equal(auth == UrlAuth.None ? "NONE" : "AWS_IAM", tier.Url.AuthorizationType);
        if (auth == UrlAuth.None)
        {
            Assert.Collection(tier.UrlPermissions,
                p => Assert.Equal(("lambda:InvokeFunctionUrl", "*", "NONE", (bool?)null, "live"), (p.Action, p.Principal, p.FunctionUrlAuthType, p.InvokedViaFunctionUrl, p.Qualifier)),
                p => Assert.Equal(("lambda:InvokeFunction", "*", (string?)null, (bool?)true, "live"), (p.Action, p.Principal, p.FunctionUrlAuthType, p.InvokedViaFunctionUrl, p.Qualifier)));
        }
        else
        {
            Assert.Empty(tier.UrlPermissions);
        }

        // Keep-warm: explicit choice wins; by default on only where provisioned concurrency is off.
        bool expectWarm = keepWarm ?? pc == 0;
        Assert.Equal(expectWarm, tier.KeepWarm is not null);
        if (tier.KeepWarm is { } warm)
        {
            Assert.Equal("rate(5 minutes)", warm.Rule.ScheduleExpression);
            Assert.Equal($"bitnet-dev-{memory}mb-keep-warm", warm.Rule.Name);
            Assert.Equal(("lambda:InvokeFunction", "events.amazonaws.com", "live", true),
                (warm.Permission.Action, warm.Permission.Principal, warm.Permission.Qualifier, warm.Permission.SourceArnFromKeepWarmRule));
            using var payload = JsonDocument.Parse(warm.Target.InputJson);
            Assert.Equal("Scheduled Event", payload.RootElement.GetProperty("detail-type").GetString());
            Assert.Equal("keep-warm", payload.RootElement.GetProperty("detail").GetProperty("bitnet").GetString());
        }

        // The flat resource list agrees with the typed plan.
        int expected = 5 /* repo, lifecycle, image, role, attachment */ + 4 /* log group, function, alias, url */
            + (pc > 0 ? 1 : 0) + (auth == UrlAuth.None ? 2 : 0) + (expectWarm ? 3 : 0);
        Assert.Equal(expected, plan.Resources.Count);
        Assert.Equal(plan.Resources.Count, plan.Resources.Select(r => r.LogicalName).Distinct().Count());
        Assert.Equal([$"url-{memory}mb"], plan.Outputs);
    }

    [Fact]
    public void Default_configuration_plans_three_tiers_of_2_4_and_10_GB_all_kept_warm()
    {
        DeploymentPlan plan = DeploymentPlanner.Plan(new DeploymentConfig());
        Assert.Equal(["2048mb", "4096mb", "10240mb"], plan.Aws!.Tiers.Select(t => t.Tier));
        Assert.All(plan.Aws.Tiers, t => Assert.NotNull(t.KeepWarm));
        Assert.Equal(["url-2048mb", "url-4096mb", "url-10240mb"], plan.Outputs);
        Assert.Equal(
        [
            "aws:ecr/repository:Repository", "aws:ecr/lifecyclePolicy:LifecyclePolicy", "docker-build:index:Image",
            "aws:iam/role:Role", "aws:iam/rolePolicyAttachment:RolePolicyAttachment",
        ], plan.Resources.Take(5).Select(r => r.Type));
        Assert.Equal(5 + 3 * 9, plan.Resources.Count);
    }

    [Fact]
    public void Mixed_tiers_get_provisioned_concurrency_and_keep_warm_independently()
    {
        var config = new DeploymentConfig
        {
            Aws = new AwsConfig { Tiers = [new(2048), new(4096, ProvisionedConcurrency: 2), new(10240, 1, KeepWarm: true)] },
        };
        var tiers = DeploymentPlanner.Plan(config).Aws!.Tiers;
        Assert.Equal([false, true, true], tiers.Select(t => t.ProvisionedConcurrency is not null));
        Assert.Equal([true, false, true], tiers.Select(t => t.KeepWarm is not null));
    }

    [Theory]
    [InlineData(1, "rate(1 minute)")]
    [InlineData(5, "rate(5 minutes)")]
    [InlineData(60, "rate(1 hour)")]
    [InlineData(90, "rate(90 minutes)")]
    [InlineData(120, "rate(2 hours)")]
    public void Keep_warm_rate_uses_eventbridge_singular_and_plural_units(int minutes, string expression)
    {
        var tier = Assert.Single(DeploymentPlanner.Plan(Config(2048, 0, null, UrlAuth.None, minutes)).Aws!.Tiers);
        Assert.Equal(expression, tier.KeepWarm!.Rule.ScheduleExpression);
    }

    [Fact]
    public void X86_architecture_builds_an_amd64_image_and_x86_64_functions()
    {
        var plan = DeploymentPlanner.Plan(new DeploymentConfig { Aws = new AwsConfig { Architecture = LambdaArchitecture.X86_64 } });
        Assert.Equal("linux/amd64", plan.Aws!.Image.Platform);
        Assert.All(plan.Aws.Tiers, t => Assert.Equal("x86_64", t.Function.Architecture));
        Assert.Equal("linux/arm64", DeploymentPlanner.Plan(new DeploymentConfig()).Aws!.Image.Platform);
    }

    [Fact]
    public void Image_is_built_from_the_lambda_dockerfile_with_the_model_build_arg()
    {
        var image = DeploymentPlanner.Plan(new DeploymentConfig { ModelSource = "https://example.com/m.gguf", ImageTag = "v2" }).Aws!.Image;
        Assert.Equal("containers/Dockerfile.lambda", image.Dockerfile);
        Assert.Equal("https://example.com/m.gguf", image.BuildArgs["MODEL_SOURCE"]);
        Assert.Equal("v2", image.Tag);
        Assert.Equal("123.dkr.ecr.us-east-1.amazonaws.com/bitnet-dev:v2", image.TagReference("123.dkr.ecr.us-east-1.amazonaws.com/bitnet-dev"));
    }

    [Fact]
    public void Functions_run_the_image_by_digest_without_its_tag()
    {
        Assert.Equal("123.dkr.ecr.us-east-1.amazonaws.com/bitnet-dev@sha256:ab12",
            ImagePlan.DigestReference("123.dkr.ecr.us-east-1.amazonaws.com/bitnet-dev", "sha256:ab12"));
    }

    [Fact]
    public void Lifecycle_policy_expires_untagged_images_and_keeps_the_newest_n()
    {
        var plan = DeploymentPlanner.Plan(new DeploymentConfig { Aws = new AwsConfig { KeepImages = 7 } });
        using var policy = JsonDocument.Parse(plan.Aws!.LifecyclePolicy.PolicyJson);
        var rules = policy.RootElement.GetProperty("rules").EnumerateArray().ToList();
        Assert.Equal("untagged", rules[0].GetProperty("selection").GetProperty("tagStatus").GetString());
        Assert.Equal("imageCountMoreThan", rules[1].GetProperty("selection").GetProperty("countType").GetString());
        Assert.Equal(7, rules[1].GetProperty("selection").GetProperty("countNumber").GetInt32());
        Assert.All(rules, r => Assert.Equal("expire", r.GetProperty("action").GetProperty("type").GetString()));
        Assert.Equal([1, 2], rules.Select(r => r.GetProperty("rulePriority").GetInt32()));
    }

    [Fact]
    public void Role_trusts_lambda_and_attaches_basic_execution_for_logs()
    {
        var role = DeploymentPlanner.Plan(new DeploymentConfig()).Aws!.Role;
        using var trust = JsonDocument.Parse(role.AssumeRolePolicyJson);
        var statement = trust.RootElement.GetProperty("Statement")[0];
        Assert.Equal("lambda.amazonaws.com", statement.GetProperty("Principal").GetProperty("Service").GetString());
        Assert.Equal("sts:AssumeRole", statement.GetProperty("Action").GetString());
        Assert.Equal(["arn:aws:iam::aws:policy/service-role/AWSLambdaBasicExecutionRole"], role.ManagedPolicyArns);
        Assert.Equal("bitnet-dev-lambda-role", role.Name);
    }

    [Fact]
    public void Settings_flow_into_every_function_url_and_log_group()
    {
        var cors = new CorsConfig { AllowOrigins = ["https://app.example.com"], AllowCredentials = true, MaxAgeSeconds = 600 };
        var plan = DeploymentPlanner.Plan(new DeploymentConfig
        {
            Aws = new AwsConfig { TimeoutSeconds = 300, EphemeralStorageMb = 2048, LogRetentionDays = 30, Cors = cors },
        });
        Assert.All(plan.Aws!.Tiers, t =>
        {
            Assert.Equal(300, t.Function.TimeoutSeconds);
            Assert.Equal(2048, t.Function.EphemeralStorageMb);
            Assert.Equal(30, t.LogGroup.RetentionInDays);
            Assert.Same(cors, t.Url.Cors);
            Assert.Equal(DeploymentPlanner.LambdaModelPath, t.Function.Environment["BITNET_MODEL"]);
        });
    }

    [Theory]
    [InlineData(128, 1)]
    [InlineData(1769, 1)]
    [InlineData(1770, 2)]
    [InlineData(3538, 2)]
    [InlineData(4096, 3)]
    [InlineData(10240, 6)]
    public void Threads_follow_the_vcpu_share_rounded_up(int memory, int threads)
    {
        Assert.InRange(LambdaSizing.EmulatedCores(memory, machineCores: 64), Math.Max(1, threads - 1), threads);
        Assert.Equal(threads, LambdaSizing.Threads(memory));
        Assert.Equal(Math.Min(threads, 2), LambdaSizing.Threads(memory, machineCores: 2));
    }

    [Theory]
    [InlineData(2048, 1)]
    [InlineData(3538, 2)]
    [InlineData(4096, 2)]
    [InlineData(6144, 3)]
    [InlineData(10240, 6)]
    public void Emulated_cores_round_the_share_to_the_nearest_core(int memory, int cores)
    {
        Assert.Equal(cores, LambdaSizing.EmulatedCores(memory, machineCores: 64));
        Assert.Equal(Math.Min(cores, 2), LambdaSizing.EmulatedCores(memory, machineCores: 2));
    }
}
