using System.Diagnostics;

namespace BitNet.Cli.Tests.Errors;

/// <summary>The `bitnet` executable next to the tests, run as a user runs it: arguments, environment, exit code, output.</summary>
internal static class CliProcess
{
    public static string Executable => Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "bitnet.exe" : "bitnet");

    public static Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(IReadOnlyDictionary<string, string?>? environment, params string[] args) =>
        RunAsync(environment, null, args);

    /// <param name="started">Sees the process once it runs (to signal it, say).</param>
    public static async Task<(int ExitCode, string Stdout, string Stderr)> RunAsync(IReadOnlyDictionary<string, string?>? environment,
        Action<Process>? started, params string[] args)
    {
        var info = new ProcessStartInfo(Executable)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            RedirectStandardInput = true,
            UseShellExecute = false,
        };
        foreach (string arg in args)
            info.ArgumentList.Add(arg);
        foreach (string name in info.Environment.Keys.Where(k => k.StartsWith("BITNET_", StringComparison.Ordinal)).ToList())
            info.Environment.Remove(name);
        foreach (var (name, value) in environment ?? new Dictionary<string, string?>())
            info.Environment[name] = value;
        using Process process = Process.Start(info)!;
        started?.Invoke(process);
        process.StandardInput.Close();
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(3));
        return (process.ExitCode, await stdout, await stderr);
    }
}
