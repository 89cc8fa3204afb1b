using BitNet.Inference.Gguf;

namespace BitNet.Inference.Generation;

/// <summary>Reads one byte per 4 KiB page of every tensor so the OS maps the weights in before the first request.</summary>
internal static class WeightToucher
{
    private const int PageSize = 4096;

    public static unsafe long Touch(GgufFile file)
    {
        long touched = 0;
        int sink = 0;
        foreach (var tensor in file.Tensors)
        {
            byte* start = file.GetTensorPointer(tensor);
            long size = (long)tensor.ByteSize;
            for (long offset = 0; offset < size; offset += PageSize)
                sink += Volatile.Read(ref start[offset]);
            if (size > 0) sink += Volatile.Read(ref start[size - 1]);
            touched += size;
        }
        GC.KeepAlive(sink);
        return touched;
    }
}
