using BitNet.Inference.Kernels;

namespace BitNet.Inference.Tests.Kernels;

public class I2sScalarKernelTests
{
    [Theory]
    [InlineData(128, 1)]
    [InlineData(256, 7)]
    [InlineData(2560, 42)]
    public void Dot_of_packed_row_equals_sum_of_code_times_activation(int columns, int seed)
    {
        var rng = new Random(seed);
        var ternary = new sbyte[columns];
        var q = new sbyte[columns];
        for (int i = 0; i < columns; i++) { ternary[i] = (sbyte)rng.Next(-1, 2); q[i] = (sbyte)rng.Next(-128, 128); }
        byte[] packed = I2sLayout.Pack(ternary, 1f);

        int expectedD = 0, expectedSigned = 0;
        for (int i = 0; i < columns; i++) { expectedD += (ternary[i] + 1) * q[i]; expectedSigned += ternary[i] * q[i]; }

        int d = I2sKernels.DotScalar(packed, q);
        Assert.Equal(expectedD, d);
        Assert.Equal(expectedSigned, d - q.Sum(v => (int)v));
    }

    [Fact]
    public void Pack_places_element_by_block_group_and_lane()
    {
        var ternary = new sbyte[256];
        ternary[128 + 64 + 5] = 1;   // block 1, group 2, lane 5 → byte 32+5, bits 3..2 hold code 2
        ternary[31] = -1;            // block 0, group 0, lane 31 → byte 31, bits 7..6 hold code 0
        byte[] packed = I2sLayout.Pack(ternary, 0.5f);
        Assert.Equal(2, (packed[37] >> 2) & 3);
        Assert.Equal(0, (packed[31] >> 6) & 3);
        Assert.Equal(1, (packed[0] >> 6) & 3);
        Assert.Equal(0.5f, I2sLayout.ReadScale(packed, 256));
        for (int e = 0; e < 256; e++)
            Assert.Equal(ternary[e], I2sLayout.CodeToValue(I2sLayout.Code(packed, e)));
    }

    [Fact]
    public void Quantize_rounds_half_to_even_and_sums_the_codes()
    {
        // amax = 127 → s = 1, so the int8 values are the inputs rounded half to even.
        float[] x = [127f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -127f, 3.49f];
        var q = new sbyte[x.Length];
        var (scale, sum) = ActivationQuantizer.Quantize(x, q);
        Assert.Equal(1f, scale);
        Assert.Equal(new sbyte[] { 127, 0, 2, 2, 0, -2, -127, 3 }, q);
        Assert.Equal(q.Sum(v => (int)v), sum);
    }

    [Fact]
    public void Quantize_of_all_zero_row_uses_the_1e5_floor()
    {
        var q = new sbyte[4];
        var (scale, sum) = ActivationQuantizer.Quantize(new float[4], q);
        Assert.Equal((float)(127.0 / 1e-5), scale);
        Assert.Equal(0, sum);
    }

    [Fact]
    public void Rescale_subtracts_sum_then_divides_then_multiplies()
    {
        Assert.Equal(((float)100 - (float)30) / 2.5f * 0.25f, I2sKernels.Rescale(100, 30, 2.5f, 0.25f));
    }
}
