using BitNet.Deploy.Planning;
using BitNet.Deploy.Pulumi;
using Pulumi;

// `pulumi up`: read the stack's settings, let Deploy.Planning decide everything (validation
// errors stop here with every problem listed), then create the resources of the chosen cloud.
return await Deployment.RunAsync(() =>
{
    var settings = new Config("bitnet");
    DeploymentConfig config = ConfigReader.Read(Deployment.Instance.ProjectName, Deployment.Instance.StackName, key => settings.Get(key));
    DeploymentPlan plan = DeploymentPlanner.Plan(config);

    // The Docker build context is the repository root (two levels up from deploy/pulumi).
    string repositoryRoot = Path.GetFullPath(Path.Combine(Directory.GetCurrentDirectory(), "..", ".."));

    var outputs = new Dictionary<string, object?>();
    if (plan.Aws is { } aws)
    {
        var stack = new AwsDeployment("bitnet-aws", aws, repositoryRoot);
        foreach (var (name, url) in stack.Urls)
            outputs[name] = url;
        outputs["image"] = stack.ImageRef;
    }
    else
    {
        var stack = new AzureDeployment("bitnet-azure", plan.Azure!, repositoryRoot);
        foreach (var (name, url) in stack.Urls)
            outputs[name] = url;
        outputs["image"] = stack.ImageRef;
    }
    return outputs;
});
