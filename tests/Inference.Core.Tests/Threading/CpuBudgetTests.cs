using BitNet.Inference.Threading;

namespace BitNet.Inference.Tests.Threading;

public class CpuBudgetTests
{
    private static readonly int[] CpusOfTheListBelow = [0, 1, 2, 3, 8, 10, 11];

    [Theory]
    [InlineData("max 100000\n", null)]
    [InlineData("200000 100000\n", 2.0)]
    [InlineData("150000 100000", 1.5)]
    [InlineData("50000 100000", 0.5)]
    [InlineData("100000", 1.0)]          // period omitted: the kernel default, 100 ms
    [InlineData("", null)]
    [InlineData("garbage 100000", null)]
    public void Cgroup_v2_cpu_max_is_parsed_into_cpus(string content, double? cpus)
    {
        Assert.Equal(cpus, CpuBudget.ParseCpuMax(content));
    }

    [Theory]
    [InlineData("-1\n", "100000\n", null)]
    [InlineData("300000\n", "100000\n", 3.0)]
    [InlineData("25000", "50000", 0.5)]
    [InlineData("100000", "0", null)]
    public void Cgroup_v1_cfs_quota_and_period_are_parsed_into_cpus(string quota, string period, double? cpus)
    {
        Assert.Equal(cpus, CpuBudget.ParseCfs(quota, period));
    }

    [Theory]
    [InlineData(0.5, 1)]
    [InlineData(1.0, 1)]
    [InlineData(1.5, 2)]
    [InlineData(1.4, 1)]
    [InlineData(6.0, 6)]
    public void A_fractional_quota_rounds_to_whole_threads_but_never_below_one(double cpus, int threads)
    {
        Assert.Equal(threads, CpuBudget.QuotaToThreads(cpus));
    }

    [Fact]
    public void Quota_is_read_from_a_cgroup_v2_folder()
    {
        string root = Directory.CreateTempSubdirectory("cgroup").FullName;
        try
        {
            File.WriteAllText(Path.Combine(root, "cpu.max"), "150000 100000\n");
            Assert.Equal(1.5, CpuBudget.ReadQuotaCpus(root));
        }
        finally { Directory.Delete(root, true); }
    }

    [Fact]
    public void Quota_is_read_from_a_cgroup_v1_cpu_controller()
    {
        string root = Directory.CreateTempSubdirectory("cgroup").FullName;
        try
        {
            Directory.CreateDirectory(Path.Combine(root, "cpu,cpuacct"));
            File.WriteAllText(Path.Combine(root, "cpu,cpuacct", "cpu.cfs_quota_us"), "200000\n");
            File.WriteAllText(Path.Combine(root, "cpu,cpuacct", "cpu.cfs_period_us"), "100000\n");
            Assert.Equal(2.0, CpuBudget.ReadQuotaCpus(root));
        }
        finally { Directory.Delete(root, true); }
    }

    [Fact]
    public void Cpu_lists_expand_ranges()
    {
        Assert.Equal(CpusOfTheListBelow, CpuBudget.ParseCpuList("0-3,8,10-11\n").Order());
    }

    [Fact]
    public void Default_thread_count_stays_within_the_processor_count()
    {
        int threads = CpuBudget.DefaultThreads();
        Assert.InRange(threads, 1, Environment.ProcessorCount);
    }
}
