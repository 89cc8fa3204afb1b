using BitNet.Inference.Kernels;
using static BitNet.Inference.Tests.Kernels.KernelTestData;

namespace BitNet.Inference.Tests.Kernels;

/// <summary>The screened head's int8 × int16 dots: every vector kernel returns the scalar kernel's exact integers.</summary>
public class Q8ExactDotsTests
{
    // 4096 and 2048 columns are the AVX2 and AdvSimd flush blocks; 9000 spans several with a tail.
    public static TheoryData<string, int> SetsAndWidths() =>
        SetsWithWidths(["avx2", "avx512vnni", "neon", "dotprod"], [1, 15, 16, 17, 33, 2048, 2560, 4096, 4111, 9000]);

    public static TheoryData<string> WidestLaneSets => new(OfThisArchitecture("avx2", "neon"));

    [Theory]
    [MemberData(nameof(SetsAndWidths))]
    public void Vector_dots_equal_the_scalar_dots(string setName, int columns)
    {
        KernelSet set = RequireSet(setName);
        var rng = new Random(columns * 31 + setName.Length);
        const int rows = 7;
        var matrix = new sbyte[(rows + 2) * columns];
        var x = new short[columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (sbyte)rng.Next(-128, 128);
        for (int i = 0; i < x.Length; i++) x[i] = (short)rng.Next(-32768, 32768);

        var expected = new long[rows];
        var actual = new long[rows];
        Q8ExactDots.RowsScalar(matrix, columns, x, 2, rows, expected);
        set.DotQ8Exact(matrix, columns, x, 2, rows, actual);
        Assert.Equal(expected, actual);
    }

    [Theory]
    [MemberData(nameof(WidestLaneSets))]
    public void The_largest_products_in_every_lane_do_not_overflow(string setName)
    {
        // -128 · -32768 everywhere: each int32 lane reaches 2^30 just before a flush.
        KernelSet set = RequireSet(setName);
        const int columns = 3 * 4096 + 16;
        var matrix = Enumerable.Repeat((sbyte)-128, columns).ToArray();
        var x = Enumerable.Repeat((short)-32768, columns).ToArray();
        var dots = new long[1];
        set.DotQ8Exact(matrix, columns, x, 0, 1, dots);
        Assert.Equal(128L * 32768 * columns, dots[0]);
    }

    public static TheoryData<string, int, int> SetsTokensAndWidths()
    {
        var data = new TheoryData<string, int, int>();
        foreach (string set in OfThisArchitecture("scalar", "avx2", "avx512vnni", "neon", "dotprod"))
            foreach (int tokens in new[] { 1, 2, 3, 4, 5, 8, 9 })
                foreach (int columns in new[] { 17, 2560, 4111, 9000 })
                    data.Add(set, tokens, columns);
        return data;
    }

    [Theory]
    [MemberData(nameof(SetsTokensAndWidths))]
    public void Several_tokens_dots_equal_each_tokens_scalar_dots(string setName, int tokens, int columns)
    {
        KernelSet set = RequireSet(setName);
        var rng = new Random(columns * 7 + tokens);
        const int rows = 37, stride = 40;   // more rows than one call of the emitted loop takes
        var matrix = new sbyte[(rows + 3) * columns];
        var x = new short[tokens * columns];
        for (int i = 0; i < matrix.Length; i++) matrix[i] = (sbyte)rng.Next(-128, 128);
        for (int i = 0; i < x.Length; i++) x[i] = (short)rng.Next(-32768, 32768);

        var actual = new long[tokens * stride];
        Array.Fill(actual, long.MinValue);
        set.DotQ8ExactTokens(matrix, columns, x, tokens, 3, rows, actual, stride);
        var expected = new long[rows];
        for (int t = 0; t < tokens; t++)
        {
            Q8ExactDots.RowsScalar(matrix, columns, x.AsSpan(t * columns, columns), 3, rows, expected);
            Assert.Equal(expected, actual.AsSpan(t * stride, rows).ToArray());
            Assert.All(actual.AsSpan(t * stride + rows, stride - rows).ToArray(), v => Assert.Equal(long.MinValue, v));   // past rowCount: untouched
        }
    }

    public static TheoryData<string> SeveralTokenSets => new(OfThisArchitecture("avx2", "avx512vnni", "neon"));

    [Theory]
    [MemberData(nameof(SeveralTokenSets))]
    public void The_largest_products_for_several_tokens_do_not_overflow(string setName)
    {
        KernelSet set = RequireSet(setName);
        const int columns = 3 * 4096 + 16, tokens = Q8ExactDots.MaxTokensPerPass + 1;
        var matrix = Enumerable.Repeat((sbyte)-128, columns).ToArray();
        var x = Enumerable.Repeat((short)-32768, tokens * columns).ToArray();
        var dots = new long[tokens];
        set.DotQ8ExactTokens(matrix, columns, x, tokens, 0, 1, dots, 1);
        Assert.All(dots, d => Assert.Equal(128L * 32768 * columns, d));
    }

    [Fact]
    public void Several_token_results_that_do_not_fit_their_stride_are_an_argument_error()
    {
        var matrix = new sbyte[4 * 8];
        var x = new short[2 * 8];
        Assert.Throws<ArgumentException>(() => Q8ExactDots.RowsTokensScalar(matrix, 8, x, 2, 0, 4, new long[8], 3));
        Assert.Throws<ArgumentException>(() => Q8ExactDots.RowsTokensScalar(matrix, 8, x, 3, 0, 4, new long[12], 4));
    }

    [Fact]
    public void The_scalar_dot_is_the_plain_sum_of_products()
    {
        sbyte[] matrix = [1, -2, 3, 127, -128, 0];
        short[] x = [5, 7, -11, 32767, -32768, 9];
        var dots = new long[2];
        Q8ExactDots.RowsScalar(matrix, 3, x, 0, 2, dots);
        Assert.Equal(1 * 5 - 2 * 7 - 3 * 11, dots[0]);
        Assert.Equal(127L * 5 - 128 * 7, dots[1]);
    }

    [Fact]
    public void Rows_past_the_matrix_are_an_argument_error()
    {
        var matrix = new sbyte[10];
        var x = new short[5];
        Assert.Throws<ArgumentException>(() => Q8ExactDots.RowsScalar(matrix, 5, x, 1, 2, new long[2]));
    }
}
