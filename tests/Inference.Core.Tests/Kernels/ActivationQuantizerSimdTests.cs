using BitNet.Inference.Kernels;

namespace BitNet.Inference.Tests.Kernels;

public class ActivationQuantizerSimdTests
{
    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(8)]
    [InlineData(17)]
    [InlineData(45)]   // one 32-wide step, one 8-wide step, a scalar tail
    [InlineData(256)]
    [InlineData(2560)]
    [InlineData(6912)]
    public void Vector_quantizer_equals_the_scalar_reference(int length)
    {
        var rng = new Random(length);
        foreach (double spread in new[] { 1e-7, 0.01, 1.0, 300.0 })
        {
            var x = new float[length];
            for (int i = 0; i < length; i++) x[i] = (float)((rng.NextDouble() * 2 - 1) * spread);
            if (length > 3) { x[1] = 0; x[2] = -x[0]; }
            var expected = new sbyte[length];
            var actual = new sbyte[length];
            var (es, esum) = ActivationQuantizer.QuantizeScalar(x, expected);
            var (s, sum) = ActivationQuantizer.Quantize(x, actual);
            Assert.Equal(es, s);
            Assert.Equal(esum, sum);
            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public void Vector_quantizer_rounds_exact_halves_to_even_like_the_reference()
    {
        // amax = 127 gives s = 1: the values are rounded as they are, ties included.
        float[] x = [127f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, 4.5f, -127f, 126.5f, -126.5f, 5.5f, 6.5f, -7.5f, 0f, 8.5f];
        var expected = new sbyte[x.Length];
        var actual = new sbyte[x.Length];
        Assert.Equal(ActivationQuantizer.QuantizeScalar(x, expected), ActivationQuantizer.Quantize(x, actual));
        Assert.Equal(expected, actual);
        Assert.Equal(new sbyte[] { 127, 0, 2, 2, 0, -2, -2, 4, 4, -127, 126, -126, 6, 6, -8, 0, 8 }, actual);
    }
}
