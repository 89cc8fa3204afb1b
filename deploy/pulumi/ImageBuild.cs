using BitNet.Deploy.Planning;
using Pulumi;
using Docker = Pulumi.DockerBuild;

namespace BitNet.Deploy.Pulumi;

/// <summary>The docker-build image of a plan, pushed to the stack's registry.</summary>
internal static class ImageBuild
{
    public static Docker.Image Create(ImagePlan plan, string repositoryRoot, Output<string> repositoryUrl, Docker.Inputs.RegistryArgs registry,
        CustomResourceOptions options)
    {
        var args = new Docker.ImageArgs
        {
            Push = true,
            // Not the local buildx: it adds a provenance attestation, and Lambda rejects the OCI index that makes.
            Exec = false,
            Tags = { repositoryUrl.Apply(plan.TagReference) },
            Context = new Docker.Inputs.BuildContextArgs { Location = Path.GetFullPath(Path.Combine(repositoryRoot, plan.Context)) },
            Dockerfile = new Docker.Inputs.DockerfileArgs { Location = Path.GetFullPath(Path.Combine(repositoryRoot, plan.Dockerfile)) },
            Platforms = { Platform(plan.Platform) },
            Registries = { registry },
        };
        foreach (var (key, value) in plan.BuildArgs)
            args.BuildArgs.Add(key, value);
        return new Docker.Image(plan.LogicalName, args, options);
    }

    /// <summary><c>repository@sha256:…</c> of the pushed image (see <see cref="ImagePlan.DigestReference"/>).</summary>
    public static Output<string> DigestReference(Output<string> repositoryUrl, Docker.Image image) =>
        Output.Tuple(repositoryUrl, image.Digest).Apply(t => ImagePlan.DigestReference(t.Item1, t.Item2));

    private static Docker.Platform Platform(string platform) => platform switch
    {
        "linux/arm64" => Docker.Platform.Linux_arm64,
        "linux/amd64" => Docker.Platform.Linux_amd64,
        _ => throw new ArgumentOutOfRangeException(nameof(platform), platform, "no docker-build platform for this value"),
    };
}
