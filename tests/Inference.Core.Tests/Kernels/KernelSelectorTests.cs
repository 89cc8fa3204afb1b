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
