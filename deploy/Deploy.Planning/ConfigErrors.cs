namespace BitNet.Deploy.Planning;

/// <summary>One problem in a stack's configuration: where (<c>aws.tiers[1].memoryMb</c>) and what is wrong.</summary>
public sealed record ConfigError(string Path, string Message)
{
    public override string ToString() => $"{Path}: {Message}";
}

/// <summary>The configuration cannot be deployed; <see cref="Errors"/> lists every problem found, not just the first.</summary>
public sealed class DeploymentConfigException(IReadOnlyList<ConfigError> errors)
    : Exception("invalid deployment configuration:" + string.Concat(errors.Select(e => $"{Environment.NewLine}  - {e}")))
{
    public IReadOnlyList<ConfigError> Errors { get; } = errors;
}
