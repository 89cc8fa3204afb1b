namespace BitNet.Inference.Gguf;

/// <summary>
/// Private copies of some tensors' data, in one <see cref="Memory.HugePageBlock"/>: what
/// <see cref="GgufFile.CopyTensorsToMemory"/> reads out of the file. Each tensor starts on a 64-byte
/// boundary (the file only promises its alignment, 32 by default; 64 is a cache line).
/// Freed by <see cref="Dispose"/>.
/// </summary>
internal sealed unsafe class TensorCopies : IDisposable
{
    private const long TensorAlignment = 64;
    /// <summary>Bytes per positional read: large enough that the call costs nothing, small enough to share out evenly.</summary>
    internal const long PieceBytes = 8L << 20;

    private readonly Memory.HugePageBlock _block;
    private readonly Dictionary<string, long> _offsets = new(StringComparer.Ordinal);

    public TensorCopies(IReadOnlyList<GgufTensorInfo> tensors)
    {
        long size = 0;
        foreach (GgufTensorInfo tensor in tensors)
        {
            if (!_offsets.TryAdd(tensor.Name, size))
                throw new ArgumentException($"tensor '{tensor.Name}' is listed twice", nameof(tensors));
            size = (size + tensor.ByteSize + TensorAlignment - 1) / TensorAlignment * TensorAlignment;
        }
        _block = new Memory.HugePageBlock(size);
    }

    /// <summary>Bytes laid out, padding between tensors included.</summary>
    public long Bytes => _block.Bytes;

    public bool TryGetPointer(string tensor, out byte* pointer)
    {
        bool found = _offsets.TryGetValue(tensor, out long offset);
        pointer = found ? _block.Start + offset : null;   // Start throws once disposed
        return found;
    }

    public void Dispose() => _block.Dispose();
}
