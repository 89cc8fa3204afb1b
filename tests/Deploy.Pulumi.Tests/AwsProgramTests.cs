using System.Text.Json.Nodes;
using BitNet.Deploy.Planning;
using BitNet.Deploy.Pulumi.Tests.Support;

namespace BitNet.Deploy.Pulumi.Tests;

/// <summary>The program under mocks for generated AWS stacks: tiers × provisioned concurrency × keep-warm × URL auth.</summary>
public sealed class AwsProgramTests
{
    public static TheoryData<string, int, string, string> Matrix()
    {
        var data = new TheoryData<string, int, string, string>();
        foreach (string tiers in new[] { "2048", "1536,4096,10240" })
            foreach (int provisioned in new[] { 0, 3 })
                foreach (string keepWarm in new[] { "default", "on", "off" })
                    foreach (string auth in new[] { "NONE", "AWS_IAM" })
                        data.Add(tiers, provisioned, keepWarm, auth);
        return data;
    }

    /// <summary>
    /// A generated stack. Region, architecture, keep-warm rate, retention and image count move with the
    /// combination so that no input can pass by matching a default.
    /// </summary>
    private static StackConfig Stack(string tiers, int provisioned, string keepWarm, string auth)
    {
        int[] memories = [.. tiers.Split(',').Select(int.Parse)];
        int variant = memories.Length + provisioned + keepWarm.Length + auth.Length;
        var tierNodes = new JsonArray([.. memories.Select(memory =>
        {
            var tier = new JsonObject { ["memoryMb"] = memory, ["provisionedConcurrency"] = provisioned };
            if (keepWarm != "default")
                tier["keepWarm"] = keepWarm == "on";
            return (JsonNode)tier;
        })]);
        var aws = new JsonObject
        {
            ["region"] = variant % 2 == 0 ? "eu-west-1" : "us-east-2",
            ["architecture"] = variant % 3 == 0 ? "x86_64" : "arm64",
            ["timeoutSeconds"] = 600 + variant,
            ["ephemeralStorageMb"] = 1024,
            ["urlAuth"] = auth,
            ["cors"] = new JsonObject { ["allowOrigins"] = new JsonArray("https://chat.example.com"), ["allowCredentials"] = true, ["maxAgeSeconds"] = 60 },
            ["keepWarmRateMinutes"] = variant % 2 == 0 ? 1 : 10,
            ["logRetentionDays"] = variant % 2 == 0 ? 30 : 7,
            ["keepImages"] = 2 + variant % 4,
            ["tiers"] = tierNodes,
        };
        return StackConfig.Generated($"gen{variant}", new Dictionary<string, JsonNode>
        {
            ["cloud"] = "aws",
            ["modelSource"] = "https://models.example.com/ggml-model-i2_s.gguf",
            ["imageTag"] = $"build-{variant}",
            ["aws"] = aws,
        });
    }

    [Theory]
    [MemberData(nameof(Matrix))]
    public async Task Every_combination_registers_every_planned_resource_with_its_inputs(string tiers, int provisioned, string keepWarm, string auth)
    {
        var config = Stack(tiers, provisioned, keepWarm, auth);
        var plan = PlanExpectations.PlanFor(config);

        var run = await ProgramRun.RunAsync(config);

        PlanExpectations.RegisteredExactly(run, plan);
        PlanExpectations.OutputsAsPlanned(run, plan);
        await AwsExpectations.VerifyAsync(run, plan.Aws!, StackConfig.RepositoryRoot);

        // The same facts stated from the matrix alone, so a planner mistake cannot hide behind the plan.
        bool warm = keepWarm == "default" ? provisioned == 0 : keepWarm == "on";
        foreach (int memory in tiers.Split(',').Select(int.Parse))
        {
            string t = $"{memory}mb";
            var environment = run.Resource("aws:lambda/function:Function", $"{t}-function").Object("environment").TextMap("variables");
            Assert.Equal(LambdaSizing.Threads(memory).ToString(), environment["BITNET_THREADS"]);
            Assert.Equal("true", environment["BITNET_LAMBDA_STREAMING"]);
            Assert.Equal(auth, run.Resource("aws:lambda/functionUrl:FunctionUrl", $"{t}-url").Text("authorizationType"));

            var names = run.Registered.Where(r => r.Name!.StartsWith($"{t}-", StringComparison.Ordinal)).Select(r => r.Name).ToHashSet();
            Assert.Equal(provisioned > 0, names.Contains($"{t}-provisioned"));
            Assert.Equal(auth == "NONE", names.Contains($"{t}-url-public") && names.Contains($"{t}-url-invoke"));
            Assert.Equal(warm, names.Contains($"{t}-keep-warm") && names.Contains($"{t}-keep-warm-target") && names.Contains($"{t}-keep-warm-permission"));
            if (auth == "NONE")
            {
                Assert.True(run.Resource("aws:lambda/permission:Permission", $"{t}-url-invoke").Flag("invokedViaFunctionUrl"));
                Assert.Equal("NONE", run.Resource("aws:lambda/permission:Permission", $"{t}-url-public").Text("functionUrlAuthType"));
            }
        }
    }

    [Fact]
    public async Task Functions_run_the_pushed_image_by_digest_and_a_rebuilt_image_changes_it()
    {
        var first = await ProgramRun.RunAsync(Stack("2048", 0, "default", "NONE"));
        var config = Stack("2048", 0, "default", "NONE");
        var rebuilt = await ProgramRun.RunAsync(new StackConfig(config.Project, config.Stack,
            config.Values.ToDictionary(kv => kv.Key, kv => kv.Key == "bitnet:modelSource" ? "models/other.gguf" : kv.Value)));

        string before = first.Resource("aws:lambda/function:Function", "2048mb-function").Text("imageUri");
        string after = rebuilt.Resource("aws:lambda/function:Function", "2048mb-function").Text("imageUri");
        Assert.Matches(@"^\d{12}\.dkr\.ecr\.[a-z0-9-]+\.amazonaws\.com/bitnet-gen\d+@sha256:[0-9a-f]{64}$", before);
        Assert.NotEqual(before, after);
    }

    [Fact]
    public async Task Default_aws_stack_deploys_the_three_default_tiers()
    {
        var config = StackConfig.Generated("dev", new Dictionary<string, JsonNode> { ["cloud"] = "aws" });
        var run = await ProgramRun.RunAsync(config);

        Assert.Equal(["image", "url-10240mb", "url-2048mb", "url-4096mb"], run.Outputs.Keys.Order(StringComparer.Ordinal));
        await AwsExpectations.VerifyAsync(run, PlanExpectations.PlanFor(config).Aws!, StackConfig.RepositoryRoot);
    }
}
