namespace BitNet.Inference.Gguf;

/// <summary>
/// ggml tensor type ids as bitnet.cpp's llama.cpp fork numbers them (spec §1.4). Ids 36-39 differ
/// from mainline llama.cpp (where 39 is MXFP4), so this enum is the only mapping we trust.
/// </summary>
public enum GgmlType : uint
{
    F32 = 0,
    F16 = 1,
    Q8_0 = 8,
    BF16 = 30,
    /// <summary>Mainline ternary: 256-element blocks, base-3 packed, fp16 scale per block (54 bytes).</summary>
    TQ1_0 = 34,
    /// <summary>Mainline ternary: 256-element blocks, 2-bit codes low bits first, fp16 scale per block (66 bytes).</summary>
    TQ2_0 = 35,
    /// <summary>bitnet.cpp ternary, 128/32 layout, one float scale per tensor: n/4 + 32 bytes.</summary>
    I2_S = 36,
    /// <summary>bitnet.cpp's int8 activation type; never stored in files, accepted at one byte per element.</summary>
    I8_S = 37,
    /// <summary>bitnet.cpp ARM LUT format; same size rule as I2_S.</summary>
    TL1 = 38,
    /// <summary>bitnet.cpp x86 LUT format; see <see cref="GgmlTypeInfo.TensorBytes"/>.</summary>
    TL2 = 39,
}

/// <summary>Block sizes and byte sizes of the ggml types we know (spec §1.4).</summary>
internal static class GgmlTypeInfo
{
    public static bool IsKnown(GgmlType type) => type is GgmlType.F32 or GgmlType.F16 or GgmlType.Q8_0 or GgmlType.BF16
        or GgmlType.TQ1_0 or GgmlType.TQ2_0 or GgmlType.I2_S or GgmlType.I8_S or GgmlType.TL1 or GgmlType.TL2;

    /// <summary>Elements per block (1 for the per-element and the per-tensor-scaled types).</summary>
    public static int BlockElements(GgmlType type) => type switch
    {
        GgmlType.Q8_0 => 32,
        GgmlType.TQ1_0 or GgmlType.TQ2_0 => 256,
        _ => 1,
    };

    /// <summary>Bytes per block for the regular types; the I2_S/TL1/TL2 special rules live in <see cref="TensorBytes"/>.</summary>
    public static int BlockBytes(GgmlType type) => type switch
    {
        GgmlType.F32 => 4,
        GgmlType.F16 or GgmlType.BF16 => 2,
        GgmlType.Q8_0 => 34,
        GgmlType.TQ1_0 => 54,
        GgmlType.TQ2_0 => 66,
        GgmlType.I2_S or GgmlType.I8_S or GgmlType.TL1 or GgmlType.TL2 => 1,
        _ => throw new ArgumentOutOfRangeException(nameof(type), type, "unknown ggml type"),
    };

    /// <summary>
    /// Exact byte size of a tensor of this type and shape (ne order), or an error text when the
    /// shape does not fit the type (null on success). Sizes overflowing a long are errors too.
    /// </summary>
    public static long TensorBytes(GgmlType type, ReadOnlySpan<long> shape, out string? error)
    {
        error = null;
        long elements = 1;
        foreach (long ne in shape)
        {
            if (ne < 1) { error = $"dimension {ne} is not positive"; return -1; }
            if (elements > long.MaxValue / ne) { error = "element count overflows"; return -1; }
            elements *= ne;
        }
        if (elements > long.MaxValue / 8) { error = "element count overflows"; return -1; }
        long ne0 = shape.Length > 0 ? shape[0] : 1;
        switch (type)
        {
            case GgmlType.I2_S:
            case GgmlType.TL1:
                // bitnet.cpp's ggml_nbytes: the nominal one-byte-per-element size, /4, + 32 (the scale tail).
                return elements / 4 + 32;
            case GgmlType.TL2:
            {
                // (ne0−256)·ne1/3·5/8 + 256·ne1/2·4/8, padded to 32, then +32 (integer arithmetic, left to right).
                if (ne0 < 256) { error = $"TL2 needs ne0 ≥ 256, got {ne0}"; return -1; }
                long rows = elements / ne0;
                long size = (ne0 - 256) * rows / 3 * 5 / 8 + 256 * rows / 2 * 4 / 8;
                if (size % 32 != 0) size += 32 - size % 32;
                return size + 32;
            }
            default:
            {
                int block = BlockElements(type);
                if (ne0 % block != 0) { error = $"ne0 = {ne0} is not a multiple of the {type} block size {block}"; return -1; }
                return elements / block * BlockBytes(type);
            }
        }
    }
}
