namespace BitNet.Inference.Gguf;

/// <summary>
/// One tensor's entry in a GGUF file. <paramref name="Shape"/> is in ggml `ne` order: Shape[0] is the
/// contiguous dimension (the input dimension of a weight matrix), Shape[1] the rows.
/// <paramref name="Offset"/> counts from the start of the data section; <paramref name="ByteSize"/> is
/// the exact size by the type rules (I2_S: n/4 + 32), without alignment padding.
/// </summary>
public sealed record GgufTensorInfo(string Name, GgmlType Type, long[] Shape, long Offset, long ByteSize)
{
    public long ElementCount
    {
        get
        {
            long n = 1;
            foreach (long d in Shape) n *= d;
            return n;
        }
    }

    /// <summary>Shape formatted like "[2560, 6912]".</summary>
    public string ShapeText => "[" + string.Join(", ", Shape) + "]";
}
