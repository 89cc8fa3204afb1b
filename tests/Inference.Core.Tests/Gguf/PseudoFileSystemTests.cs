using BitNet.Inference.Gguf;

namespace BitNet.Inference.Tests.Gguf;

/// <summary>
/// The kernel's pseudo file systems are found by what statfs says of a path or of the nearest folder above it
/// that exists, and the GGUF writer refuses to write there before creating anything.
/// </summary>
public class PseudoFileSystemTests
{
    [Theory]
    [InlineData("/proc/version", "proc")]
    [InlineData("/proc/no-such-dir/x.gguf", "proc")]
    [InlineData("/sys/kernel", "sysfs")]
    [InlineData("/sys/no-such-file.gguf", "sysfs")]
    public void A_path_under_proc_or_sys_names_its_file_system(string path, string system)
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && Directory.Exists("/proc/self") && Directory.Exists("/sys/kernel"), "/proc and /sys are Linux's");
        Assert.Equal(system, SpecialFiles.PseudoFileSystem(path));
    }

    [Fact]
    public void A_path_on_a_disk_or_a_link_to_one_is_not_on_a_pseudo_file_system()
    {
        using var temp = new TempFolder();
        Assert.Null(SpecialFiles.PseudoFileSystem(temp.File("x.gguf")));
        Assert.Null(SpecialFiles.PseudoFileSystem(temp.File(Path.Combine("missing", "x.gguf"))));
        Assert.Null(SpecialFiles.PseudoFileSystemProblem(temp.File("x.gguf")));
    }

    [Fact]
    public void The_writer_refuses_a_path_under_proc_and_a_link_into_it()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() && File.Exists("/proc/version"), "/proc is Linux's");
        using var temp = new TempFolder();
        string link = temp.File("version.gguf");
        File.CreateSymbolicLink(link, "/proc/version");
        foreach (string path in new[] { "/proc/x.gguf", link })
        {
            var writer = new GgufWriter();
            writer.AddMetadata("general.name", GgufValue.From("x"));
            var refused = Assert.Throws<IOException>(() => writer.WriteTo(path));
            Assert.Equal($"cannot write '{path}': it is on the kernel's proc file system, whose files are settings and reports, not storage; give a path on a disk",
                refused.Message);
        }
        Assert.Equal(["version.gguf"], Directory.EnumerateFileSystemEntries(temp.Path).Select(Path.GetFileName));
    }
}
