using Xunit.v3;

namespace BitNet.Tests.Shared;

/// <summary>
/// Marks a test whose outcome depends on the machine rather than only on the code: wall-clock limits,
/// how the kernel caches files (2 MB folios), which page-table queries it answers. It gets the traits
/// <c>Category=Machine</c> and <c>Needs=…</c>; scripts/test.sh runs these as a group of their own,
/// and the ARM64 run under emulation leaves out <c>Needs=timing</c>.
/// </summary>
[AttributeUsage(AttributeTargets.Class | AttributeTargets.Method, AllowMultiple = false)]
internal sealed class MachineDependentAttribute(string needs) : Attribute, ITraitAttribute
{
    public string Needs { get; } = needs;

    public IReadOnlyCollection<KeyValuePair<string, string>> GetTraits() =>
        [new("Category", TestCategories.Machine), new("Needs", Needs)];
}

/// <summary>Trait values the test scripts filter on.</summary>
internal static class TestCategories
{
    /// <summary><c>Category=Machine</c>: see <see cref="MachineDependentAttribute"/>.</summary>
    public const string Machine = "Machine";

    /// <summary><c>Category=Aot</c>: runs published Native AOT binaries that scripts/test-aot.sh builds.</summary>
    public const string Aot = "Aot";

    /// <summary>Wall-clock limits: meaningless under an emulator or on a busy machine.</summary>
    public const string NeedsTiming = "timing";

    /// <summary>The kernel caching files in 2 MB folios (Linux 6.x, ext4 or xfs, transparent huge pages for files).</summary>
    public const string NeedsPageCacheFolios = "page-cache-folios";

    /// <summary>/proc/self/pagemap answering page-kind queries (native Linux; PAGEMAP_SCAN needs 6.7+).</summary>
    public const string NeedsPageTables = "page-tables";
}
