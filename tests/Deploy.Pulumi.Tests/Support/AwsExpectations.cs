using System.Text.Json;
using BitNet.Deploy.Planning;

namespace BitNet.Deploy.Pulumi.Tests.Support;

/// <summary>What the program must have registered for an AWS plan: every resource by type token and logical name, with its inputs.</summary>
public static class AwsExpectations
{
    public static async Task VerifyAsync(ProgramRun run, AwsPlan plan, string planImageRoot)
    {
        string region = plan.Region;
        var repository = run.Resource("aws:ecr/repository:Repository", plan.Repository.LogicalName);
        Assert.Equal(plan.Repository.Name, repository.Text("name"));
        Assert.Equal(region, repository.Text("region"));
        Assert.Equal("MUTABLE", repository.Text("imageTagMutability"));
        Assert.True(repository.Flag("forceDelete"));
        Assert.True(repository.Object("imageScanningConfiguration").Flag("scanOnPush"));
        string repositoryUrl = $"{RecordingMocks.Account}.dkr.ecr.{region}.amazonaws.com/{plan.Repository.Name}";

        var lifecycle = run.Resource("aws:ecr/lifecyclePolicy:LifecyclePolicy", plan.LifecyclePolicy.LogicalName);
        Assert.Equal(plan.Repository.Name, lifecycle.Text("repository"));
        Assert.Equal(region, lifecycle.Text("region"));
        Assert.Equal(plan.LifecyclePolicy.PolicyJson, lifecycle.Text("policy"));

        var token = Assert.Single(run.CallsTo("aws:ecr/getAuthorizationToken:getAuthorizationToken"));
        Assert.Equal(RecordingMocks.Account, token.Args["registryId"]);
        Assert.Equal(region, token.Args["region"]);

        var image = ImageExpectations.Verify(run, plan.Image, planImageRoot, repositoryUrl);
        var registry = Assert.Single(image.Objects("registries"));
        Assert.Equal(RecordingMocks.EcrEndpoint(region), registry.Text("address"));
        Assert.Equal("AWS", registry.Text("username"));
        Assert.Equal(RecordingMocks.EcrPassword, registry.Text("password"));
        string imageUri = ImagePlan.DigestReference(repositoryUrl, RecordingMocks.Digest(image.Values));

        var role = run.Resource("aws:iam/role:Role", plan.Role.LogicalName);
        Assert.Equal(plan.Role.Name, role.Text("name"));
        using (var trust = JsonDocument.Parse(role.Text("assumeRolePolicy")))
        {
            var statement = Assert.Single(trust.RootElement.GetProperty("Statement").EnumerateArray());
            Assert.Equal("lambda.amazonaws.com", statement.GetProperty("Principal").GetProperty("Service").GetString());
            Assert.Equal("sts:AssumeRole", statement.GetProperty("Action").GetString());
        }
        for (int i = 0; i < plan.Role.ManagedPolicyArns.Count; i++)
        {
            var attachment = run.Resource("aws:iam/rolePolicyAttachment:RolePolicyAttachment", $"{plan.Role.LogicalName}-policy-{i}");
            Assert.Equal(plan.Role.Name, attachment.Text("role"));
            Assert.Equal(plan.Role.ManagedPolicyArns[i], attachment.Text("policyArn"));
        }

        foreach (var tier in plan.Tiers)
            await VerifyTierAsync(run, tier, region, imageUri, $"arn:aws:iam::{RecordingMocks.Account}:role/{plan.Role.Name}");

        Assert.Equal(imageUri, await run.OutputAsync(BitNetStack.ImageOutput));
    }

    private static async Task VerifyTierAsync(ProgramRun run, LambdaTierPlan tier, string region, string imageUri, string roleArn)
    {
        var logGroup = run.Resource("aws:cloudwatch/logGroup:LogGroup", tier.LogGroup.LogicalName);
        Assert.Equal(tier.LogGroup.Name, logGroup.Text("name"));
        Assert.Equal(tier.LogGroup.RetentionInDays, logGroup.Number("retentionInDays"));
        Assert.Equal(region, logGroup.Text("region"));

        var planned = tier.Function;
        var function = run.Resource("aws:lambda/function:Function", planned.LogicalName);
        Assert.Equal(planned.Name, function.Text("name"));
        Assert.Equal(region, function.Text("region"));
        Assert.Equal(roleArn, function.Text("role"));
        Assert.Equal("Image", function.Text("packageType"));
        Assert.Equal(imageUri, function.Text("imageUri"));
        Assert.Equal([planned.Architecture], function.Texts("architectures"));
        Assert.Equal(planned.MemoryMb, function.Number("memorySize"));
        Assert.Equal(planned.TimeoutSeconds, function.Number("timeout"));
        Assert.Equal(planned.EphemeralStorageMb, function.Object("ephemeralStorage").Number("size"));
        Assert.Equal(planned.Environment.OrderBy(kv => kv.Key), function.Object("environment").TextMap("variables").OrderBy(kv => kv.Key));
        Assert.True(function.Flag("publish"));
        var logging = function.Object("loggingConfig");
        Assert.Equal("Text", logging.Text("logFormat"));
        Assert.Equal(tier.LogGroup.Name, logging.Text("logGroup"));
        string functionArn = RecordingMocks.FunctionArn(region, planned.Name);

        var alias = run.Resource("aws:lambda/alias:Alias", tier.Alias.LogicalName);
        Assert.Equal((tier.Alias.Name, planned.Name, "1", region),
            (alias.Text("name"), alias.Text("functionName"), alias.Text("functionVersion"), alias.Text("region")));
        string aliasArn = $"{functionArn}:{tier.Alias.Name}";

        if (tier.ProvisionedConcurrency is { } pc)
        {
            var config = run.Resource("aws:lambda/provisionedConcurrencyConfig:ProvisionedConcurrencyConfig", pc.LogicalName);
            Assert.Equal((planned.Name, tier.Alias.Name, pc.ProvisionedConcurrentExecutions, region),
                (config.Text("functionName"), config.Text("qualifier"), config.Number("provisionedConcurrentExecutions"), config.Text("region")));
        }

        var url = run.Resource("aws:lambda/functionUrl:FunctionUrl", tier.Url.LogicalName);
        Assert.Equal((planned.Name, tier.Alias.Name, tier.Url.AuthorizationType, "RESPONSE_STREAM", region),
            (url.Text("functionName"), url.Text("qualifier"), url.Text("authorizationType"), url.Text("invokeMode"), url.Text("region")));
        var cors = url.Object("cors");
        Assert.Equal(tier.Url.Cors.AllowOrigins, cors.Texts("allowOrigins"));
        Assert.Equal(tier.Url.Cors.AllowMethods, cors.Texts("allowMethods"));
        Assert.Equal(tier.Url.Cors.AllowHeaders, cors.Texts("allowHeaders"));
        Assert.Equal(tier.Url.Cors.ExposeHeaders, cors.Has("exposeHeaders") ? cors.Texts("exposeHeaders") : []);
        Assert.Equal(tier.Url.Cors.AllowCredentials, cors.Flag("allowCredentials"));
        Assert.Equal(tier.Url.Cors.MaxAgeSeconds, cors.Number("maxAge"));

        foreach (var permission in tier.UrlPermissions)
            VerifyPermission(run, permission, planned.Name, region, sourceArn: null);

        if (tier.KeepWarm is { } warm)
        {
            var rule = run.Resource("aws:cloudwatch/eventRule:EventRule", warm.Rule.LogicalName);
            Assert.Equal((warm.Rule.Name, warm.Rule.ScheduleExpression, warm.Rule.Description, region),
                (rule.Text("name"), rule.Text("scheduleExpression"), rule.Text("description"), rule.Text("region")));
            var target = run.Resource("aws:cloudwatch/eventTarget:EventTarget", warm.Target.LogicalName);
            Assert.Equal((warm.Rule.Name, aliasArn, warm.Target.TargetId, KeepWarm.LambdaPayload, region),
                (target.Text("rule"), target.Text("arn"), target.Text("targetId"), target.Text("input"), target.Text("region")));
            VerifyPermission(run, warm.Permission, planned.Name, region, RecordingMocks.RuleArn(region, warm.Rule.Name));
        }

        Assert.Equal(RecordingMocks.FunctionUrl(region, planned.Name), await run.OutputAsync(tier.UrlOutputName));
    }

    private static void VerifyPermission(ProgramRun run, LambdaPermissionPlan plan, string function, string region, string? sourceArn)
    {
        var permission = run.Resource("aws:lambda/permission:Permission", plan.LogicalName);
        Assert.Equal((function, plan.Qualifier, plan.StatementId, plan.Action, plan.Principal, region),
            (permission.Text("function"), permission.Text("qualifier"), permission.Text("statementId"), permission.Text("action"),
             permission.Text("principal"), permission.Text("region")));
        Assert.Equal(plan.FunctionUrlAuthType, permission.Has("functionUrlAuthType") ? permission.Text("functionUrlAuthType") : null);
        Assert.Equal(plan.InvokedViaFunctionUrl, permission.Has("invokedViaFunctionUrl") ? permission.Flag("invokedViaFunctionUrl") : null);
        Assert.Equal(sourceArn, permission.Has("sourceArn") ? permission.Text("sourceArn") : null);
    }
}
