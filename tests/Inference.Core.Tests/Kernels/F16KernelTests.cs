using BitNet.Inference.Kernels;
using static BitNet.Inference.Tests.Kernels.KernelTestData;

namespace BitNet.Inference.Tests.Kernels;

public class F16KernelTests
{
    /// <summary>
    /// Float sums in a different order differ from the double-precision reference by a few ulps of
    /// the magnitudes summed: 2560 products of ≈0.05·1 give sums of a few units, so 1e-4 absolute
    /// (about 100 float ulps at 1.0) is loose enough for any order and tight enough to catch a
    /// dropped or doubled element (each term is ≈0.05).
    /// </summary>
    private const float DotTolerance = 1e-4f;

    [Fact]
    public void Vector_conversion_equals_the_runtime_conversion_for_all_65536_halves()
    {
        var halves = new Half[65536 + 3];   // +3: a scalar tail after the vector loop
        for (int i = 0; i < halves.Length; i++) halves[i] = BitConverter.UInt16BitsToHalf((ushort)(i & 0xFFFF));
        var converted = new float[halves.Length];
        F16.ConvertToSingle(halves, converted);
        for (int i = 0; i < halves.Length; i++)
        {
            float expected = (float)halves[i];
            if (float.IsNaN(expected)) Assert.True(float.IsNaN(converted[i]), $"half 0x{i:X4} should be NaN");
            else Assert.Equal(BitConverter.SingleToInt32Bits(expected), BitConverter.SingleToInt32Bits(converted[i]));
        }
    }

    [Fact]
    public void Scaled_values_times_two_to_the_112_are_every_finite_half_exactly()
    {
        var halves = new Half[65536 + 5];
        for (int i = 0; i < halves.Length; i++) halves[i] = BitConverter.UInt16BitsToHalf((ushort)(i & 0xFFFF));
        var scaled = new float[halves.Length];
        F16.ToScaledValues(halves, scaled);
        for (int i = 0; i < halves.Length; i++)
        {
            if (!Half.IsFinite(halves[i])) continue;
            float restored = (float)((double)scaled[i] * F16.ScaledValueFactor);   // exact: a power of two
            Assert.Equal(BitConverter.SingleToInt32Bits((float)halves[i]), BitConverter.SingleToInt32Bits(restored));
        }
    }

    [Fact]
    public void Vector_narrowing_equals_the_runtime_cast_around_every_half_boundary()
    {
        // Every half value as a float, and its float neighbours and the midpoints to both adjacent
        // halves (the ties that round to even), both signs; plus floats beyond the half range.
        var values = new List<float>();
        for (int h = 0; h < 0x7C00; h++)
        {
            float v = (float)BitConverter.UInt16BitsToHalf((ushort)h);
            float next = (float)BitConverter.UInt16BitsToHalf((ushort)(h + 1));
            float mid = (float)(((double)v + next) / 2);   // exact: halves have 11 significant bits
            foreach (float f in new[] { v, MathF.BitDecrement(v), MathF.BitIncrement(v), mid, MathF.BitDecrement(mid), MathF.BitIncrement(mid) })
            {
                values.Add(f);
                values.Add(-f);
            }
        }
        values.AddRange([65519.996f, 65520f, 65536f, 1e10f, float.MaxValue, -65520f, 1e-30f, float.Epsilon, -0f,
            float.PositiveInfinity, float.NegativeInfinity, float.NaN, BitConverter.Int32BitsToSingle(0x7F812345)]);
        var rng = new Random(5);
        for (int i = 0; i < 100_000; i++) values.Add(BitConverter.Int32BitsToSingle(rng.Next() | (rng.Next(2) << 31)));
        values.AddRange([1f, 2f, 3f]);   // a scalar tail after the vector loop

        float[] source = values.ToArray();
        var converted = new Half[source.Length];
        F16.ConvertToHalf(source, converted);
        for (int i = 0; i < source.Length; i++)
        {
            ushort expected = BitConverter.HalfToUInt16Bits((Half)source[i]);
            ushort actual = BitConverter.HalfToUInt16Bits(converted[i]);
            if (expected != actual)
                Assert.Fail($"float {source[i]:R} (0x{BitConverter.SingleToInt32Bits(source[i]):X8}): expected half 0x{expected:X4}, got 0x{actual:X4}");
        }
    }

    [Fact]
    public void Conversion_to_half_equals_the_cast_for_every_tail_length()
    {
        float[] tricky = [65520f, -65519.996f, 1e-30f, float.Epsilon, -0f, 0.00006103515625f, 2049f, 1.0009765625f, float.PositiveInfinity, float.NaN];
        for (int length = 1; length <= 40; length++)
        {
            var source = new float[length];
            for (int i = 0; i < length; i++) source[i] = tricky[(i * 7 + length) % tricky.Length] * (i % 3 == 0 ? -1 : 1);
            var converted = new Half[length];
            F16.ConvertToHalf(source, converted);
            for (int i = 0; i < length; i++)
                Assert.Equal(BitConverter.HalfToUInt16Bits((Half)source[i]), BitConverter.HalfToUInt16Bits(converted[i]));
        }
    }

    [Fact]
    public void Rounding_through_half_equals_a_cast_there_and_back()
    {
        var rng = new Random(9);
        var values = new float[1000];
        for (int i = 0; i < values.Length; i++) values[i] = (float)(NextGaussian(rng) * Math.Pow(10, rng.Next(-9, 6)));
        float[] expected = values.Select(v => (float)(Half)v).ToArray();
        F16.RoundThroughHalf(values);
        Assert.Equal(expected, values);
    }

    // 40 = 16 + 16 + 8 and 2575 = 160·16 + 8 + 7: every step width of the 128-bit loop (16, 8, then one at a time).
    public static TheoryData<string, int> SetsAndWidths() =>
        SetsWithWidths(["scalar", "avx2", "avx512", "neon"], [1, 7, 16, 33, 40, 256, 2560, 2575]);

    [Theory]
    [MemberData(nameof(SetsAndWidths))]
    public void F16_rows_match_a_double_precision_reference(string setName, int columns)
    {
        KernelSet set = RequireSet(setName);
        var rng = new Random(columns);
        const int rows = 7;
        var matrix = new Half[rows * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (Half)(0.05 * NextGaussian(rng));
        matrix[0] = BitConverter.UInt16BitsToHalf(0x0001);   // smallest subnormal
        matrix[^1] = BitConverter.UInt16BitsToHalf(0x83FF);  // largest negative subnormal
        var x = new float[columns];
        for (int i = 0; i < columns; i++) x[i] = (float)(Half)(4 * NextGaussian(rng));
        x[0] = 65504f;   // the largest F16 value must not overflow the internal scaling

        foreach (var (start, count) in new[] { (0, rows), (1, 4), (3, 3), (6, 1) })
        {
            var dst = new float[count];
            set.DotF16(matrix, columns, x, start, count, dst);
            for (int r = 0; r < count; r++)
            {
                double expected = 0;
                for (int k = 0; k < columns; k++) expected += (double)(float)matrix[(start + r) * columns + k] * x[k];
                Assert.True(Math.Abs(expected - dst[r]) <= DotTolerance * Math.Max(1, Math.Abs(expected)),
                    $"row {start + r}: {dst[r]} vs {expected}");
            }
        }
    }

    [Theory]
    [MemberData(nameof(SetsAndWidths))]
    public void F16_rows_stay_exact_for_inputs_beyond_the_f16_range(string setName, int columns)
    {
        KernelSet set = RequireSet(setName);
        var matrix = new Half[2 * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (Half)0.5f;
        var x = new float[columns];
        x[columns - 1] = 1e30f;   // x·2^112 would overflow: the kernel must not use its scaled path
        var dst = new float[2];
        set.DotF16(matrix, columns, x, 0, 2, dst);
        Assert.Equal(0.5e30f, dst[0], 1e24f);
        Assert.Equal(0.5e30f, dst[1], 1e24f);
    }

    [Theory]
    [MemberData(nameof(SetsAndWidths))]
    public void Q8_rows_equal_the_scalar_q8_rows_within_float_rounding(string setName, int columns)
    {
        KernelSet set = RequireSet(setName);
        var rng = new Random(columns + 5);
        const int rows = 9;
        var matrix = new Half[rows * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (Half)(0.05 * NextGaussian(rng));
        using LmHeadQ8 head = LmHeadQ8.Quantize(matrix, rows, columns);
        var x = new float[columns];
        for (int i = 0; i < columns; i++) x[i] = (float)NextGaussian(rng);
        var expected = new float[rows];
        var actual = new float[rows];
        LmHeadQ8.DotRowsScalar(head.Weights, head.Scales, columns, x, 0, rows, expected);
        set.DotQ8(head.Weights, head.Scales, columns, x, 0, rows, actual);
        // The integer kernels (AVX2, ARM64) round x to int16 steps of max|x|/32767 first: each product may move by
        // |q|·scale·step/2, so the row may differ by at most that sum (plus float rounding).
        float step = x.Max(v => Math.Abs(v)) / 32767f;
        for (int r = 0; r < rows; r++)
        {
            double bound = head.Scales[r] * step / 2 * head.Weights.Slice(r * columns, columns).ToArray().Sum(q => Math.Abs((int)q));
            Assert.True(Math.Abs(expected[r] - actual[r]) <= bound + DotTolerance * Math.Max(1, Math.Abs(expected[r])), $"row {r}: {actual[r]} vs {expected[r]}");
        }
    }

    [Fact]
    public void Avx512_head_row_kernels_agree_with_the_scalar_rows()
    {
        if (!System.Runtime.Intrinsics.X86.Avx512F.IsSupported) Assert.Skip("AVX-512F not supported here");
        var rng = new Random(77);
        const int rows = 11, columns = 2561;
        var matrix = new Half[rows * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (Half)(0.05 * NextGaussian(rng));
        var x = new float[columns];
        for (int i = 0; i < columns; i++) x[i] = (float)(Half)NextGaussian(rng);
        var expected = new float[rows];
        var actual = new float[rows];
        F16.DotRowsScalar(matrix, columns, x, 0, rows, expected);
        F16.DotRowsAvx512(matrix, columns, x, 0, rows, actual);
        for (int r = 0; r < rows; r++) Assert.Equal(expected[r], actual[r], DotTolerance * Math.Max(1, Math.Abs(expected[r])));
        using LmHeadQ8 head = LmHeadQ8.Quantize(matrix, rows, columns);
        LmHeadQ8.DotRowsScalar(head.Weights, head.Scales, columns, x, 0, rows, expected);
        LmHeadQ8.DotRowsAvx512(head.Weights, head.Scales, columns, x, 0, rows, actual);
        for (int r = 0; r < rows; r++) Assert.Equal(expected[r], actual[r], DotTolerance * Math.Max(1, Math.Abs(expected[r])));
    }

    [Fact]
    public void Q8_quantization_keeps_every_weight_within_half_a_step()
    {
        var rng = new Random(11);
        const int rows = 5, columns = 300;
        var matrix = new Half[rows * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (Half)(0.05 * NextGaussian(rng));
        matrix[columns] = Half.Zero;  // row 1 gets one zero; row 4 is all zeros
        for (int k = 0; k < columns; k++) matrix[4 * columns + k] = Half.Zero;
        using LmHeadQ8 head = LmHeadQ8.Quantize(matrix, rows, columns);
        for (int r = 0; r < rows; r++)
            for (int k = 0; k < columns; k++)
            {
                float w = (float)matrix[r * columns + k];
                float back = head.Weights[r * columns + k] * head.Scales[r];
                Assert.True(Math.Abs(w - back) <= head.Scales[r] / 2 + 1e-9f, $"({r},{k}): {w} → {back}");
            }
        Assert.All(head.Weights.Slice(4 * columns, columns).ToArray(), q => Assert.Equal(0, q));
    }

    private static double NextGaussian(Random rng) =>
        Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
}
