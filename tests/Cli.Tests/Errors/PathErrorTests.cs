using BitNet.Tests.Shared;

namespace BitNet.Cli.Tests.Errors;

/// <summary>
/// Paths given to the commands that read or write files besides the model (dummy and convert
/// --vocab-from, logits and dummy -o, bench-cost and tiers --prices and --results): an empty path,
/// a folder where a file belongs, a file where a folder belongs or a missing file is one line naming
/// it, before any work, never a .NET message or type name.
/// </summary>
public sealed class PathErrorTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bitnet-cli-paths-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    public static TheoryData<string, string[]> BadPaths => new()
    {
        { "error: cannot write '': give a file name such as dummy.gguf", ["dummy", "--shape", "tiny", "-o", ""] },
        { "error: cannot write '': give a file name such as logits.f32", ["logits", "-m", SharedData.OracleModelPath, "--tokens", "1", "-o", ""] },
        { "error: no GGUF file given: the path is empty", ["dummy", "--shape", "tiny", "-o", "DIR/d.gguf", "--vocab-from", ""] },
        { "error: 'DIR' is a directory, not a GGUF file", ["dummy", "--shape", "tiny", "-o", "DIR/d.gguf", "--vocab-from", "DIR"] },
        { "error: --prices is empty; give a JSON price file", ["bench-cost", "--url", "http://127.0.0.1:1", "--hardware", "local", "--results", "DIR", "--prices", ""] },
        { "error: 'DIR' is a directory; --prices takes a JSON price file", ["bench-cost", "--url", "http://127.0.0.1:1", "--hardware", "local", "--results", "DIR", "--prices", "DIR"] },
        { "error: price file 'DIR/none.json' not found", ["bench-cost", "--url", "http://127.0.0.1:1", "--hardware", "local", "--results", "DIR", "--prices", "DIR/none.json"] },
        { "error: 'DIR' is a directory; --prices takes a JSON price file", ["tiers", "-m", "/nonexistent.gguf", "--prices", "DIR"] },
        { "error: --results is empty; give a folder", ["bench-cost", "--url", "http://127.0.0.1:1", "--hardware", "local", "--results", ""] },
        { "error: --results 'DIR/file.txt' is a file; give a folder (results are written inside it)", ["bench-cost", "--url", "http://127.0.0.1:1", "--hardware", "local", "--results", "DIR/file.txt"] },
        { "error: --results 'DIR/file.txt' is a file; give a folder (results are written inside it)", ["tiers", "-m", "/nonexistent.gguf", "--results", "DIR/file.txt"] },
    };

    [Theory]
    [MemberData(nameof(BadPaths))]
    public async Task A_path_that_cannot_be_used_is_one_line_naming_it_before_any_work(string message, string[] args)
    {
        File.WriteAllText(Path.Combine(_dir, "file.txt"), "not a folder");
        var (exit, stdout, stderr) = await CliProcess.RunAsync(null, [.. args.Select(a => a.Replace("DIR", _dir, StringComparison.Ordinal))]);
        Assert.NotEqual(0, exit);
        Assert.Equal(message.Replace("DIR", _dir, StringComparison.Ordinal), stderr.Trim());
        Assert.Equal("", stdout);
        Assert.Equal(["file.txt"], Directory.EnumerateFileSystemEntries(_dir).Select(Path.GetFileName));
    }

    [Fact]
    public async Task A_price_file_that_is_not_a_price_table_names_the_file_and_the_place_not_a_dotnet_type()
    {
        string prices = Path.Combine(_dir, "prices.json");
        File.WriteAllText(prices, """{"local": {"hourlyUsd": 1}}""");
        var (exit, _, stderr) = await CliProcess.RunAsync(null, "bench-cost", "--url", "http://127.0.0.1:1", "--hardware", "local",
            "--results", _dir, "--prices", prices);
        Assert.Equal(1, exit);
        Assert.StartsWith($"error: price file {prices} is not a JSON array of {{\"name\"", stderr.Trim());
        Assert.EndsWith("(line 1, byte 2)", stderr.Trim());
        Assert.DoesNotContain("System.", stderr);
    }

    /// <summary>Paths on the kernel's pseudo file systems whose writing fails without side effects: nothing can be created in /proc or /sys.</summary>
    public static TheoryData<string, string, string[]> KernelPaths => new()
    {
        { "/proc/version", "proc", ["dummy", "--shape", "tiny", "-o", "/proc/version"] },
        { "/proc/x.gguf", "proc", ["dummy", "--shape", "tiny", "-o", "/proc/x.gguf"] },
        { "/sys/x.gguf", "sysfs", ["dummy", "--shape", "tiny", "-o", "/sys/x.gguf"] },
        { "/proc/x.f32", "proc", ["logits", "-m", SharedData.OracleModelPath, "--tokens", "1", "-o", "/proc/x.f32"] },
        { "/proc/x.gguf", "proc", ["convert", "--naive", "DIR/none.safetensors", "/proc/x.gguf"] },
    };

    [Theory]
    [MemberData(nameof(KernelPaths))]
    public async Task An_output_file_on_the_kernels_pseudo_file_systems_is_one_line_naming_it(string path, string system, string[] args)
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/proc and /sys are Linux's");
        var (exit, stdout, stderr) = await CliProcess.RunAsync(null, [.. args.Select(a => a.Replace("DIR", _dir, StringComparison.Ordinal))]);
        Assert.NotEqual(0, exit);
        Assert.Equal($"error: cannot write '{path}': it is on the kernel's {system} file system, whose files are settings and reports, not storage; give a path on a disk",
            stderr.Trim());
        Assert.Equal("", stdout);
    }

    [Theory]
    [InlineData("/proc/bitnet-results", "proc", "bench-cost", "--url", "http://127.0.0.1:1", "--hardware", "local", "--results")]
    [InlineData("/sys/bitnet-results", "sysfs", "tiers", "-m", "/nonexistent.gguf", "--results")]
    public async Task A_results_folder_on_the_kernels_pseudo_file_systems_is_one_line_naming_it(string folder, string system, params string[] args)
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/proc and /sys are Linux's");
        var (exit, _, stderr) = await CliProcess.RunAsync(null, [.. args, folder]);
        Assert.Equal(1, exit);
        Assert.Equal($"error: --results '{folder}': it is on the kernel's {system} file system, whose files are settings and reports, not storage; give a folder on a disk",
            stderr.Trim());
    }

    [Fact]
    public async Task Dummy_refuses_a_symbolic_link_into_proc()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/proc is Linux's");
        string link = Path.Combine(_dir, "version.gguf");
        File.CreateSymbolicLink(link, "/proc/version");
        var (exit, _, stderr) = await CliProcess.RunAsync(null, "dummy", "--shape", "tiny", "-o", link);
        Assert.Equal(1, exit);
        Assert.Equal($"error: cannot write '{link}': it is on the kernel's proc file system, whose files are settings and reports, not storage; give a path on a disk",
            stderr.Trim());
        Assert.Equal("/proc/version", new FileInfo(link).LinkTarget);
    }

    [Fact]
    public async Task Dummy_refuses_to_replace_a_pipe_with_the_model()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "statx is Linux's");
        string fifo = Path.Combine(_dir, "pipe");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo]))
            await mkfifo.WaitForExitAsync(TestContext.Current.CancellationToken);
        var (exit, _, stderr) = await CliProcess.RunAsync(null, "dummy", "--shape", "tiny", "-o", fifo);
        Assert.Equal(1, exit);
        Assert.Equal($"error: cannot write '{fifo}': it is a device, pipe or socket, which the finished file would replace; give a file name", stderr.Trim());
        Assert.Equal(0, new FileInfo(fifo).Length);   // still the pipe, not a 165 kB file moved over it
        Assert.False(File.Exists(fifo + ".partial"));
    }

    [Fact]
    public async Task Dummy_writes_through_a_symbolic_link_and_keeps_the_link()
    {
        string target = Path.Combine(_dir, "target.gguf"), link = Path.Combine(_dir, "link.gguf");
        File.WriteAllText(target, "old");
        File.CreateSymbolicLink(link, target);
        var (exit, _, stderr) = await CliProcess.RunAsync(null, "dummy", "--shape", "tiny", "-o", link);
        Assert.True(exit == 0, stderr);
        Assert.Equal(target, new FileInfo(link).LinkTarget);
        Assert.True(new FileInfo(target).Length > 1000);
    }
}
