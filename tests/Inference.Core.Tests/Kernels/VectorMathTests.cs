using BitNet.Inference.Kernels;

namespace BitNet.Inference.Tests.Kernels;

public class VectorMathTests
{
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
}
