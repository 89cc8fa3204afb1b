using System.Buffers.Binary;
using BitNet.Inference.Gguf;

namespace BitNet.Inference.Conversion;

/// <summary>Element types a naive conversion can read.</summary>
public enum SourceDType { F32, F16, BF16 }

/// <summary>
/// One input tensor: its GGUF name, shape in ggml <c>ne</c> order (ne0 = the contiguous dimension)
/// and raw little-endian elements behind a pointer into a memory-mapped file. Reading goes through
/// <see cref="ReadFloats"/> in chunks, so no tensor is ever copied whole.
/// </summary>
public sealed unsafe class SourceTensor(string name, long[] shape, SourceDType dtype, byte* data, long byteLength)
{
    public string Name { get; } = name;
    public long[] Shape { get; } = shape;
    public SourceDType DType { get; } = dtype;

    public long ElementCount => Shape.Aggregate(1L, (a, b) => a * b);

    public static int ElementSize(SourceDType dtype) => dtype == SourceDType.F32 ? 4 : 2;

    /// <summary>Copies elements [start, start + destination.Length) as floats.</summary>
    public void ReadFloats(long start, Span<float> destination)
    {
        int size = ElementSize(DType);
        if (start < 0 || (start + destination.Length) * size > byteLength)
            throw new ArgumentOutOfRangeException(nameof(start), $"tensor '{Name}': read past its {byteLength} bytes");
        var bytes = new ReadOnlySpan<byte>(data + start * size, destination.Length * size);
        switch (DType)
        {
            case SourceDType.F32:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = BinaryPrimitives.ReadSingleLittleEndian(bytes[(i * 4)..]);
                break;
            case SourceDType.F16:
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = (float)BinaryPrimitives.ReadHalfLittleEndian(bytes[(i * 2)..]);
                break;
            case SourceDType.BF16:
                // bfloat16 is the top half of a float32.
                for (int i = 0; i < destination.Length; i++)
                    destination[i] = BitConverter.Int32BitsToSingle(BinaryPrimitives.ReadUInt16LittleEndian(bytes[(i * 2)..]) << 16);
                break;
        }
    }

    public static SourceDType FromGgml(GgmlType type, string tensor) => type switch
    {
        GgmlType.F32 => SourceDType.F32,
        GgmlType.F16 => SourceDType.F16,
        GgmlType.BF16 => SourceDType.BF16,
        _ => throw new ConversionException($"tensor '{tensor}' is {type}; a naive conversion reads only F32, F16 and BF16 (the input must be unquantized)"),
    };
}

/// <summary>The input cannot be converted; the message names the tensor or file and the reason.</summary>
public sealed class ConversionException(string message, Exception? inner = null) : Exception(message, inner);
