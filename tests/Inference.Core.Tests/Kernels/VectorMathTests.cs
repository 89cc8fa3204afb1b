using BitNet.Inference.Kernels;

namespace BitNet.Inference.Tests.Kernels;

public class VectorMathTests
{
    [Fact]
    public void Polynomial_exp_on_four_lanes_equals_the_scalar_function_bit_for_bit()
    {
        var rng = new Random(11);
        var inputs = new List<float> { 0f, -0f, 1f, -1f, 88.7f, 89f, -87.3f, -87.4f, -88f, -103f, -104f, -200f, -1e4f,
            float.NegativeInfinity, 1e-30f, -1e-30f, float.NaN, 200f };
        for (int i = 0; i < 20_000; i++) inputs.Add((float)(rng.NextDouble() * 170 - 85));    // within range: the vector path
        for (int i = 0; i < 4_000; i++) inputs.Add((float)(rng.NextDouble() * 400 - 300));    // lanes past it: the scalar fallback
        while (inputs.Count % 4 != 0) inputs.Add(0.5f);
        for (int i = 0; i < inputs.Count; i += 4)
        {
            var lanes = VectorMath.PolynomialExp(System.Runtime.Intrinsics.Vector128.Create(inputs[i], inputs[i + 1], inputs[i + 2], inputs[i + 3]));
            for (int l = 0; l < 4; l++)
            {
                float expected = VectorMath.PolynomialExp(inputs[i + l]);
                Assert.True(BitConverter.SingleToInt32Bits(expected) == BitConverter.SingleToInt32Bits(lanes[l]) || (float.IsNaN(expected) && float.IsNaN(lanes[l])),
                    $"exp({inputs[i + l]:R}): scalar {expected:R}, lane {lanes[l]:R}");
            }
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(9)]
    [InlineData(64)]
    [InlineData(2560)]
    [InlineData(6913)]
    public void RmsNorm_row_matches_the_scalar_ggml_formula(int width)
    {
        var rng = new Random(width);
        var x = new float[width];
        var w = new float[width];
        for (int i = 0; i < width; i++) { x[i] = (float)(rng.NextDouble() * 8 - 4); w[i] = (float)(1 + 0.1 * rng.NextDouble()); }
        var y = new float[width];
        VectorMath.RmsNormRow(x, w, y, 1e-5f);

        double sum = 0;
        foreach (float v in x) sum += v * v;
        float scale = 1.0f / MathF.Sqrt((float)(sum / width) + 1e-5f);
        for (int i = 0; i < width; i++)
        {
            float expected = x[i] * scale * w[i];
            // Only the double summation order differs: at most one float ulp of the mean, ~1e-7 relative.
            Assert.True(Math.Abs(expected - y[i]) <= 1e-6f * Math.Abs(expected) + 1e-30f, $"{i}: {y[i]} vs {expected}");
        }
    }

    [Theory]
    [InlineData(3)]
    [InlineData(16)]
    [InlineData(128)]
    [InlineData(131)]
    public void Dot_and_multiply_add_agree_with_double_precision(int n)
    {
        var rng = new Random(n);
        var a = new float[n];
        var b = new float[n];
        for (int i = 0; i < n; i++) { a[i] = (float)rng.NextDouble() - 0.5f; b[i] = (float)rng.NextDouble() - 0.5f; }
        double expected = 0;
        for (int i = 0; i < n; i++) expected += (double)a[i] * b[i];
        Assert.Equal(expected, VectorMath.Dot(a, b), 1e-5);

        var y = (float[])b.Clone();
        VectorMath.MultiplyAdd(0.25f, a, y);
        for (int i = 0; i < n; i++) Assert.Equal(MathF.FusedMultiplyAdd(0.25f, a[i], b[i]), y[i]);
    }

    [Theory]
    [InlineData(5)]
    [InlineData(32)]
    [InlineData(6913)]
    public void Elementwise_helpers_equal_their_scalar_expressions_bit_for_bit(int n)
    {
        var rng = new Random(n);
        var x = new float[n];
        var d = new float[n];
        for (int i = 0; i < n; i++) { x[i] = (float)(rng.NextDouble() * 8 - 4); d[i] = (float)(rng.NextDouble() * 8 - 4); }
        x[0] = -0f;   // relu(−0) is +0, as in the scalar code
        x[^1] = 0f;

        var sum = (float[])x.Clone();
        VectorMath.Add(sum, d);
        var glu = (float[])x.Clone();
        VectorMath.SquaredReluTimes(glu, d);
        var scaled = (float[])x.Clone();
        VectorMath.Scale(scaled, 0.3f);
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(d[i] + x[i], sum[i]);
            float r = x[i] > 0 ? x[i] : 0f;
            Assert.Equal(BitConverter.SingleToInt32Bits(r * r * d[i]), BitConverter.SingleToInt32Bits(glu[i]));
            Assert.Equal(x[i] * 0.3f, scaled[i]);
        }
    }

    [Theory]
    [InlineData(3)]
    [InlineData(8)]
    [InlineData(21)]
    [InlineData(4000)]
    public void Rescaled_rows_equal_the_scalar_rescale_bit_for_bit(int n)
    {
        var rng = new Random(n);
        var dots = new int[n];
        for (int i = 0; i < n; i++) dots[i] = rng.Next(-700_000, 700_000);
        dots[0] = int.MaxValue;   // not exactly representable as a float: both round the same way
        var output = new float[n];
        I2sKernels.RescaleRow(dots, 12345, 3.7f, 0.0421f, output);
        for (int i = 0; i < n; i++)
            Assert.Equal(I2sKernels.Rescale(dots[i], 12345, 3.7f, 0.0421f), output[i]);
    }
}
