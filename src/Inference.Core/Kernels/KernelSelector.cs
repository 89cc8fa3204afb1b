namespace BitNet.Inference.Kernels;

/// <summary>Picks the kernel set once, at model load: the best the CPU supports, or the one asked for.</summary>
internal static class KernelSelector
{
    /// <summary>Names accepted by <see cref="Select"/>, as `--kernel` lists them.</summary>
    public static IEnumerable<string> Names => KernelSet.All.Select(k => k.Name);

    /// <summary>
    /// The set named <paramref name="requested"/> (case-insensitive), or the best supported one when
    /// null or empty. Throws <see cref="NotSupportedException"/> naming the CPU's options when the
    /// requested set cannot run here, and <see cref="ArgumentException"/> for an unknown name.
    /// </summary>
    public static KernelSet Select(string? requested = null, Action<string>? log = null)
    {
        KernelSet chosen;
        if (string.IsNullOrWhiteSpace(requested))
        {
            chosen = KernelSet.All.First(k => k.IsSupported);
        }
        else
        {
            chosen = KernelSet.All.FirstOrDefault(k => string.Equals(k.Name, requested.Trim(), StringComparison.OrdinalIgnoreCase))
                ?? throw new ArgumentException($"unknown kernel '{requested}'; choose one of {string.Join(", ", Names)}", nameof(requested));
            if (!chosen.IsSupported)
                throw new NotSupportedException(
                    $"kernel '{chosen.Name}' is not supported by this CPU; supported: {string.Join(", ", KernelSet.All.Where(k => k.IsSupported).Select(k => k.Name))}");
        }
        log?.Invoke($"kernels: i2s-{chosen.Name} (supported here: {string.Join(", ", KernelSet.All.Where(k => k.IsSupported).Select(k => k.Name))})");
        return chosen;
    }
}
