using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace BitNet.Deploy.Tests;

/// <summary>
/// The instruction-set baseline each Native AOT executable is compiled for, as MSBuild evaluates it for a
/// publish. Below x86-64-v3 (or ARMv8.2-A + dotprod) the engine's SIMD kernel sets are compiled out and
/// the binary runs the scalar kernels, so every executable an image ships must get src/NativeAot.props.
/// </summary>
public sealed class NativeBaselineTests
{
    private static string RepoRoot([CallerFilePath] string file = "") => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));

    public static TheoryData<string, string, string, string> Publishes() => new()
    {
        { "src/Hosts.Lambda", "linux-x64", "", "x86-64-v3" },
        { "src/Hosts.Lambda", "linux-x64", "v4", "x86-64-v4" },
        { "src/Hosts.Lambda", "linux-arm64", "", "armv8.2-a,dotprod" },
        { "src/Hosts.Server", "linux-x64", "", "x86-64-v3" },
        { "src/Hosts.Server", "linux-x64", "v4", "x86-64-v4" },
        { "src/Hosts.Server", "linux-arm64", "", "armv8.2-a,dotprod" },
        { "src/Cli", "linux-x64", "", "x86-64-v3" },
        { "src/Cli", "linux-arm64", "", "armv8.2-a,dotprod" },
    };

    [Theory]
    [MemberData(nameof(Publishes))]
    public void Native_aot_publish_targets_the_engines_baseline(string project, string rid, string x64Level, string expected)
    {
        List<string> args = ["msbuild", project, "-nologo", "-getProperty:IlcInstructionSet", "-p:PublishAot=true", $"-p:RuntimeIdentifier={rid}"];
        if (x64Level.Length > 0) args.Add($"-p:BitNetX64Level={x64Level}");
        var (exitCode, output) = Dotnet(args);
        Assert.True(exitCode == 0, output);
        Assert.Equal(expected, output.Trim());
    }

    private static (int ExitCode, string Output) Dotnet(IEnumerable<string> args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, WorkingDirectory = RepoRoot() };
        foreach (string a in args) start.ArgumentList.Add(a);
        using var process = Process.Start(start)!;
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(120_000), "msbuild did not finish within 2 minutes");
        return (process.ExitCode, process.ExitCode == 0 ? stdout : stdout + stderr.Result);
    }
}
