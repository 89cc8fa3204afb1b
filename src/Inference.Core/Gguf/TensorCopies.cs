using System.Runtime.InteropServices;

namespace BitNet.Inference.Gguf;

/// <summary>
/// Private copies of some tensors' data, in one block of native memory aligned to a transparent huge
/// page: what <see cref="GgufFile.CopyTensorsToMemory"/> reads out of the file. Each tensor starts on
/// a 64-byte boundary (the file only promises its alignment, 32 by default; 64 is a cache line).
/// Freed by <see cref="Dispose"/>.
/// </summary>
internal sealed unsafe class TensorCopies : IDisposable
{
    /// <summary>One transparent huge page: the block is aligned to it and asked to be backed by such pages.</summary>
    private const nuint HugePage = 2 << 20;
    private const long TensorAlignment = 64;
    /// <summary>Bytes per positional read: large enough that the call costs nothing, small enough to share out evenly.</summary>
    internal const long PieceBytes = 8L << 20;

    private byte* _block;
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
        Bytes = size;
        nuint blockSize = ((nuint)Math.Max(size, 1) + HugePage - 1) & ~(HugePage - 1);
        _block = (byte*)NativeMemory.AlignedAlloc(blockSize, HugePage);
        // Before the first write, so the pages are 2 MB from the start: fewer page faults while
        // copying, and one TLB entry per 2 MB while the weights stream through every token.
        Threading.PageWarmup.PreferHugePages((nint)_block, (long)blockSize);
    }

    /// <summary>Bytes laid out, padding between tensors included.</summary>
    public long Bytes { get; }

    public bool TryGetPointer(string tensor, out byte* pointer)
    {
        ObjectDisposedException.ThrowIf(_block is null, this);
        bool found = _offsets.TryGetValue(tensor, out long offset);
        pointer = found ? _block + offset : null;
        return found;
    }

    public void Dispose()
    {
        if (_block is null) return;
        NativeMemory.AlignedFree(_block);
        _block = null;
        GC.SuppressFinalize(this);
    }

    ~TensorCopies() => Dispose();
}
