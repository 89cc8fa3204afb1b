using System.Runtime.InteropServices;
using BitNet.Inference.Kernels;

namespace BitNet.Inference.Tests.Kernels;

/// <summary>Random I2_S matrices and int8 activations for the kernel equivalence tests.</summary>
internal static class KernelTestData
{
    /// <summary>Packed codes for rows × columns, each code drawn from 0..maxCode (3 = the unused code).</summary>
    public static byte[] RandomCodes(Random rng, int rows, int columns, int maxCode = 2)
    {
        var bytes = new byte[rows * columns / 4];
        for (int i = 0; i < bytes.Length; i++)
        {
            int b = 0;
            for (int g = 0; g < 4; g++) b = (b << 2) | rng.Next(0, maxCode + 1);
            bytes[i] = (byte)b;
        }
        return bytes;
    }

    public static sbyte[] RandomActivations(Random rng, int tokens, int columns)
    {
        var q = new sbyte[tokens * columns];
        for (int i = 0; i < q.Length; i++) q[i] = (sbyte)rng.Next(-128, 128);
        return q;
    }

    /// <summary>What the scalar specification returns for every (token, row).</summary>
    public static int[] Reference(byte[] weights, int columns, sbyte[] q, int tokens, int rowStart, int rowCount)
    {
        var expected = new int[tokens * rowCount];
        for (int t = 0; t < tokens; t++)
            for (int r = 0; r < rowCount; r++)
                expected[t * rowCount + r] = I2sKernels.DotScalar(
                    weights.AsSpan((rowStart + r) * columns / 4, columns / 4), q.AsSpan(t * columns, columns));
        return expected;
    }

    /// <summary>The set by name, or a skip (not a pass) when this CPU cannot run it.</summary>
    public static KernelSet RequireSet(string name)
    {
        KernelSet set = KernelSet.All.Single(k => k.Name == name);
        if (!set.IsSupported)
            Assert.Skip($"kernel set '{name}' is not supported on this CPU/runtime");
        return set;
    }

    /// <summary>The architecture a kernel set's instructions belong to (scalar: every one).</summary>
    public static Architecture? ArchitectureOf(string setName) => setName switch
    {
        "scalar" => null,
        "avx2" or "avx512" or "avx512gfni" or "avx512vnni" => Architecture.X64,
        "neon" or "dotprod" => Architecture.Arm64,
        _ => throw new ArgumentException($"kernel set '{setName}' has no architecture here; add it to {nameof(ArchitectureOf)}"),
    };

    /// <summary>
    /// The sets among <paramref name="names"/> written for the architecture this test process runs on.
    /// Kernel theories take their data from here, so another architecture's sets are not enumerated as
    /// skips: a skip then means this CPU (or a DOTNET_Enable* switch) lacks the set.
    /// </summary>
    public static IEnumerable<string> OfThisArchitecture(params string[] names) =>
        names.Where(name => ArchitectureOf(name) is not { } arch || arch == RuntimeInformation.ProcessArchitecture);

    /// <summary>Every SIMD set of <see cref="KernelSet.All"/> for this architecture.</summary>
    public static string[] SimdSetsHere =>
        [.. OfThisArchitecture([.. KernelSet.All.Select(k => k.Name).Where(name => name != KernelSet.Scalar.Name)])];

    public static TheoryData<string> SimdSetNames => new(SimdSetsHere);

    /// <summary>Every set of <see cref="KernelSet.All"/> for this architecture, scalar included.</summary>
    public static TheoryData<string> SetNames => new(OfThisArchitecture([.. KernelSet.All.Select(k => k.Name)]));

    /// <summary>Each of <paramref name="sets"/> of this architecture with each of <paramref name="widths"/>.</summary>
    public static TheoryData<string, int> SetsWithWidths(string[] sets, int[] widths)
    {
        var data = new TheoryData<string, int>();
        foreach (string set in OfThisArchitecture(sets))
            foreach (int columns in widths)
                data.Add(set, columns);
        return data;
    }
}
