using System.Globalization;

namespace BitNet.Inference.Memory;

/// <summary>Resident-set figures of this process from /proc/self/status (Linux); null elsewhere.</summary>
public static class ProcessMemory
{
    /// <summary>Peak resident set (VmHWM) in bytes.</summary>
    public static long? PeakResidentBytes() => ReadKiB("VmHWM:") * 1024;

    /// <summary>Current resident set (VmRSS) in bytes.</summary>
    public static long? ResidentBytes() => ReadKiB("VmRSS:") * 1024;

    private static long? ReadKiB(string key)
    {
        const string status = "/proc/self/status";
        if (!File.Exists(status)) return null;
        foreach (string line in File.ReadLines(status))
            if (line.StartsWith(key, StringComparison.Ordinal))
                return ParseKiB(line[key.Length..]);
        return null;
    }

    /// <summary>"  123456 kB" → 123456.</summary>
    public static long? ParseKiB(string value)
    {
        string[] parts = value.Split((char[]?)null, StringSplitOptions.RemoveEmptyEntries);
        return parts.Length > 0 && long.TryParse(parts[0], NumberStyles.Integer, CultureInfo.InvariantCulture, out long kib) ? kib : null;
    }
}
