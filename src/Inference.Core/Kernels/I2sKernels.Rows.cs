using System.Runtime.Intrinsics;

namespace BitNet.Inference.Kernels;

/// <summary>
/// Computes the integer dot products D[t, r] = Σ_k code[r, k] · q[t, k] for the weight rows
/// [rowStart, rowStart + rowCount) of an I2_S matrix and every token t &lt; tokens.
/// <paramref name="weights"/> is the whole matrix's packed codes (rows × columns/4 bytes, 128/32
/// layout, no tail needed); <paramref name="activations"/> holds tokens × columns int8 values,
/// token-major; <paramref name="dots"/> receives tokens × rowCount results, token-major
/// (dots[t · rowCount + (r − rowStart)]).
/// Every implementation must return exactly what <see cref="I2sKernels.DotScalar"/> returns.
/// </summary>
public delegate void I2sDotRowsKernel(
    ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
    int rowStart, int rowCount, Span<int> dots);

internal static partial class I2sKernels
{
    /// <summary>The reference multi-row kernel: <see cref="DotScalar"/> for every (token, row).</summary>
    public static void DotRowsScalar(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots)
    {
        ValidateRows(weights, columns, activations, tokens, rowStart, rowCount, dots);
        int rowBytes = columns / 4;
        for (int t = 0; t < tokens; t++)
        {
            ReadOnlySpan<sbyte> q = activations.Slice(t * columns, columns);
            for (int r = 0; r < rowCount; r++)
                dots[t * rowCount + r] = DotScalar(weights.Slice((rowStart + r) * rowBytes, rowBytes), q);
        }
    }

    /// <summary>
    /// <see cref="Rescale"/> for a run of dots of one token, vectorised: int → float conversion,
    /// subtraction, division and multiplication are each correctly rounded IEEE operations, so every
    /// lane gives exactly the scalar result.
    /// </summary>
    public static void RescaleRow(ReadOnlySpan<int> dots, int activationSum, float activationScale, float weightScale, Span<float> output)
    {
        if (output.Length < dots.Length) throw new ArgumentException("output is shorter than the dots", nameof(output));
        int i = 0;
        if (Vector256.IsHardwareAccelerated)
        {
            var sum = Vector256.Create((float)activationSum);
            var scale = Vector256.Create(activationScale);
            var wScale = Vector256.Create(weightScale);
            for (; i + 8 <= dots.Length; i += 8)
            {
                var d = Vector256.ConvertToSingle(Vector256.Create(dots.Slice(i, 8)));
                ((d - sum) / scale * wScale).CopyTo(output.Slice(i, 8));
            }
        }
        else if (Vector128.IsHardwareAccelerated)
        {
            var sum = Vector128.Create((float)activationSum);
            var scale = Vector128.Create(activationScale);
            var wScale = Vector128.Create(weightScale);
            for (; i + 4 <= dots.Length; i += 4)
            {
                var d = Vector128.ConvertToSingle(Vector128.Create(dots.Slice(i, 4)));
                ((d - sum) / scale * wScale).CopyTo(output.Slice(i, 4));
            }
        }
        for (; i < dots.Length; i++)
            output[i] = Rescale(dots[i], activationSum, activationScale, weightScale);
    }


    /// <summary>One check at the kernel boundary so the SIMD loops can run on raw pointers.</summary>
    internal static void ValidateRows(
        ReadOnlySpan<byte> weights, int columns, ReadOnlySpan<sbyte> activations, int tokens,
        int rowStart, int rowCount, Span<int> dots)
    {
        if (columns <= 0 || columns % I2sLayout.BlockElements != 0)
            throw new ArgumentException($"I2_S rows need a positive multiple of {I2sLayout.BlockElements} columns, got {columns}", nameof(columns));
        if (tokens < 0 || rowStart < 0 || rowCount < 0)
            throw new ArgumentOutOfRangeException(nameof(rowCount), "token and row counts must not be negative");
        if ((long)(rowStart + rowCount) * (columns / 4) > weights.Length)
            throw new ArgumentException($"rows {rowStart}..{rowStart + rowCount} of {columns} columns run past the {weights.Length}-byte matrix", nameof(weights));
        if ((long)tokens * columns > activations.Length)
            throw new ArgumentException($"{tokens} tokens × {columns} columns do not fit the {activations.Length} activations", nameof(activations));
        if ((long)tokens * rowCount > dots.Length)
            throw new ArgumentException($"{tokens} × {rowCount} results do not fit the {dots.Length}-element destination", nameof(dots));
    }
}
