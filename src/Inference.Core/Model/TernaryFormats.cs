using System.Buffers.Binary;

namespace BitNet.Inference.Model;

/// <summary>
/// Mainline llama.cpp's ternary block formats (spec §1.4), which BitNet files converted by
/// convert_hf_to_gguf.py use. Both hold 256 ternary values and an fp16 scale d per block; the value
/// of an element is t·d with t ∈ {−1, 0, +1}. The engine decodes them to ternary values at load and
/// repacks them as I2_S codes.
/// </summary>
internal static class TernaryFormats
{
    public const int BlockElements = 256;
    public const int Tq2BlockBytes = 66;
    public const int Tq1BlockBytes = 54;

    /// <summary>
    /// TQ2_0: 64 bytes of 2-bit codes, then fp16 d. For each half j (bytes 32j..32j+31) and bit pair l,
    /// byte 32j+m holds element 128j + 32l + m in bits [2l+1 : 2l]; value = code − 1.
    /// Returns d; throws if a code is 3 (value +2, not ternary).
    /// </summary>
    public static Half DecodeTq2_0(ReadOnlySpan<byte> block, Span<sbyte> values)
    {
        for (int j = 0; j < 2; j++)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++)
                {
                    int code = (block[32 * j + m] >> (2 * l)) & 3;
                    if (code == 3) throw new InvalidDataException("TQ2_0 code 3 (value +2) is not ternary");
                    values[128 * j + 32 * l + m] = (sbyte)(code - 1);
                }
        return BinaryPrimitives.ReadHalfLittleEndian(block.Slice(64, 2));
    }

    public static void EncodeTq2_0(ReadOnlySpan<sbyte> values, Half d, Span<byte> block)
    {
        block[..64].Clear();
        for (int j = 0; j < 2; j++)
            for (int l = 0; l < 4; l++)
                for (int m = 0; m < 32; m++)
                    block[32 * j + m] |= (byte)((values[128 * j + 32 * l + m] + 1) << (2 * l));
        BinaryPrimitives.WriteHalfLittleEndian(block.Slice(64, 2), d);
    }

    /// <summary>
    /// TQ1_0: 48 bytes qs holding 5 trits each (first 32 bytes: elements n·32 + m; next 16: 160 + n·16 + m),
    /// 4 bytes qh holding 4 trits each (elements 240 + n·4 + j), then fp16 d. A byte stores its trits as a
    /// base-3 number scaled to 0..255 (first trit most significant); trit n is ((byte·3ⁿ mod 256)·3) >> 8.
    /// </summary>
    public static Half DecodeTq1_0(ReadOnlySpan<byte> block, Span<sbyte> values)
    {
        int e = 0;
        for (int n = 0; n < 5; n++)
            for (int m = 0; m < 32; m++)
                values[e++] = Trit(block[m], n);
        for (int n = 0; n < 5; n++)
            for (int m = 0; m < 16; m++)
                values[e++] = Trit(block[32 + m], n);
        for (int n = 0; n < 4; n++)
            for (int j = 0; j < 4; j++)
                values[e++] = Trit(block[48 + j], n);
        return BinaryPrimitives.ReadHalfLittleEndian(block.Slice(52, 2));
    }

    public static void EncodeTq1_0(ReadOnlySpan<sbyte> values, Half d, Span<byte> block)
    {
        for (int m = 0; m < 32; m++)
            block[m] = Pack(values, m, 32, 5);
        for (int m = 0; m < 16; m++)
            block[32 + m] = Pack(values, 160 + m, 16, 5);
        for (int j = 0; j < 4; j++)
            block[48 + j] = Pack(values, 240 + j, 4, 4);
        BinaryPrimitives.WriteHalfLittleEndian(block.Slice(52, 2), d);
    }

    private static readonly int[] Pow3 = [1, 3, 9, 27, 81, 243];

    private static sbyte Trit(byte packed, int n)
    {
        byte q = (byte)(packed * Pow3[n]);
        return (sbyte)(((q * 3) >> 8) - 1);
    }

    /// <summary>Base-3 number of <paramref name="count"/> trits (first most significant, padded to 5), mapped to 0..255 by ceiling division.</summary>
    private static byte Pack(ReadOnlySpan<sbyte> values, int first, int stride, int count)
    {
        int q = 0;
        for (int n = 0; n < count; n++)
            q = q * 3 + values[first + n * stride] + 1;
        for (int n = count; n < 5; n++)
            q *= 3;
        return (byte)((q * 256 + 242) / 243);
    }
}
