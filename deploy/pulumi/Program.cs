using BitNet.Deploy.Pulumi;
using Pulumi;

// `pulumi up` runs this from deploy/pulumi; the Docker build context is the repository root.
string repositoryRoot = Path.GetFullPath(Path.Combine(Directory.GetCurrentDirectory(), "..", ".."));
return await Deployment.RunAsync(() => BitNetStack.Build(repositoryRoot));
