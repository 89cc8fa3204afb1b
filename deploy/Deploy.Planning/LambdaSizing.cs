namespace BitNet.Deploy.Planning;

/// <summary>
/// Lambda's memory → CPU rule: CPU share grows linearly with memory, 1,769 MB = one vCPU of credit,
/// capped at 6 vCPU (10,240 MB). Memory is 128–10,240 MB in 1 MB steps.
/// </summary>
public static class LambdaSizing
{
    public const int MinMemoryMb = 128;
    public const int MaxMemoryMb = 10_240;
    public const int MemoryMbPerVcpu = 1_769;
    public const double MaxVcpus = 6;

    /// <summary>The (fractional) vCPU share a tier gets.</summary>
    public static double VcpuShare(int memoryMb) => Math.Min(MaxVcpus, (double)memoryMb / MemoryMbPerVcpu);

    /// <summary>
    /// Worker threads worth running for a tier: the vCPU share rounded up (a partial core still
    /// helps), at least one, capped at <paramref name="machineCores"/> when given.
    /// </summary>
    public static int Threads(int memoryMb, int? machineCores = null)
    {
        int threads = Math.Max(1, (int)Math.Ceiling(VcpuShare(memoryMb) - 1e-9));
        return machineCores is { } cores ? Math.Clamp(threads, 1, Math.Max(1, cores)) : threads;
    }

    /// <summary>
    /// Whole cores that best stand in for a tier's CPU share when emulating it on another machine:
    /// the share rounded to the nearest core (2,048 MB = 1.16 vCPU → 1), at least one, capped at
    /// <paramref name="machineCores"/>. Unlike <see cref="Threads"/> this does not round up, because
    /// local cores are not throttled the way a fractional Lambda share is.
    /// </summary>
    public static int EmulatedCores(int memoryMb, int machineCores) =>
        Math.Clamp((int)Math.Round(VcpuShare(memoryMb), MidpointRounding.AwayFromZero), 1, Math.Max(1, machineCores));
}
