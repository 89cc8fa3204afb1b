using BitNet.Inference.Kernels;
using BitNet.Inference.Model;

namespace BitNet.Inference.Tests.Model;

/// <summary>Pieces of the forward pass that were restructured for speed, checked against their plain forms.</summary>
public class ForwardPieceTests
{
    [Fact]
    public void Rotating_query_and_key_heads_together_equals_rotating_each_alone()
    {
        var rng = new Random(3);
        const int headDim = 128, qHeads = 4, kHeads = 2;
        var q = new float[qHeads * headDim];
        var k = new float[kHeads * headDim];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 2 - 1);
        for (int i = 0; i < k.Length; i++) k[i] = (float)(rng.NextDouble() * 2 - 1);
        var q1 = (float[])q.Clone();
        var k1 = (float[])k.Clone();
        Rope.ApplyNeox(q1, qHeads, headDim, 777, 500000f);
        Rope.ApplyNeox(k1, kHeads, headDim, 777, 500000f);
        Rope.ApplyNeox(q, qHeads, k, kHeads, headDim, 777, 500000f);
        Assert.Equal(q1, q);
        Assert.Equal(k1, k);

        // And against the textbook rotation, element by element (products rounded, no FMA).
        var x = new float[headDim];
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var expected = (float[])x.Clone();
        float theta = 5, step = MathF.Pow(10000f, -2.0f / headDim);
        for (int i = 0; i < headDim / 2; i++, theta *= step)
        {
            float c = MathF.Cos(theta), s = MathF.Sin(theta), a = x[i], b = x[i + headDim / 2];
            expected[i] = a * c - b * s;
            expected[i + headDim / 2] = a * s + b * c;
        }
        Rope.ApplyNeox(x, 1, headDim, 5, 10000f);
        Assert.Equal(expected, x);
    }

    [Theory]
    [InlineData(1, 1)]
    [InlineData(2, 3)]
    [InlineData(2, 17)]
    public void Products_sharing_one_dispatch_equal_separate_products(int threads, int tokens)
    {
        var rng = new Random(tokens);
        TernaryMatrix a = Matrix(rng, "a", 44, 256), b = Matrix(rng, "b", 12, 256), c = Matrix(rng, "c", 8, 256);
        var x = new QuantizedActivations(tokens, 256);
        var input = new float[tokens * 256];
        for (int i = 0; i < input.Length; i++) input[i] = (float)(rng.NextDouble() * 2 - 1);
        x.Quantize(input, tokens, 256);

        using var matmul = new MatMul(threads);
        float[] ya = new float[tokens * 44], yb = new float[tokens * 12], yc = new float[tokens * 8];
        matmul.Ternary(x, a, ya, b, yb, c, yc);
        foreach (var (w, y) in new[] { (a, ya), (b, yb), (c, yc) })
        {
            var expected = new float[tokens * w.Rows];
            MatMul.TernaryRows(w, x, expected, 0, w.Rows);
            Assert.Equal(expected, y);
        }
    }

    private static TernaryMatrix Matrix(Random rng, string name, int rows, int columns)
    {
        var values = new sbyte[rows * columns];
        for (int i = 0; i < values.Length; i++) values[i] = (sbyte)rng.Next(-1, 2);
        return TernaryMatrix.FromTernaryValues(name, values, rows, columns, 0.03f);
    }
}
