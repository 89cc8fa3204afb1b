using System.Diagnostics;
using System.Runtime.CompilerServices;

namespace BitNet.Deploy.Tests;

/// <summary>
/// The x86 images carry an x86-64-v3 and an x86-64-v4 build of each Native AOT host behind
/// containers/start-x64.sh, which containers/publish-native.sh installs under the host's name. These
/// tests run both scripts with /bin/sh: the launcher against cpuinfo files and stand-in binaries, the
/// publish script against a stand-in `dotnet` that records its arguments.
/// </summary>
[System.Runtime.Versioning.SupportedOSPlatform("linux")]
public sealed class NativeLauncherTests : IDisposable
{
    /// <summary>The subsets x86-64-v4 requires.</summary>
    private static readonly string[] V4Subsets = ["avx512f", "avx512dq", "avx512cd", "avx512bw", "avx512vl"];
    private static readonly string[] Levels = ["v3", "v4"];
    private const string V4Flags = "fpu sse2 avx avx2 fma f16c bmi2 avx512f avx512dq avx512cd avx512bw avx512vl avx512_vnni gfni";
    private readonly string _dir = Directory.CreateTempSubdirectory("bitnet-launcher-").FullName;

    private static string Containers([CallerFilePath] string file = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", "..", "containers"));

    public void Dispose() => Directory.Delete(_dir, recursive: true);

    [Fact]
    public void Starts_the_v4_build_where_the_cpu_has_every_avx512_subset_x86_64_v4_needs()
    {
        var run = Launch(Cpuinfo(V4Flags), ["serve", "--port", "8080"]);
        Assert.Equal(0, run.ExitCode);
        Assert.Equal("x64v4 serve --port 8080", run.FirstLine);
    }

    [Theory]
    [InlineData("avx512f")]
    [InlineData("avx512dq")]
    [InlineData("avx512cd")]
    [InlineData("avx512bw")]
    [InlineData("avx512vl")]
    public void Starts_the_v3_build_when_one_required_subset_is_missing(string missing)
    {
        string flags = string.Join(' ', V4Flags.Split(' ').Where(f => f != missing));
        Assert.Equal("x64v3", Launch(Cpuinfo(flags)).FirstLine);
    }

    [Fact]
    public void Starts_the_v3_build_on_an_avx2_cpu_and_matches_flags_as_whole_words()
    {
        Assert.Equal("x64v3", Launch(Cpuinfo("fpu avx avx2 fma")).FirstLine);
        // avx512fx is not avx512f: a flag must match a whole word of the list.
        Assert.Equal("x64v3", Launch(Cpuinfo("avx2 avx512fx avx512dq avx512cd avx512bw avx512vl")).FirstLine);
    }

    [Fact]
    public void The_override_forces_either_build_and_rejects_anything_else()
    {
        Assert.Equal("x64v3", Launch(Cpuinfo(V4Flags), env: ("BITNET_X64_LEVEL", "v3")).FirstLine);
        Assert.Equal("x64v4", Launch(Cpuinfo("avx2"), env: ("BITNET_X64_LEVEL", "v4")).FirstLine);
        Assert.Equal("x64v4", Launch(Cpuinfo(V4Flags), env: ("BITNET_X64_LEVEL", "auto")).FirstLine);

        var bad = Launch(Cpuinfo(V4Flags), env: ("BITNET_X64_LEVEL", "v5"));
        Assert.Equal(2, bad.ExitCode);
        Assert.Equal("", bad.Stdout);
        Assert.Contains("BITNET_X64_LEVEL must be v3, v4 or auto, not 'v5'", bad.Stderr);
    }

    [Fact]
    public void Arguments_stdin_and_the_exit_code_pass_through()
    {
        var run = Launch(Cpuinfo("avx2"), ["--flag", "two words", ""], stdin: "event body", exitCode: 7);
        Assert.Equal(7, run.ExitCode);
        Assert.Equal("x64v3 --flag two words \n<event body>", run.Stdout.TrimEnd());
    }

    [Fact]
    public void Reads_this_machines_cpuinfo_by_default()
    {
        if (!File.Exists("/proc/cpuinfo") || !File.ReadLines("/proc/cpuinfo").Any(l => l.StartsWith("flags")))
            Assert.Skip("no x86 /proc/cpuinfo flags line on this machine");
        var flags = File.ReadLines("/proc/cpuinfo").First(l => l.StartsWith("flags")).Split(':', 2)[1]
            .Split(' ', StringSplitOptions.RemoveEmptyEntries).ToHashSet();
        bool v4 = V4Subsets.All(flags.Contains);
        Assert.Equal(v4 ? "x64v4" : "x64v3", Launch(cpuinfo: null).FirstLine);
    }

    [Fact]
    public void Publishing_for_amd64_installs_both_builds_behind_the_launcher()
    {
        string output = Path.Combine(_dir, "out");
        var run = Publish("amd64", output);
        Assert.True(run.ExitCode == 0, run.Stderr);

        string[] calls = File.ReadAllLines(Path.Combine(_dir, "dotnet.log"));
        Assert.Equal(2, calls.Length);
        foreach (var (call, level) in calls.Zip(Levels))
        {
            Assert.StartsWith("publish src/Hosts.Server/Hosts.Server.csproj -c Release -p:PublishAot=true -p:StripSymbols=true", call);
            Assert.Contains($"-r linux-x64 -p:BitNetX64Level={level} -p:IntermediateOutputPath=obj/x64{level}/", call);
        }
        Assert.Equal(["bitnet-server", "bitnet-server-x64v3", "bitnet-server-x64v4"],
            Directory.GetFileSystemEntries(output).Select(Path.GetFileName).Order(StringComparer.Ordinal));
        Assert.Equal(File.ReadAllText(Path.Combine(Containers(), "start-x64.sh")), File.ReadAllText(Path.Combine(output, "bitnet-server")));
        foreach (string level in Levels)
            Assert.Contains($"-p:BitNetX64Level={level} ", File.ReadAllText(Path.Combine(output, $"bitnet-server-x64{level}")));
        Assert.True(File.GetUnixFileMode(Path.Combine(output, "bitnet-server")).HasFlag(UnixFileMode.UserExecute));
    }

    [Fact]
    public void Publishing_for_arm64_installs_one_build_under_the_hosts_name()
    {
        string output = Path.Combine(_dir, "out");
        var run = Publish("arm64", output);
        Assert.True(run.ExitCode == 0, run.Stderr);
        string call = Assert.Single(File.ReadAllLines(Path.Combine(_dir, "dotnet.log")));
        Assert.EndsWith("-r linux-arm64", call);
        Assert.DoesNotContain("BitNetX64Level", call);
        Assert.Equal(["bitnet-server"], Directory.GetFileSystemEntries(output).Select(Path.GetFileName));
    }

    [Theory]
    [InlineData("arm64", 1)]
    [InlineData("amd64", 2)]
    public void Further_arguments_reach_every_build_unsplit(string arch, int builds)
    {
        var run = Publish(arch, Path.Combine(_dir, "out"), false, "-p:LinkerFlavor=lld", "-p:Note=two words");
        Assert.True(run.ExitCode == 0, run.Stderr);
        string[] calls = File.ReadAllLines(Path.Combine(_dir, "dotnet.log"));
        Assert.Equal(builds, calls.Length);
        // The stand-in dotnet logs one line per argument count too: 'two words' must stay one argument.
        foreach (string call in calls)
            Assert.EndsWith(" -p:LinkerFlavor=lld -p:Note=two words", call);
        Assert.Equal(Enumerable.Repeat(arch == "arm64" ? 12 : 14, builds), File.ReadAllLines(Path.Combine(_dir, "dotnet.argc")).Select(int.Parse));
    }

    [Fact]
    public void Publishing_fails_for_an_unknown_platform_or_a_failed_build()
    {
        var unknown = Publish("riscv64", Path.Combine(_dir, "out1"));
        Assert.Equal(1, unknown.ExitCode);
        Assert.Contains("unsupported TARGETARCH 'riscv64'", unknown.Stderr);

        var failed = Publish("amd64", Path.Combine(_dir, "out2"), dotnetFails: true);
        Assert.NotEqual(0, failed.ExitCode);
        Assert.False(File.Exists(Path.Combine(_dir, "out2", "bitnet-server")));
    }

    private string Cpuinfo(string flags)
    {
        string path = Path.Combine(_dir, $"cpuinfo-{Guid.NewGuid():N}");
        // Two processors, as /proc/cpuinfo lists them; the launcher reads the first flags line.
        string processor = $"processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: {flags}\n\n";
        File.WriteAllText(path, processor + processor.Replace(": 0", ": 1"));
        return path;
    }

    /// <summary>Installs the launcher as "host" beside two stand-in builds that print their level, their
    /// arguments (and stdin in angle brackets) and exit with <paramref name="exitCode"/>; runs it.</summary>
    private Result Launch(string? cpuinfo, string[]? args = null, string stdin = "", int exitCode = 0, params (string Name, string Value)[] env)
    {
        string bin = Path.Combine(_dir, "bin");
        Directory.CreateDirectory(bin);
        string host = Path.Combine(bin, "host");
        File.Copy(Path.Combine(Containers(), "start-x64.sh"), host, overwrite: true);
        foreach (string level in Levels)
            WriteExecutable(Path.Combine(bin, $"host-x64{level}"), $"#!/bin/sh\necho x64{level} \"$@\"\nprintf '<%s>\\n' \"$(cat)\"\nexit {exitCode}\n");
        var start = new ProcessStartInfo(host) { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in args ?? []) start.ArgumentList.Add(a);
        start.Environment.Remove("BITNET_X64_LEVEL");
        if (cpuinfo is not null) start.Environment["BITNET_CPUINFO"] = cpuinfo;
        foreach (var (name, value) in env) start.Environment[name] = value;
        return Run(start, stdin);
    }

    /// <summary>Runs publish-native.sh for the server with a stand-in dotnet first on PATH, which logs its
    /// arguments and writes the executable (and a symbols file) where -o points.</summary>
    private Result Publish(string arch, string output, bool dotnetFails = false, params string[] publishArguments)
    {
        string tools = Path.Combine(_dir, "tools");
        Directory.CreateDirectory(tools);
        WriteExecutable(Path.Combine(tools, "dotnet"), $$"""
            #!/bin/sh
            echo "$*" >> "{{_dir}}/dotnet.log"
            echo "$#" >> "{{_dir}}/dotnet.argc"
            {{(dotnetFails ? "exit 3" : "")}}
            out=; prev=
            for a in "$@"; do [ "$prev" = -o ] && out=$a; prev=$a; done
            mkdir -p "$out"
            args=$(echo "$*" | sed 's/.* -o [^ ]* //')
            printf '#!/bin/sh\n# built with %s\n' "$args" > "$out/bitnet-server"
            chmod +x "$out/bitnet-server"
            : > "$out/bitnet-server.dbg"
            """);
        var start = new ProcessStartInfo("/bin/sh") { RedirectStandardInput = true, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (string a in new[] { Path.Combine(Containers(), "publish-native.sh"), "src/Hosts.Server/Hosts.Server.csproj", "bitnet-server", output, arch }.Concat(publishArguments))
            start.ArgumentList.Add(a);
        start.Environment["PATH"] = tools + ":" + Environment.GetEnvironmentVariable("PATH");
        return Run(start, "");
    }

    private static void WriteExecutable(string path, string text)
    {
        File.WriteAllText(path, text.Replace("\r", ""));
        File.SetUnixFileMode(path, UnixFileMode.UserRead | UnixFileMode.UserWrite | UnixFileMode.UserExecute);
    }

    private static Result Run(ProcessStartInfo start, string stdin)
    {
        using var process = Process.Start(start)!;
        process.StandardInput.Write(stdin);
        process.StandardInput.Close();
        var stderr = process.StandardError.ReadToEndAsync();
        string stdout = process.StandardOutput.ReadToEnd();
        Assert.True(process.WaitForExit(30_000), "the script did not finish within 30 s");
        return new Result(process.ExitCode, stdout, stderr.Result);
    }

    private sealed record Result(int ExitCode, string Stdout, string Stderr)
    {
        /// <summary>What a stand-in build printed first: its level and arguments.</summary>
        public string FirstLine => Stdout.Split('\n')[0];
    }
}
