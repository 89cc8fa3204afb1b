using BitNet.Deploy.Planning;
using Pulumi;

namespace BitNet.Deploy.Pulumi;

/// <summary>
/// The whole program: read the stack's <c>bitnet:*</c> settings, let Deploy.Planning decide everything,
/// then create the chosen cloud's resources. Returns the stack outputs: one URL per tier and the image.
/// </summary>
public static class BitNetStack
{
    public const string ImageOutput = "image";

    /// <param name="repositoryRoot">The Docker build context (the image plans' paths are relative to it).</param>
    public static IDictionary<string, object?> Build(string repositoryRoot)
    {
        DeploymentPlan plan = Plan();
        var outputs = new Dictionary<string, object?>();
        if (plan.Aws is { } aws)
        {
            var stack = new AwsDeployment("bitnet-aws", aws, repositoryRoot);
            foreach (var (name, url) in stack.Urls)
                outputs[name] = url;
            outputs[ImageOutput] = stack.ImageReference;
        }
        else
        {
            var stack = new AzureDeployment("bitnet-azure", plan.Azure!, repositoryRoot);
            foreach (var (name, url) in stack.Urls)
                outputs[name] = url;
            outputs[ImageOutput] = stack.ImageReference;
        }
        return outputs;
    }

    private static DeploymentPlan Plan()
    {
        var settings = new Config("bitnet");
        try
        {
            DeploymentConfig config = ConfigReader.Read(Deployment.Instance.ProjectName, Deployment.Instance.StackName, key => settings.Get(key));
            return DeploymentPlanner.Plan(config);
        }
        catch (DeploymentConfigException e)
        {
            // Pulumi prints a RunException's message alone: every problem, one per line, no stack trace.
            throw new RunException(e.Message);
        }
    }
}
