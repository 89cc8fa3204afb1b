using BitNet.Inference.Kernels;

namespace BitNet.Inference.Model;

/// <summary>
/// The int8 form of a batch of activation rows (one per token) that I2_S matmuls consume (spec §4.1):
/// per token the int8 values, the scale s = 127/amax and the sum of the int8 values. Quantized once
/// per input and reused by every matmul that reads it (q/k/v share one, gate/up share one).
/// </summary>
internal sealed class QuantizedActivations
{
    public QuantizedActivations(int maxTokens, int maxColumns)
    {
        Values = new sbyte[maxTokens * maxColumns];
        Scales = new float[maxTokens];
        Sums = new int[maxTokens];
        MaxTokens = maxTokens;
        MaxColumns = maxColumns;
    }

    public int MaxTokens { get; }
    public int MaxColumns { get; }
    /// <summary>Tokens currently held.</summary>
    public int Tokens { get; private set; }
    /// <summary>Width of each row currently held.</summary>
    public int Columns { get; private set; }
    /// <summary>Row-major int8 values, row t at [t·Columns, (t+1)·Columns).</summary>
    public sbyte[] Values { get; }
    public float[] Scales { get; }
    public int[] Sums { get; }

    public ReadOnlySpan<sbyte> Row(int token) => Values.AsSpan(token * Columns, Columns);

    /// <summary>Quantize <paramref name="tokens"/> rows of <paramref name="columns"/> floats (row-major).</summary>
    public void Quantize(ReadOnlySpan<float> x, int tokens, int columns)
    {
        Reshape(tokens, columns);
        for (int t = 0; t < tokens; t++)
            QuantizeRow(t, x.Slice(t * columns, columns));
    }

    /// <summary>Declare the batch shape before filling it row by row with <see cref="QuantizeRow"/>
    /// (rows are independent, so several threads may fill different rows).</summary>
    public void Reshape(int tokens, int columns)
    {
        if (tokens > MaxTokens || columns > MaxColumns)
            throw new ArgumentException($"batch of {tokens}×{columns} exceeds the buffer's {MaxTokens}×{MaxColumns}");
        Tokens = tokens;
        Columns = columns;
    }

    /// <summary>Quantize one token's row (Columns floats) into row <paramref name="token"/>.</summary>
    public void QuantizeRow(int token, ReadOnlySpan<float> row) =>
        (Scales[token], Sums[token]) = ActivationQuantizer.Quantize(row[..Columns], Values.AsSpan(token * Columns, Columns));
}
