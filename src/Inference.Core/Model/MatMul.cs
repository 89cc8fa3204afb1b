using BitNet.Inference.Kernels;

namespace BitNet.Inference.Model;

/// <summary>
/// The single entry point for the forward pass's matrix products: every ternary (I2_S) matmul and the
/// F16 LM head go through here, so faster kernels and a worker pool plug in without touching the graph.
/// This version is the scalar reference: the numbers every other kernel must reproduce.
/// </summary>
public sealed unsafe class MatMul
{
    public MatMul(int threads = 1, string? kernel = null)
    {
        if (kernel is not (null or "scalar"))
            throw new ArgumentException($"unknown kernel '{kernel}' (available: scalar)", nameof(kernel));
        Threads = Math.Max(1, threads);
        KernelName = "scalar";
    }

    public string KernelName { get; }
    public int Threads { get; }

    /// <summary>y[t·W.Rows + r] = Σ_k W[r,k]·x[t,k] for every token t of <paramref name="x"/> and row r of W.</summary>
    public void Ternary(TernaryMatrix w, QuantizedActivations x, Span<float> y)
    {
        if (x.Columns != w.Columns)
            throw new ArgumentException($"'{w.Name}' takes {w.Columns} inputs, the activations have {x.Columns}");
        TernaryRows(w, x, y, 0, w.Rows);
    }

    /// <summary>
    /// The reference I2_S × int8 product for output rows [rowStart, rowEnd) of every token:
    /// y = ((float)D − (float)act_sum) / s · w_scale (spec §4.3), D from the exact integer dot.
    /// </summary>
    public static void TernaryRows(TernaryMatrix w, QuantizedActivations x, Span<float> y, int rowStart, int rowEnd)
    {
        for (int t = 0; t < x.Tokens; t++)
        {
            ReadOnlySpan<sbyte> q = x.Row(t);
            Span<float> yt = y.Slice(t * w.Rows, w.Rows);
            for (int r = rowStart; r < rowEnd; r++)
            {
                yt[r] = w.BlockScales is null
                    ? I2sKernels.Rescale(I2sKernels.DotScalar(w.Row(r), q), x.Sums[t], x.Scales[t], w.Scale)
                    : BlockScaledDot(w, r, q, x.Scales[t]);
            }
        }
    }

    /// <summary>
    /// A TQ1_0/TQ2_0 row whose 256-element blocks carry different scales: Σ_b d_b·(D_b − S_b) / s,
    /// with D_b the code·q dot and S_b the activation sum of block b (exact integers).
    /// </summary>
    private static float BlockScaledDot(TernaryMatrix w, int row, ReadOnlySpan<sbyte> q, float activationScale)
    {
        const int block = TernaryFormats.BlockElements;
        int blocksPerRow = w.Columns / block;
        ReadOnlySpan<byte> codes = w.Row(row);
        float sum = 0;
        for (int b = 0; b < blocksPerRow; b++)
        {
            ReadOnlySpan<sbyte> qb = q.Slice(b * block, block);
            int d = I2sKernels.DotScalar(codes.Slice(b * block / 4, block / 4), qb);
            int s = 0;
            foreach (sbyte v in qb) s += v;
            sum += ((float)d - (float)s) / activationScale * w.BlockScales![row * blocksPerRow + b];
        }
        return sum;
    }

    /// <summary>
    /// logits[t·rows + v] = Σ_i W[v,i]·x[t,i] for the F16 LM head W [columns, rows] (row v at W + v·columns):
    /// F16 weights widened to F32, F32 input, F32 accumulation.
    /// </summary>
    public void LmHead(Half* weights, int rows, int columns, ReadOnlySpan<float> x, int tokens, Span<float> logits)
    {
        for (int t = 0; t < tokens; t++)
            LmHeadRows(weights, columns, x.Slice(t * columns, columns), logits.Slice(t * rows, rows), 0, rows);
    }

    /// <summary>The reference F16 dot for LM-head rows [rowStart, rowEnd) of one token.</summary>
    public static void LmHeadRows(Half* weights, int columns, ReadOnlySpan<float> x, Span<float> logits, int rowStart, int rowEnd)
    {
        for (int v = rowStart; v < rowEnd; v++)
        {
            Half* row = weights + (long)v * columns;
            float acc = 0;
            for (int i = 0; i < columns; i++)
                acc += HalfTable.ToFloat(row[i]) * x[i];
            logits[v] = acc;
        }
    }
}

/// <summary>F16 → F32 by table: exact (every half has an exact float) and fast in scalar code.</summary>
internal static class HalfTable
{
    private static readonly float[] Table = Build();

    private static float[] Build()
    {
        var table = new float[65536];
        for (int i = 0; i < table.Length; i++)
            table[i] = (float)BitConverter.UInt16BitsToHalf((ushort)i);
        return table;
    }

    public static float ToFloat(Half h) => Table[BitConverter.HalfToUInt16Bits(h)];
}
