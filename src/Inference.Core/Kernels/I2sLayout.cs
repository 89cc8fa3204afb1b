using System.Buffers.Binary;

namespace BitNet.Inference.Kernels;

/// <summary>
/// The I2_S ternary format of bitnet.cpp (ggml type 36), in the 128/32 layout used by the published
/// 2B4T file on every CPU (spec §3.1).
///
/// Elements are numbered row-major, e = row·ne0 + col. Element e sits in block b = e / 128 at
/// position j = e % 128; group g = j / 32 and lane p = j % 32 put it in byte b·32 + p, bits
/// [7−2g : 6−2g]. So byte p of a block holds elements p, 32+p, 64+p and 96+p, from the most
/// significant bit pair down. Codes are 0 → −1, 1 → 0, 2 → +1 (3 is never written; read as 0).
///
/// After the n/4 packed bytes comes a 32-byte tail whose first 4 bytes are the one float32 scale
/// of the whole tensor. Total size: n/4 + 32 bytes.
/// </summary>
public static class I2sLayout
{
    /// <summary>Elements per block: each block is 32 bytes holding 4 groups of 32 two-bit codes.</summary>
    public const int BlockElements = 128;
    public const int BlockBytes = 32;
    public const int TailBytes = 32;

    /// <summary>Bytes of packed codes for a row of <paramref name="columns"/> elements.</summary>
    public static int RowBytes(int columns) => columns / 4;

    /// <summary>Bytes an I2_S tensor of n elements takes in a file (before alignment padding).</summary>
    public static long TensorBytes(long elements) => elements / 4 + TailBytes;

    /// <summary>The two-bit code of element <paramref name="index"/> (row-major) in packed data.</summary>
    public static int Code(ReadOnlySpan<byte> packed, long index)
    {
        long block = index / BlockElements;
        int position = (int)(index % BlockElements);
        int group = position / 32, lane = position % 32;
        return (packed[(int)(block * BlockBytes + lane)] >> (6 - 2 * group)) & 3;
    }

    /// <summary>The ternary value (−1, 0, +1) a code stands for; code 3 reads as 0 like dequantize_row_i2_s.</summary>
    public static int CodeToValue(int code) => code switch { 0 => -1, 2 => 1, _ => 0 };

    /// <summary>The per-tensor scale stored after the packed codes.</summary>
    public static float ReadScale(ReadOnlySpan<byte> tensor, long elements) =>
        BinaryPrimitives.ReadSingleLittleEndian(tensor.Slice((int)(elements / 4), 4));

    /// <summary>
    /// Pack ternary values (−1, 0, +1, row-major, length a multiple of 128) and a scale into I2_S
    /// bytes, tail included (the 28 padding bytes are written as zero).
    /// </summary>
    public static byte[] Pack(ReadOnlySpan<sbyte> ternary, float scale)
    {
        if (ternary.Length % BlockElements != 0)
            throw new ArgumentException($"I2_S needs a multiple of {BlockElements} elements, got {ternary.Length}", nameof(ternary));
        var bytes = new byte[TensorBytes(ternary.Length)];
        PackInto(ternary, bytes);
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(ternary.Length / 4, 4), scale);
        return bytes;
    }

    /// <summary>Pack ternary values into codes only (no tail); destination holds length/4 bytes.</summary>
    public static void PackInto(ReadOnlySpan<sbyte> ternary, Span<byte> destination)
    {
        for (int e = 0; e < ternary.Length; e++)
        {
            int value = ternary[e];
            if (value is < -1 or > 1)
                throw new ArgumentException($"element {e} is {value}, not a ternary value", nameof(ternary));
            int block = e / BlockElements, position = e % BlockElements;
            int group = position / 32, lane = position % 32;
            int code = value + 1;
            destination[block * BlockBytes + lane] |= (byte)(code << (6 - 2 * group));
        }
    }
}
