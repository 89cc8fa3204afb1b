using BitNet.Inference.Kernels;

namespace BitNet.Inference.Tests.Kernels;

public class KernelSelectorTests
{
    [Fact]
    public void Every_kernel_set_has_an_architecture_and_only_this_ones_sets_or_scalar_run_here()
    {
        foreach (KernelSet set in KernelSet.All)
        {
            var arch = KernelTestData.ArchitectureOf(set.Name);
            if (set.IsSupported)
                Assert.True(arch is null || arch == System.Runtime.InteropServices.RuntimeInformation.ProcessArchitecture,
                    $"'{set.Name}' runs here but is listed for {arch}");
        }
        Assert.Contains(KernelSet.Scalar.Name, KernelTestData.OfThisArchitecture([.. KernelSet.All.Select(k => k.Name)]));
    }

    [Fact]
    public void The_vnni_kernels_unpack_with_shifts_exactly_on_amd_family_1ah_and_later()
    {
        if (!OperatingSystem.IsLinux() || !System.Runtime.Intrinsics.X86.X86Base.IsSupported)
            Assert.Skip("reads the CPU's vendor and family from /proc/cpuinfo (Linux x86-64)");
        string[] lines = File.ReadAllLines("/proc/cpuinfo");
        string Field(string name) => lines.First(l => l.StartsWith(name, StringComparison.Ordinal)).Split(':')[1].Trim();
        bool zen5 = Field("vendor_id") == "AuthenticAMD" && int.Parse(Field("cpu family"), System.Globalization.CultureInfo.InvariantCulture) >= 0x1A;
        Assert.Equal(zen5, BitNet.Inference.Kernels.X64.X64Cpu.IsAmdZen5OrLater);
        if (I2sKernels.VnniKernels.Best is { } best)
            Assert.Equal(zen5 || !BitNet.Inference.Kernels.X64.X64Cpu.HasGfni ? "shift" : "gfni", best.Unpack);
    }

    [Fact]
    public void Default_choice_is_the_first_supported_set_and_is_logged()
    {
        var log = new List<string>();
        KernelSet chosen = KernelSelector.Select(null, log.Add);
        Assert.Equal(KernelSet.All.First(k => k.IsSupported), chosen);
        Assert.Contains($"i2s-{chosen.Name}", Assert.Single(log));
    }

    [Fact]
    public void Scalar_can_always_be_forced_whatever_the_case()
    {
        Assert.Same(KernelSet.Scalar, KernelSelector.Select("SCALAR"));
    }

    [Fact]
    public void Unknown_kernel_name_throws_listing_the_valid_names()
    {
        var ex = Assert.Throws<ArgumentException>(() => KernelSelector.Select("sse9"));
        Assert.Contains("avx512", ex.Message);
    }

    [Fact]
    public void Unsupported_kernel_throws_not_supported()
    {
        KernelSet? missing = KernelSet.All.FirstOrDefault(k => !k.IsSupported);
        if (missing is null) Assert.Skip("this CPU supports every kernel set");
        Assert.Throws<NotSupportedException>(() => KernelSelector.Select(missing.Name));
    }
}
