using BitNet.Deploy.Planning;
using Pulumi;
using Aws = Pulumi.Aws;
using Docker = Pulumi.DockerBuild;

namespace BitNet.Deploy.Pulumi;

/// <summary>
/// The AWS side of a plan, one Pulumi resource per planned resource: ECR repository + lifecycle
/// policy, the Lambda image (built and pushed), the execution role, and per memory tier a log group,
/// function, alias, optional provisioned concurrency, streaming function URL with its permissions,
/// and an optional keep-warm rule. Every regional resource is created in the plan's region. No
/// decisions are made here.
/// </summary>
public sealed class AwsDeployment : ComponentResource
{
    public Dictionary<string, Output<string>> Urls { get; } = [];

    /// <summary>The image the functions run, by digest.</summary>
    public Output<string> ImageReference { get; }

    public AwsDeployment(string name, AwsPlan plan, string repositoryRoot, ComponentResourceOptions? options = null)
        : base("bitnet:deploy:AwsDeployment", name, options)
    {
        var child = new CustomResourceOptions { Parent = this };
        string region = plan.Region;

        var repository = new Aws.Ecr.Repository(plan.Repository.LogicalName, new Aws.Ecr.RepositoryArgs
        {
            Name = plan.Repository.Name,
            Region = region,
            ImageTagMutability = plan.Repository.ImageTagMutability,
            ForceDelete = plan.Repository.ForceDelete,
            ImageScanningConfiguration = new Aws.Ecr.Inputs.RepositoryImageScanningConfigurationArgs { ScanOnPush = plan.Repository.ScanOnPush },
        }, child);
        _ = new Aws.Ecr.LifecyclePolicy(plan.LifecyclePolicy.LogicalName, new Aws.Ecr.LifecyclePolicyArgs
        {
            Repository = repository.Name,
            Region = region,
            Policy = plan.LifecyclePolicy.PolicyJson,
        }, child);

        var token = Aws.Ecr.GetAuthorizationToken.Invoke(new Aws.Ecr.GetAuthorizationTokenInvokeArgs
        {
            RegistryId = repository.RegistryId,
            Region = region,
        });
        var image = ImageBuild.Create(plan.Image, repositoryRoot, repository.RepositoryUrl, new Docker.Inputs.RegistryArgs
        {
            Address = token.Apply(t => t.ProxyEndpoint),
            Username = token.Apply(t => t.UserName),
            Password = Output.CreateSecret(token.Apply(t => t.Password)),
        }, child);
        ImageReference = ImageBuild.DigestReference(repository.RepositoryUrl, image);

        var role = new Aws.Iam.Role(plan.Role.LogicalName, new Aws.Iam.RoleArgs
        {
            Name = plan.Role.Name,
            AssumeRolePolicy = plan.Role.AssumeRolePolicyJson,
        }, child);
        var attachments = new List<Resource>();
        for (int i = 0; i < plan.Role.ManagedPolicyArns.Count; i++)
            attachments.Add(new Aws.Iam.RolePolicyAttachment($"{plan.Role.LogicalName}-policy-{i}", new Aws.Iam.RolePolicyAttachmentArgs
            {
                Role = role.Name,
                PolicyArn = plan.Role.ManagedPolicyArns[i],
            }, child));

        foreach (var tier in plan.Tiers)
            Urls[tier.UrlOutputName] = Tier(tier, region, ImageReference, role, attachments, child);

        RegisterOutputs(Urls.ToDictionary(kv => kv.Key, kv => (object?)kv.Value));
    }

    private Output<string> Tier(LambdaTierPlan tier, string region, Output<string> imageUri, Aws.Iam.Role role, List<Resource> attachments,
        CustomResourceOptions child)
    {
        var logGroup = new Aws.CloudWatch.LogGroup(tier.LogGroup.LogicalName, new Aws.CloudWatch.LogGroupArgs
        {
            Name = tier.LogGroup.Name,
            Region = region,
            RetentionInDays = tier.LogGroup.RetentionInDays,
        }, child);

        var environment = new InputMap<string>();
        foreach (var (key, value) in tier.Function.Environment)
            environment.Add(key, value);
        // The first invocation writes logs: the log group and the role's policies must exist by then.
        var functionOptions = new CustomResourceOptions { Parent = this, DependsOn = [logGroup, .. attachments] };
        var function = new Aws.Lambda.Function(tier.Function.LogicalName, new Aws.Lambda.FunctionArgs
        {
            Name = tier.Function.Name,
            Region = region,
            Role = role.Arn,
            PackageType = tier.Function.PackageType,
            ImageUri = imageUri,
            Architectures = { tier.Function.Architecture },
            MemorySize = tier.Function.MemoryMb,
            Timeout = tier.Function.TimeoutSeconds,
            EphemeralStorage = new Aws.Lambda.Inputs.FunctionEphemeralStorageArgs { Size = tier.Function.EphemeralStorageMb },
            Environment = new Aws.Lambda.Inputs.FunctionEnvironmentArgs { Variables = environment },
            Publish = tier.Function.Publish,
            LoggingConfig = new Aws.Lambda.Inputs.FunctionLoggingConfigArgs { LogFormat = "Text", LogGroup = tier.Function.LogGroupName },
        }, functionOptions);

        var alias = new Aws.Lambda.Alias(tier.Alias.LogicalName, new Aws.Lambda.AliasArgs
        {
            Name = tier.Alias.Name,
            Region = region,
            FunctionName = function.Name,
            FunctionVersion = function.Version,
        }, child);

        if (tier.ProvisionedConcurrency is { } pc)
            _ = new Aws.Lambda.ProvisionedConcurrencyConfig(pc.LogicalName, new Aws.Lambda.ProvisionedConcurrencyConfigArgs
            {
                FunctionName = function.Name,
                Region = region,
                Qualifier = alias.Name,
                ProvisionedConcurrentExecutions = pc.ProvisionedConcurrentExecutions,
            }, child);

        var cors = tier.Url.Cors;
        var url = new Aws.Lambda.FunctionUrl(tier.Url.LogicalName, new Aws.Lambda.FunctionUrlArgs
        {
            FunctionName = function.Name,
            Region = region,
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
            _ = Permission(permission, region, function, alias, sourceArn: null, child);

        if (tier.KeepWarm is { } warm)
        {
            var rule = new Aws.CloudWatch.EventRule(warm.Rule.LogicalName, new Aws.CloudWatch.EventRuleArgs
            {
                Name = warm.Rule.Name,
                Region = region,
                ScheduleExpression = warm.Rule.ScheduleExpression,
                Description = warm.Rule.Description,
            }, child);
            _ = new Aws.CloudWatch.EventTarget(warm.Target.LogicalName, new Aws.CloudWatch.EventTargetArgs
            {
                Rule = rule.Name,
                Region = region,
                Arn = alias.Arn,
                TargetId = warm.Target.TargetId,
                Input = warm.Target.InputJson,
            }, child);
            _ = Permission(warm.Permission, region, function, alias, rule.Arn, child);
        }
        return url.FunctionUrlResult;
    }

    private static Aws.Lambda.Permission Permission(LambdaPermissionPlan plan, string region, Aws.Lambda.Function function, Aws.Lambda.Alias alias,
        Output<string>? sourceArn, CustomResourceOptions child)
    {
        var args = new Aws.Lambda.PermissionArgs
        {
            Function = function.Name,
            Region = region,
            Qualifier = alias.Name,
            StatementId = plan.StatementId,
            Action = plan.Action,
            Principal = plan.Principal,
        };
        if (plan.FunctionUrlAuthType is { } authType)
            args.FunctionUrlAuthType = authType;
        if (plan.InvokedViaFunctionUrl is { } viaUrl)
            args.InvokedViaFunctionUrl = viaUrl;
        if (plan.SourceArnFromKeepWarmRule)
            args.SourceArn = sourceArn ?? throw new InvalidOperationException($"{plan.LogicalName} needs the keep-warm rule's ARN");
        return new Aws.Lambda.Permission(plan.LogicalName, args, child);
    }
}
