using BitNet.Inference.Kernels;
using BitNet.Inference.Model;
using static BitNet.Inference.Tests.Kernels.KernelTestData;

namespace BitNet.Inference.Tests.Kernels;

/// <summary>
/// The screened head's bounds: every F16 logit, as each kernel set's F16 kernel computes it, lies
/// within [lower, upper] built from that set's exact int8 × int16 dots. In the Kernels namespace so
/// the ISA-fallback and ARM64 runs check it with their own kernels.
/// </summary>
public class LogitScreenTests(ITestOutputHelper output)
{
    public static TheoryData<string> AllSetNames => SetNames;

    /// <summary>Row shapes that stress the bound: Gaussian, uniform, one huge outlier, tiny values, a zero row, mixed magnitudes.</summary>
    private static Half[] RandomHead(Random rng, int rows, int columns)
    {
        var head = new Half[rows * columns];
        for (int r = 0; r < rows; r++)
        {
            int kind = r % 6;
            for (int k = 0; k < columns; k++)
            {
                double g = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
                double v = kind switch
                {
                    0 => 0.05 * g,
                    1 => rng.NextDouble() * 2 - 1,
                    2 => k == r % columns ? 900.0 : 0.01 * g,
                    3 => 1e-6 * g,
                    4 => 0,
                    _ => g * Math.Pow(10, rng.Next(-4, 3)),
                };
                head[r * columns + k] = (Half)v;
            }
        }
        return head;
    }

    private static float[] RandomInput(Random rng, int columns, bool outliers)
    {
        var y = new float[columns];
        for (int k = 0; k < columns; k++)
        {
            double g = Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble());
            if (outliers && k % 97 == 3) g *= 300;
            y[k] = (float)(Half)g;   // the head's input is F16-rounded when one row is computed
        }
        return y;
    }

    [Theory]
    [MemberData(nameof(AllSetNames))]
    public void Every_F16_logit_lies_within_its_bounds(string setName)
    {
        KernelSet set = RequireSet(setName);
        var rng = new Random(setName.GetHashCode() & 0xFFFF);
        foreach (int columns in new[] { 16, 100, 2560 })
        {
            const int rows = 96;
            Half[] matrix = RandomHead(rng, rows, columns);
            using LmHeadQ8 q8 = LmHeadQ8.Quantize(matrix, rows, columns, errorFacts: true);
            var screen = new LogitScreen(q8);
            double worstUse = 0;
            for (int trial = 0; trial < 6; trial++)
            {
                float[] y = RandomInput(rng, columns, outliers: trial % 2 == 1);
                var exact = new float[rows];
                set.DotF16(matrix, columns, y, 0, rows, exact);

                var y16 = new short[columns];
                LogitScreen.Input input = LogitScreen.Prepare(y, y16);
                Assert.True(input.IsUsable);
                var dots = new long[rows];
                set.DotQ8Exact(q8.Weights, columns, y16, 0, rows, dots);
                var lower = new float[rows];
                var upper = new float[rows];
                screen.Bounds(input, 0, dots, lower, upper);
                for (int v = 0; v < rows; v++)
                {
                    Assert.True(lower[v] <= exact[v] && exact[v] <= upper[v],
                        $"{setName}, {columns} columns, row {v}: {exact[v]} outside [{lower[v]}, {upper[v]}]");
                    double half = (upper[v] - lower[v]) / 2;
                    if (half > 0) worstUse = Math.Max(worstUse, Math.Abs(exact[v] - (lower[v] + half)) / half);
                }
            }
            // The bound is a worst case: the actual error uses a small part of it.
            output.WriteLine($"{setName}, {columns} columns: largest |error| / bound = {worstUse:F3}");
        }
    }

    [Fact]
    public void Bounds_are_not_needlessly_wide()
    {
        // Gaussian rows and input: the half-width is a small fraction of the spread of the logits, or
        // screening would keep too many rows to pay.
        var rng = new Random(7);
        const int rows = 512, columns = 2560;
        var matrix = new Half[rows * columns];
        for (int i = 0; i < matrix.Length; i++)
            matrix[i] = (Half)(0.05 * Math.Sqrt(-2 * Math.Log(1 - rng.NextDouble())) * Math.Cos(2 * Math.PI * rng.NextDouble()));
        using LmHeadQ8 q8 = LmHeadQ8.Quantize(matrix, rows, columns, errorFacts: true);
        var screen = new LogitScreen(q8);
        float[] y = RandomInput(rng, columns, outliers: false);
        var exact = new float[rows];
        F16.DotRowsScalar(matrix, columns, y, 0, rows, exact);
        var y16 = new short[columns];
        var input = LogitScreen.Prepare(y, y16);
        var dots = new long[rows];
        Q8ExactDots.RowsScalar(q8.Weights, columns, y16, 0, rows, dots);
        var lower = new float[rows];
        var upper = new float[rows];
        screen.Bounds(input, 0, dots, lower, upper);
        double mean = exact.Average(), sd = Math.Sqrt(exact.Select(v => (v - mean) * (v - mean)).Average());
        double halfWidth = Enumerable.Range(0, rows).Average(v => (upper[v] - lower[v]) / 2.0);
        output.WriteLine($"mean half-width {halfWidth:G4}, logit spread (sd) {sd:G4}");
        Assert.InRange(halfWidth / sd, 0.05, 1.0);
    }

    [Theory]
    [InlineData(6, 2560)]
    [InlineData(3, 75)]
    public unsafe void Bounds_of_several_inputs_from_one_pass_are_each_inputs_own_bit_for_bit(int inputs, int columns)
    {
        var rng = new Random(inputs * columns);
        const int rows = 1100;   // more than one piece of the pool, not a multiple of the chunk
        Half[] matrix = RandomHead(rng, rows, columns);
        var y = new float[inputs * columns];
        for (int i = 0; i < inputs; i++) RandomInput(rng, columns, outliers: i % 2 == 1).CopyTo(y, i * columns);
        y[columns + 5] = float.NaN;   // input 1 has no bounds, whatever shares its pass

        using var matmul = new MatMul(threads: 2);
        fixed (Half* w = matrix)
        {
            matmul.EnableQuantizedHead(w, rows, columns, releaseReadPages: false, HeadRows.FromMemory(w, rows, columns));
            var lower = new float[inputs * rows];
            var upper = new float[inputs * rows];
            var usable = new bool[inputs];
            matmul.HeadBounds(y, inputs, new short[inputs * columns], lower, upper, usable);
            for (int i = 0; i < inputs; i++)
            {
                var lowerAlone = new float[rows];
                var upperAlone = new float[rows];
                var usableAlone = new bool[1];
                matmul.HeadBounds(y.AsSpan(i * columns, columns), 1, new short[columns], lowerAlone, upperAlone, usableAlone);
                Assert.Equal(usableAlone[0], usable[i]);
                Assert.Equal(i != 1, usable[i]);
                if (!usableAlone[0]) continue;
                for (int v = 0; v < rows; v++)
                {
                    Assert.True(BitConverter.SingleToInt32Bits(lowerAlone[v]) == BitConverter.SingleToInt32Bits(lower[i * rows + v]),
                        $"{matmul.KernelName}: input {i}, row {v}: lower {lowerAlone[v]} alone, {lower[i * rows + v]} together");
                    Assert.True(BitConverter.SingleToInt32Bits(upperAlone[v]) == BitConverter.SingleToInt32Bits(upper[i * rows + v]),
                        $"{matmul.KernelName}: input {i}, row {v}: upper {upperAlone[v]} alone, {upper[i * rows + v]} together");
                }
            }
        }
    }

    [Fact]
    public void A_non_finite_input_has_no_bounds()
    {
        var y16 = new short[4];
        Assert.False(LogitScreen.Prepare([1f, float.NaN, 0f, 2f], y16).IsUsable);
        Assert.False(LogitScreen.Prepare([1f, float.PositiveInfinity, 0f, 2f], y16).IsUsable);
        Assert.True(LogitScreen.Prepare([0f, 0f, 0f, 0f], y16).IsUsable);
    }

    [Fact]
    public void Error_facts_bound_each_rows_quantization_error_tightly()
    {
        var rng = new Random(11);
        foreach (int columns in new[] { 3, 8, 19, 2560 })
        {
            const int rows = 24;
            Half[] matrix = RandomHead(rng, rows, columns);
            using LmHeadQ8 q8 = LmHeadQ8.Quantize(matrix, rows, columns, errorFacts: true);
            RowErrorFacts facts = q8.ErrorFacts!;
            for (int r = 0; r < rows; r++)
            {
                double maxError = 0;
                float maxAbs = 0;
                int codeSum = 0;
                for (int k = 0; k < columns; k++)
                {
                    float w = (float)matrix[r * columns + k];
                    sbyte q = q8.Weights[r * columns + k];
                    maxError = Math.Max(maxError, Math.Abs(w - (double)q8.Scales[r] * q));
                    maxAbs = Math.Max(maxAbs, Math.Abs(w));
                    codeSum += Math.Abs((int)q);
                }
                Assert.True(facts.MaxError[r] >= maxError, $"row {r}: {facts.MaxError[r]} < {maxError}");
                Assert.True(facts.MaxError[r] <= maxError * (1 + 1e-6) + 1e-40, $"row {r}: {facts.MaxError[r]} much above {maxError}");
                Assert.Equal(maxAbs, facts.MaxAbs[r]);
                Assert.Equal(codeSum, facts.CodeAbsSum[r]);
            }
        }
    }

    [Fact]
    public void A_head_quantized_without_error_facts_cannot_be_screened()
    {
        using LmHeadQ8 q8 = LmHeadQ8.Quantize(new Half[64], 4, 16);
        Assert.Null(q8.ErrorFacts);
        Assert.Throws<ArgumentException>(() => new LogitScreen(q8));
    }
}
