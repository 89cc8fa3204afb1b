using BitNet.Deploy.Planning;

namespace BitNet.Deploy.Pulumi.Tests.Support;

public static class ImageExpectations
{
    /// <summary>The docker-build image: pushed, built by the provider (no provenance), for the plan's platform, context, Dockerfile and build args.</summary>
    public static Inputs Verify(ProgramRun run, ImagePlan plan, string repositoryRoot, string repositoryUrl)
    {
        var image = run.Resource("docker-build:index:Image", plan.LogicalName);
        Assert.True(image.Flag("push"));
        Assert.False(image.Flag("exec")); // exec mode would run the local buildx with its default provenance attestation
        Assert.Equal([plan.Platform], image.Texts("platforms"));
        Assert.Equal(Path.GetFullPath(Path.Combine(repositoryRoot, plan.Context)), image.Object("context").Text("location"));
        Assert.Equal(Path.Combine(repositoryRoot, plan.Dockerfile), image.Object("dockerfile").Text("location"));
        Assert.True(File.Exists(image.Object("dockerfile").Text("location")), "the Dockerfile the image builds from exists");
        Assert.Equal(plan.BuildArgs.OrderBy(kv => kv.Key), image.TextMap("buildArgs").OrderBy(kv => kv.Key));
        Assert.Equal([plan.TagReference(repositoryUrl)], image.Texts("tags"));
        return image;
    }
}
