using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;
using BitNet.Inference.Kernels;
using static BitNet.Inference.Tests.Kernels.KernelTestData;

namespace BitNet.Inference.Tests.Kernels;

/// <summary>Every SIMD I2_S kernel must return exactly what the scalar specification returns.</summary>
public class I2sSimdKernelTests(ITestOutputHelper output)
{
    // Block counts 1, 2, 3, 31, 33 (odd, around the 8- and 16-block widening chunks), the real
    // widths 2560 (20 blocks) and 6912 (54 blocks), and 17 blocks (one past a chunk).
    public static TheoryData<string, int> SetsAndWidths() =>
        SetsWithWidths(SimdSetsHere, [128, 256, 384, 2176, 2560, 3968, 4224, 6912]);

    [Theory]
    [MemberData(nameof(SetsAndWidths))]
    public void Kernel_equals_scalar_for_random_codes_over_rows_and_tokens(string setName, int columns)
    {
        KernelSet set = RequireSet(setName);
        var rng = new Random(columns * 31 + setName.Length);
        const int rows = 11;
        byte[] weights = RandomCodes(rng, rows, columns);
        foreach (int tokens in new[] { 1, 3, 4, 5, 8, 9, 17 })   // 8 and 17: the 8-token prefill tile, with a tail
        {
            sbyte[] q = RandomActivations(rng, tokens, columns);
            foreach (var (start, count) in new[] { (0, 11), (0, 4), (3, 8), (2, 1), (5, 6), (0, 0) })
            {
                var dots = new int[tokens * count];
                set.DotI2s(weights, columns, q, tokens, start, count, dots);
                Assert.Equal(Reference(weights, columns, q, tokens, start, count), dots);
            }
        }
    }

    [Theory]
    [MemberData(nameof(SimdSetNames), MemberType = typeof(KernelTestData))]
    public void Kernel_equals_scalar_across_a_prefill_row_chunk_boundary(string setName)
    {
        KernelSet set = RequireSet(setName);
        var rng = new Random(7);
        const int rows = 134, columns = 640;   // 134 rows: two 64-row chunks and a ragged tail
        byte[] weights = RandomCodes(rng, rows, columns);
        foreach (int tokens in new[] { 1, 8, 19 })   // decode over the whole range; one tile; two tiles and a tail
        {
            sbyte[] q = RandomActivations(rng, tokens, columns);
            var dots = new int[tokens * rows];
            set.DotI2s(weights, columns, q, tokens, 0, rows, dots);
            Assert.Equal(Reference(weights, columns, q, tokens, 0, rows), dots);
        }
    }

    /// <summary>
    /// Real files never hold code 3 (spec §3.1), but a corrupt one might. Every kernel multiplies
    /// it by 3 exactly like the scalar reference (no int16 wrap: the widening chunks are sized for
    /// 2-bit codes up to 3), so results never depend on the ISA, even for bad data.
    /// </summary>
    [Theory]
    [MemberData(nameof(SimdSetNames), MemberType = typeof(KernelTestData))]
    public void Kernel_equals_scalar_when_the_unused_code_3_appears(string setName)
    {
        KernelSet set = RequireSet(setName);
        var rng = new Random(3);
        const int rows = 9, columns = 6912, tokens = 13;   // one 8-token tile and a 5-token tail
        byte[] weights = RandomCodes(rng, rows, columns, maxCode: 3);
        sbyte[] q = RandomActivations(rng, tokens, columns);
        var dots = new int[tokens * rows];
        set.DotI2s(weights, columns, q, tokens, 0, rows, dots);
        Assert.Equal(Reference(weights, columns, q, tokens, 0, rows), dots);
    }

    /// <summary>
    /// The worst case for the int16 accumulators: every code at its maximum and every activation
    /// at −128 or 127, over a width well past the widening chunk.
    /// </summary>
    [Theory]
    [MemberData(nameof(SimdSetNames), MemberType = typeof(KernelTestData))]
    public void Kernel_is_exact_for_extreme_codes_and_activations(string setName)
    {
        KernelSet set = RequireSet(setName);
        const int columns = 6912, rows = 5;
        foreach (byte codeByte in new byte[] { 0xAA /* all 2 */, 0xFF /* all 3 */, 0x00 /* all 0 */ })
            foreach (sbyte act in new sbyte[] { -128, 127 })
                foreach (int tokens in new[] { 1, 4, 8 })
                {
                    byte[] weights = Enumerable.Repeat(codeByte, rows * columns / 4).ToArray();
                    sbyte[] q = Enumerable.Repeat(act, tokens * columns).ToArray();
                    var dots = new int[tokens * rows];
                    set.DotI2s(weights, columns, q, tokens, 0, rows, dots);
                    int code = codeByte & 3;
                    Assert.All(dots, d => Assert.Equal(code * act * columns, d));
                }
    }

    [Theory]
    [MemberData(nameof(SimdSetNames), MemberType = typeof(KernelTestData))]
    public void Kernel_rejects_a_row_range_past_the_matrix(string setName)
    {
        KernelSet set = RequireSet(setName);
        var weights = new byte[4 * 128 / 4];
        var q = new sbyte[128];
        var ex = Assert.Throws<ArgumentException>(() => set.DotI2s(weights, 128, q, 1, 2, 3, new int[3]));
        Assert.Contains("run past", ex.Message);
        Assert.Throws<ArgumentException>(() => set.DotI2s(weights, 100, q, 1, 0, 1, new int[1]));
    }

    /// <summary>
    /// The VNNI kernels come in two unpackings; the kernel set uses the GFNI one where the CPU has GFNI,
    /// so the shift one (for VNNI CPUs without GFNI, such as Cascade Lake) is run here explicitly.
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Vnni_kernels_equal_scalar_with_either_code_unpacking(bool gfni)
    {
        var code = I2sKernels.VnniKernels.WithUnpack(gfni);
        if (code is null) Assert.Skip($"the VNNI kernels with {(gfni ? "GFNI" : "shift")} unpacking cannot run on this CPU/runtime");
        Assert.Equal(gfni ? "gfni" : "shift", code.Unpack);
        var rng = new Random(gfni ? 11 : 12);
        foreach (int columns in new[] { 128, 2560, 6912 })
        {
            // 263 rows: a 256-row chunk of the 4-token kernel, 64-row chunks of the tile, and 7 more: row
            // pairs, 4-row groups, and single rows.
            const int rows = 263;
            byte[] weights = RandomCodes(rng, rows, columns, maxCode: 3);
            // Every leftover after the 4-token groups, small batches (≤ 16 tokens) and longer ones after full tiles.
            foreach (int tokens in new[] { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 15, 16, 17, 18, 19, 27 })
            {
                sbyte[] q = RandomActivations(rng, tokens, columns);
                foreach (var (start, count) in new[] { (0, rows), (1, 67), (5, 3), (2, 258) })
                {
                    var dots = new int[tokens * count];
                    I2sKernels.DotRowsAvx512Vnni(code, weights, columns, q, tokens, start, count, dots);
                    Assert.Equal(Reference(weights, columns, q, tokens, start, count), dots);
                }
            }
        }
    }

    /// <summary>
    /// The kernels for <see cref="I2sCodeOrder.FourRowBlocks"/> give the dots the scalar kernel gives on the same
    /// codes in row order: for ranges that start or end inside a group, and for the rows after the last whole
    /// group (263 rows: 65 groups and 3 rows left in row order).
    /// </summary>
    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public void Vnni_kernels_on_four_row_blocks_equal_scalar_on_rows(bool gfni)
    {
        var code = I2sKernels.VnniKernels.WithUnpack(gfni, I2sCodeOrder.FourRowBlocks);
        if (code is null) Assert.Skip($"the VNNI kernels with {(gfni ? "GFNI" : "shift")} unpacking cannot run on this CPU/runtime");
        Assert.Equal(I2sCodeOrder.FourRowBlocks, code.Order);
        var rng = new Random(gfni ? 13 : 14);
        foreach (int columns in new[] { 128, 2560, 6912 })
        {
            const int rows = 263;
            byte[] weights = RandomCodes(rng, rows, columns, maxCode: 3);
            byte[] blocks = (byte[])weights.Clone();
            I2sLayout.InterleaveFourRowBlocks(blocks, rows, columns, new byte[columns]);
            foreach (int tokens in new[] { 1, 2, 3, 4, 5, 8, 9, 17 })
            {
                sbyte[] q = RandomActivations(rng, tokens, columns);
                foreach (var (start, count) in new[] { (0, rows), (1, 67), (5, 3), (2, 258), (256, 7), (258, 5), (261, 2), (4, 256) })
                {
                    var dots = new int[tokens * count];
                    I2sKernels.DotRowsAvx512Vnni(code, blocks, columns, q, tokens, start, count, dots);
                    Assert.Equal(Reference(weights, columns, q, tokens, start, count), dots);
                }
            }
        }
    }

    [Fact]
    public void Four_row_blocks_interleave_whole_groups_and_undo()
    {
        var rng = new Random(15);
        const int rows = 10, columns = 256;
        byte[] codes = RandomCodes(rng, rows, columns, maxCode: 3);
        byte[] blocks = (byte[])codes.Clone();
        I2sLayout.InterleaveFourRowBlocks(blocks, rows, columns, new byte[columns]);
        int rowBytes = columns / 4;
        // Group 1 (rows 4-7): row 6's block 1 is the group's seventh block, (4·1 + 2)·32 bytes in.
        Assert.Equal(codes.AsSpan(6 * rowBytes + 32, 32).ToArray(), blocks.AsSpan(4 * rowBytes + 6 * 32, 32).ToArray());
        Assert.Equal(codes.AsSpan(8 * rowBytes).ToArray(), blocks.AsSpan(8 * rowBytes).ToArray());   // rows 8-9: no whole group
        Assert.NotEqual(codes, blocks);
        I2sLayout.DeinterleaveFourRowBlocks(blocks, rows, columns, new byte[columns]);
        Assert.Equal(codes, blocks);
    }

    /// <summary>Not a check: records in the test log which instruction sets this run exercised.</summary>
    [Fact]
    public void Reports_the_kernel_sets_this_cpu_runs()
    {
        string line = $"kernel sets supported here: {string.Join(", ", KernelSet.All.Where(k => k.IsSupported).Select(k => k.Name))}; " +
                      $"Avx2={Avx2.IsSupported} Avx512BW={Avx512BW.IsSupported} AvxVnni={AvxVnni.IsSupported} " +
                      $"Avx512Vnni={I2sKernels.Avx512VnniIsSupported} ({I2sKernels.Avx512VnniUnpack ?? "-"}) " +
                      $"AdvSimd={AdvSimd.IsSupported} Dp={Dp.IsSupported}";
        string known = $"kernel sets known: {string.Join(", ", KernelSet.All.Select(k => k.Name))}";
        output.WriteLine(line);
        output.WriteLine(known);
        // scripts/test.sh reads both lines from every pass's log for its "kernel sets exercised" line.
        Console.Error.WriteLine(line);
        Console.Error.WriteLine(known);
        Assert.Contains(KernelSet.Scalar, KernelSet.All.Where(k => k.IsSupported));
    }
}
