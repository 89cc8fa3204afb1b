using BitNet.Deploy.Planning;
using Pulumi;
using Aws = Pulumi.Aws;
using Docker = Pulumi.DockerBuild;

namespace BitNet.Deploy.Pulumi;

/// <summary>
/// The AWS side of a plan, one Pulumi resource per planned resource: ECR repository + lifecycle
/// policy, the Lambda image (built and pushed), the execution role, and per memory tier a log group,
/// function, alias, optional provisioned concurrency, streaming function URL with its permissions,
/// and an optional keep-warm rule. No decisions are made here.
/// </summary>
public sealed class AwsDeployment : ComponentResource
{
    public Dictionary<string, Output<string>> Urls { get; } = [];
    public Output<string> ImageRef { get; }

    public AwsDeployment(string name, AwsPlan plan, string repositoryRoot, ComponentResourceOptions? options = null)
        : base("bitnet:deploy:AwsDeployment", name, options)
    {
        var child = new CustomResourceOptions { Parent = this };

        var repository = new Aws.Ecr.Repository(plan.Repository.LogicalName, new Aws.Ecr.RepositoryArgs
        {
            Name = plan.Repository.Name,
            ImageTagMutability = plan.Repository.ImageTagMutability,
            ForceDelete = plan.Repository.ForceDelete,
            ImageScanningConfiguration = new Aws.Ecr.Inputs.RepositoryImageScanningConfigurationArgs { ScanOnPush = plan.Repository.ScanOnPush },
        }, child);
        _ = new Aws.Ecr.LifecyclePolicy(plan.LifecyclePolicy.LogicalName, new Aws.Ecr.LifecyclePolicyArgs
        {
            Repository = repository.Name,
            Policy = plan.LifecyclePolicy.PolicyJson,
        }, child);

        var token = Aws.Ecr.GetAuthorizationToken.Invoke(new Aws.Ecr.GetAuthorizationTokenInvokeArgs { RegistryId = repository.RegistryId });
        var image = new Docker.Image(plan.Image.LogicalName, ImageArgs(plan.Image, repositoryRoot, repository.RepositoryUrl,
            token.Apply(t => t.ProxyEndpoint), token.Apply(t => t.UserName), token.Apply(t => t.Password)), child);
        ImageRef = image.Ref;

        var role = new Aws.Iam.Role(plan.Role.LogicalName, new Aws.Iam.RoleArgs
        {
            Name = plan.Role.Name,
            AssumeRolePolicy = plan.Role.AssumeRolePolicyJson,
        }, child);
        for (int i = 0; i < plan.Role.ManagedPolicyArns.Count; i++)
            _ = new Aws.Iam.RolePolicyAttachment($"{plan.Role.LogicalName}-policy-{i}", new Aws.Iam.RolePolicyAttachmentArgs
            {
                Role = role.Name,
                PolicyArn = plan.Role.ManagedPolicyArns[i],
            }, child);

        foreach (var tier in plan.Tiers)
            Urls[tier.UrlOutputName] = Tier(tier, image, role, child);

        RegisterOutputs(Urls.ToDictionary(kv => kv.Key, kv => (object?)kv.Value));
    }

    private static Output<string> Tier(LambdaTierPlan tier, Docker.Image image, Aws.Iam.Role role, CustomResourceOptions child)
    {
        var logGroup = new Aws.CloudWatch.LogGroup(tier.LogGroup.LogicalName, new Aws.CloudWatch.LogGroupArgs
        {
            Name = tier.LogGroup.Name,
            RetentionInDays = tier.LogGroup.RetentionInDays,
        }, child);

        var environment = new InputMap<string>();
        foreach (var (key, value) in tier.Function.Environment)
            environment.Add(key, value);
        var function = new Aws.Lambda.Function(tier.Function.LogicalName, new Aws.Lambda.FunctionArgs
        {
            Name = tier.Function.Name,
            Role = role.Arn,
            PackageType = tier.Function.PackageType,
            ImageUri = image.Ref,
            Architectures = { tier.Function.Architecture },
            MemorySize = tier.Function.MemoryMb,
            Timeout = tier.Function.TimeoutSeconds,
            EphemeralStorage = new Aws.Lambda.Inputs.FunctionEphemeralStorageArgs { Size = tier.Function.EphemeralStorageMb },
            Environment = new Aws.Lambda.Inputs.FunctionEnvironmentArgs { Variables = environment },
            Publish = tier.Function.Publish,
            LoggingConfig = new Aws.Lambda.Inputs.FunctionLoggingConfigArgs { LogFormat = "Text", LogGroup = logGroup.Name },
        }, new CustomResourceOptions { Parent = child.Parent, DependsOn = { logGroup } });

        var alias = new Aws.Lambda.Alias(tier.Alias.LogicalName, new Aws.Lambda.AliasArgs
        {
            Name = tier.Alias.Name,
            FunctionName = function.Name,
            FunctionVersion = function.Version,
        }, child);

        if (tier.ProvisionedConcurrency is { } pc)
            _ = new Aws.Lambda.ProvisionedConcurrencyConfig(pc.LogicalName, new Aws.Lambda.ProvisionedConcurrencyConfigArgs
            {
                FunctionName = function.Name,
                Qualifier = alias.Name,
                ProvisionedConcurrentExecutions = pc.ProvisionedConcurrentExecutions,
            }, child);

        var cors = tier.Url.Cors;
        var url = new Aws.Lambda.FunctionUrl(tier.Url.LogicalName, new Aws.Lambda.FunctionUrlArgs
        {
            FunctionName = function.Name,
            Qualifier = alias.Name,
            AuthorizationType = tier.Url.AuthorizationType,
            InvokeMode = tier.Url.InvokeMode,
            Cors = new Aws.Lambda.Inputs.FunctionUrlCorsArgs
            {
                AllowOrigins = [.. cors.AllowOrigins],
                AllowMethods = [.. cors.AllowMethods],
                AllowHeaders = [.. cors.AllowHeaders],
                ExposeHeaders = [.. cors.ExposeHeaders],
                AllowCredentials = cors.AllowCredentials,
                MaxAge = cors.MaxAgeSeconds,
            },
        }, child);

        foreach (var permission in tier.UrlPermissions)
            _ = Permission(permission, function, alias, sourceArn: null, child);

        if (tier.KeepWarm is { } warm)
        {
            var rule = new Aws.CloudWatch.EventRule(warm.Rule.LogicalName, new Aws.CloudWatch.EventRuleArgs
            {
                Name = warm.Rule.Name,
                ScheduleExpression = warm.Rule.ScheduleExpression,
                Description = warm.Rule.Description,
            }, child);
            _ = new Aws.CloudWatch.EventTarget(warm.Target.LogicalName, new Aws.CloudWatch.EventTargetArgs
            {
                Rule = rule.Name,
                Arn = alias.Arn,
                TargetId = warm.Target.TargetId,
                Input = warm.Target.InputJson,
            }, child);
            _ = Permission(warm.Permission, function, alias, rule.Arn, child);
        }
        return url.FunctionUrlResult;
    }

    private static Aws.Lambda.Permission Permission(LambdaPermissionPlan plan, Aws.Lambda.Function function, Aws.Lambda.Alias alias,
        Output<string>? sourceArn, CustomResourceOptions child)
    {
        var args = new Aws.Lambda.PermissionArgs
        {
            Function = function.Name,
            Qualifier = alias.Name,
            StatementId = plan.StatementId,
            Action = plan.Action,
            Principal = plan.Principal,
        };
        if (plan.FunctionUrlAuthType is { } authType)
            args.FunctionUrlAuthType = authType;
#if !NO_INVOKED_VIA_FUNCTION_URL
        // Needs a Pulumi.Aws built on the Terraform AWS provider ≥ 6.29 (see README: not in the SDK source read here).
        if (plan.InvokedViaFunctionUrl is { } viaUrl)
            args.InvokedViaFunctionUrl = viaUrl;
#endif
        if (plan.SourceArnFromKeepWarmRule && sourceArn is not null)
            args.SourceArn = sourceArn;
        return new Aws.Lambda.Permission(plan.LogicalName, args, child);
    }

    internal static Docker.ImageArgs ImageArgs(ImagePlan plan, string repositoryRoot, Output<string> repositoryUrl,
        Output<string> registry, Output<string> username, Output<string> password)
    {
        var args = new Docker.ImageArgs
        {
            Push = true,
            // Exec mode runs the local `docker buildx`, which honours BUILDX_NO_DEFAULT_ATTESTATIONS=1:
            // Lambda rejects the OCI index that provenance attestations create.
            Exec = true,
            Tags = { Output.Format($"{repositoryUrl}:{plan.Tag}") },
            Context = new Docker.Inputs.BuildContextArgs { Location = repositoryRoot },
            Dockerfile = new Docker.Inputs.DockerfileArgs { Location = Path.Combine(repositoryRoot, plan.Dockerfile) },
            Platforms = { plan.Platform == "linux/arm64" ? Docker.Platform.Linux_arm64 : Docker.Platform.Linux_amd64 },
            Registries = { new Docker.Inputs.RegistryArgs { Address = registry, Username = username, Password = password } },
        };
        foreach (var (key, value) in plan.BuildArgs)
            args.BuildArgs.Add(key, value);
        return args;
    }
}
