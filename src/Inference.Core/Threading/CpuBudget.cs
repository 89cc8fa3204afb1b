using System.Globalization;

namespace BitNet.Inference.Threading;

/// <summary>
/// How many compute threads this process should use by default: the physical cores it may run
/// on, capped by a cgroup CPU quota. Lambda, containers and Kubernetes limit CPU through the quota
/// (cgroup v2 <c>cpu.max</c>, v1 <c>cpu.cfs_quota_us</c>/<c>cpu.cfs_period_us</c>), not through the
/// CPU count, and one thread per hyperthread only adds contention on a memory-bound decode.
/// </summary>
public static class CpuBudget
{
    /// <summary>The default `-t`: max(1, min(logical CPUs the process may use, physical cores among them, quota)).</summary>
    public static int DefaultThreads()
    {
        int logical = Environment.ProcessorCount;   // already honours affinity masks
        int physical = PhysicalCoresOrNull() ?? logical;
        double? quota = ReadQuotaCpus();
        int budget = Math.Min(logical, physical);
        if (quota is double q) budget = Math.Min(budget, QuotaToThreads(q));
        return Math.Max(1, budget);
    }

    /// <summary>A fractional quota (1.5 CPUs) rounds to the nearest whole thread, never below one.</summary>
    public static int QuotaToThreads(double cpus) => Math.Max(1, (int)Math.Round(cpus, MidpointRounding.AwayFromZero));

    /// <summary>Quota from cgroup v2 (<c>/sys/fs/cgroup/cpu.max</c>) or v1; null when unlimited or unknown.</summary>
    public static double? ReadQuotaCpus(string root = "/sys/fs/cgroup")
    {
        try
        {
            string v2 = Path.Combine(root, "cpu.max");
            if (File.Exists(v2)) return ParseCpuMax(File.ReadAllText(v2));
            foreach (string dir in new[] { Path.Combine(root, "cpu"), Path.Combine(root, "cpu,cpuacct"), root })
            {
                string quota = Path.Combine(dir, "cpu.cfs_quota_us"), period = Path.Combine(dir, "cpu.cfs_period_us");
                if (File.Exists(quota) && File.Exists(period))
                    return ParseCfs(File.ReadAllText(quota), File.ReadAllText(period));
            }
        }
        catch (IOException) { }
        catch (UnauthorizedAccessException) { }
        return null;
    }

    /// <summary>cgroup v2 <c>cpu.max</c>: "max 100000" (no limit) or "150000 100000" (1.5 CPUs).</summary>
    public static double? ParseCpuMax(string content)
    {
        string[] parts = content.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        if (parts.Length == 0 || parts[0] == "max") return null;
        if (!long.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out long quota) || quota <= 0) return null;
        long period = 100_000;
        if (parts.Length > 1 && (!long.TryParse(parts[1], NumberStyles.Integer, CultureInfo.InvariantCulture, out period) || period <= 0))
            return null;
        return (double)quota / period;
    }

    /// <summary>cgroup v1: quota −1 means unlimited.</summary>
    public static double? ParseCfs(string quotaText, string periodText)
    {
        if (!long.TryParse(quotaText.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long quota) || quota <= 0) return null;
        if (!long.TryParse(periodText.Trim(), NumberStyles.Integer, CultureInfo.InvariantCulture, out long period) || period <= 0) return null;
        return (double)quota / period;
    }

    /// <summary>
    /// Distinct physical cores among the CPUs this process may use (Linux sysfs topology), or null
    /// when that cannot be read (other OSes, restricted /sys).
    /// </summary>
    public static int? PhysicalCoresOrNull(string sysCpu = "/sys/devices/system/cpu")
    {
        if (!OperatingSystem.IsLinux()) return null;
        try
        {
            var allowed = AllowedCpus();
            var cores = new HashSet<string>();
            foreach (string dir in Directory.EnumerateDirectories(sysCpu, "cpu*"))
            {
                string name = Path.GetFileName(dir);
                if (!int.TryParse(name.AsSpan(3), NumberStyles.Integer, CultureInfo.InvariantCulture, out int cpu)) continue;
                if (allowed is not null && !allowed.Contains(cpu)) continue;
                string siblings = Path.Combine(dir, "topology", "thread_siblings_list");
                string package = Path.Combine(dir, "topology", "physical_package_id");
                if (!File.Exists(siblings)) continue;
                string pkg = File.Exists(package) ? File.ReadAllText(package).Trim() : "0";
                cores.Add(pkg + ":" + File.ReadAllText(siblings).Trim());
            }
            return cores.Count > 0 ? cores.Count : null;
        }
        catch (IOException) { return null; }
        catch (UnauthorizedAccessException) { return null; }
    }

    /// <summary>CPUs in this process's affinity mask, from /proc/self/status Cpus_allowed_list.</summary>
    private static HashSet<int>? AllowedCpus()
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return null;
        foreach (string line in File.ReadLines(status))
            if (line.StartsWith("Cpus_allowed_list:", StringComparison.Ordinal))
                return ParseCpuList(line["Cpus_allowed_list:".Length..]);
        return null;
    }

    /// <summary>A kernel CPU list such as "0-3,8,10-11".</summary>
    public static HashSet<int> ParseCpuList(string list)
    {
        var cpus = new HashSet<int>();
        foreach (string part in list.Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            int dash = part.IndexOf('-');
            if (dash < 0) { cpus.Add(int.Parse(part, CultureInfo.InvariantCulture)); continue; }
            int from = int.Parse(part.AsSpan(0, dash), CultureInfo.InvariantCulture), to = int.Parse(part.AsSpan(dash + 1), CultureInfo.InvariantCulture);
            for (int c = from; c <= to; c++) cpus.Add(c);
        }
        return cpus;
    }
}
