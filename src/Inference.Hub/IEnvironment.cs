namespace BitNet.Inference.Hub;

/// <summary>
/// The slice of the process environment that model lookup depends on (variables and the home
/// folder). An interface so tests can describe a machine without touching the real environment.
/// </summary>
public interface IEnvironment
{
    /// <summary>The value of an environment variable, or null when it is unset or empty.</summary>
    string? GetVariable(string name);

    /// <summary>The user's home folder (what `~` means).</summary>
    string HomeDirectory { get; }
}

/// <summary>The real process environment.</summary>
public sealed class ProcessEnvironment : IEnvironment
{
    public static ProcessEnvironment Instance { get; } = new();

    private ProcessEnvironment() { }

    public string? GetVariable(string name)
    {
        string? value = Environment.GetEnvironmentVariable(name);
        return string.IsNullOrEmpty(value) ? null : value;
    }

    public string HomeDirectory => Environment.GetFolderPath(Environment.SpecialFolder.UserProfile);
}

/// <summary>A fixed environment (tests, or a host that wants to describe its own settings).</summary>
public sealed class DictionaryEnvironment(IReadOnlyDictionary<string, string?> variables, string homeDirectory) : IEnvironment
{
    public string? GetVariable(string name) =>
        variables.TryGetValue(name, out string? value) && !string.IsNullOrEmpty(value) ? value : null;

    public string HomeDirectory { get; } = homeDirectory;
}
