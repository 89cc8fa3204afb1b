namespace BitNet.Inference.Kernels;

/// <summary>
/// I2_S × int8 kernels. This file is the scalar reference: the specification every SIMD variant
/// (I2sKernels.Avx2.cs, .Avx512.cs, .AdvSimd.cs) must reproduce bit for bit.
///
/// The trick all of them share: the codes 0, 1, 2 stand for −1, 0, +1, so instead of decoding
/// signs the kernel multiplies the unsigned code with the int8 activation and accumulates
///   D = Σ code·q,
/// and the caller removes the offset afterwards, Σ value·q = D − Σ q (the activation sum that
/// ActivationQuantizer already computed).
/// </summary>
internal static partial class I2sKernels
{
    /// <summary>
    /// D = Σ_k code_k · q_k over one weight row. <paramref name="row"/> holds columns/4 bytes in the
    /// 128/32 layout; <paramref name="q"/> holds the columns' int8 activations.
    /// Exact in int32: |D| ≤ 2 · 128 · columns, far below 2^31 for any real width.
    /// </summary>
    public static int DotScalar(ReadOnlySpan<byte> row, ReadOnlySpan<sbyte> q)
    {
        int columns = q.Length;
        if (columns % I2sLayout.BlockElements != 0 || row.Length < columns / 4)
            throw new ArgumentException($"row of {row.Length} bytes cannot hold {columns} I2_S columns");

        int sum = 0;
        for (int block = 0; block < columns / I2sLayout.BlockElements; block++)
        {
            ReadOnlySpan<byte> bytes = row.Slice(block * I2sLayout.BlockBytes, I2sLayout.BlockBytes);
            ReadOnlySpan<sbyte> acts = q.Slice(block * I2sLayout.BlockElements, I2sLayout.BlockElements);
            for (int lane = 0; lane < 32; lane++)
            {
                int b = bytes[lane];
                sum += ((b >> 6) & 3) * acts[lane];        // group 0: elements 0..31
                sum += ((b >> 4) & 3) * acts[32 + lane];   // group 1: elements 32..63
                sum += ((b >> 2) & 3) * acts[64 + lane];   // group 2: elements 64..95
                sum += (b & 3) * acts[96 + lane];          // group 3: elements 96..127
            }
        }
        return sum;
    }

    /// <summary>
    /// Turn the integer dot product into the output value, in bitnet.cpp's exact order:
    /// subtract the activation sum, divide by the activation scale, multiply by the weight scale.
    /// </summary>
    public static float Rescale(int dot, int activationSum, float activationScale, float weightScale) =>
        ((float)dot - (float)activationSum) / activationScale * weightScale;
}
