using BitNet.Inference.Dummy;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Tests.Gguf;

/// <summary>
/// GgufFile.CopyTensorsToMemory: chosen tensors read (pread) into private memory, after which their
/// views are the copies, byte for byte the file's data; ReadTensor reads a tensor without the mapping.
/// </summary>
public sealed unsafe class GgufTensorCopyTests : IDisposable
{
    private readonly TempFolder _temp = new();
    private readonly string _path;

    public GgufTensorCopyTests()
    {
        _path = _temp.File("tiny.gguf");
        DummyModel.Write(_path, DummyShape.Tiny, seed: 11);
    }

    public void Dispose() => _temp.Dispose();

    private static bool InsideMapping(GgufFile file, byte* pointer)
    {
        var (start, bytes) = file.Mapping;
        return (nint)pointer >= start && (nint)pointer < start + (nint)bytes;
    }

    private static byte[] FileBytes(string path, GgufFile file, GgufTensorInfo tensor)
    {
        using var stream = File.OpenRead(path);
        stream.Position = file.DataOffset + tensor.Offset;
        var bytes = new byte[tensor.ByteSize];
        stream.ReadExactly(bytes);
        return bytes;
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public void Copied_tensors_hold_the_files_bytes_outside_the_mapping(bool parallel)
    {
        using var file = GgufFile.Open(_path);
        var chosen = file.Tensors.Where(t => t.Type == GgmlType.I2_S).ToList();
        Assert.True(chosen.Count >= 14);
        using var pool = new WorkerPool(2);
        Action<int, Action<int, int>>? parallelFor = parallel ? (count, read) => pool.ForPieces(count, new RangeAction(read), piece: 1) : null;
        long laidOut = file.CopyTensorsToMemory(chosen, parallelFor);

        Assert.InRange(laidOut, chosen.Sum(t => t.ByteSize), chosen.Sum(t => t.ByteSize + 64));
        Assert.Equal(laidOut, file.CopiedBytes);
        foreach (GgufTensorInfo tensor in file.Tensors)
        {
            bool copied = chosen.Contains(tensor);
            Assert.Equal(copied, file.IsCopied(tensor));
            byte* pointer = file.GetTensorPointer(tensor);
            Assert.Equal(!copied, InsideMapping(file, pointer));
            if (copied) Assert.Equal(0, (long)pointer % 64);
            Assert.True(FileBytes(_path, file, tensor).AsSpan().SequenceEqual(file.GetTensorBytes(tensor)), tensor.Name);
        }
    }

    [Fact]
    public void A_tensor_larger_than_one_read_is_copied_whole()
    {
        // The Small shape's 128,256 × 256 F16 embedding is 62.6 MiB: eight 8 MiB reads and a tail.
        string path = _temp.File("small.gguf");
        DummyModel.Write(path, DummyShape.Small, seed: 2);
        using var file = GgufFile.Open(path);
        GgufTensorInfo embedding = file.GetTensor(GgufTensorNames.TokenEmbedding);
        Assert.True(embedding.ByteSize > 7 * (8L << 20));
        file.CopyTensorsToMemory([embedding]);
        Assert.True(FileBytes(path, file, embedding).AsSpan().SequenceEqual(file.GetTensorBytes(embedding)));
        Assert.False(InsideMapping(file, file.GetTensorPointer(embedding)));
    }

    [Fact]
    public void Copying_twice_or_a_foreign_or_repeated_tensor_is_refused()
    {
        using var file = GgufFile.Open(_path);
        using var other = GgufFile.Open(_path);
        GgufTensorInfo first = file.Tensors[0];
        var foreign = first with { Offset = first.Offset + 32 };
        Assert.Throws<ArgumentException>(() => file.CopyTensorsToMemory([foreign]));
        Assert.Throws<ArgumentException>(() => file.CopyTensorsToMemory([first, first]));
        Assert.Equal(0, file.CopiedBytes);

        file.CopyTensorsToMemory([first]);
        Assert.Throws<InvalidOperationException>(() => file.CopyTensorsToMemory([file.Tensors[1]]));
        Assert.True(file.IsCopied(first));
        Assert.False(other.IsCopied(other.Tensors[0]));
    }

    [Fact]
    public void ReadTensor_reads_the_files_bytes_from_the_copy_or_the_file()
    {
        using var file = GgufFile.Open(_path);
        GgufTensorInfo norm = file.GetTensor(GgufTensorNames.OutputNorm);
        GgufTensorInfo matrix = file.GetTensor(GgufTensorNames.AttentionQ(0));
        file.CopyTensorsToMemory([matrix]);
        foreach (GgufTensorInfo tensor in new[] { norm, matrix })
        {
            var read = new byte[tensor.ByteSize];
            file.ReadTensor(tensor, read);
            Assert.Equal(FileBytes(_path, file, tensor), read);
        }
        var ex = Assert.Throws<ArgumentException>(() => file.ReadTensor(norm, new byte[norm.ByteSize - 1]));
        Assert.Contains(norm.Name, ex.Message);
    }

    [Fact]
    public void A_disposed_file_refuses_copies_and_reads()
    {
        var file = GgufFile.Open(_path);
        GgufTensorInfo tensor = file.Tensors[0];
        file.CopyTensorsToMemory([tensor]);
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => file.CopyTensorsToMemory([tensor]));
        Assert.Throws<ObjectDisposedException>(() => file.GetTensorPointer(tensor));
        Assert.Throws<ObjectDisposedException>(() => file.ReadTensor(tensor, new byte[tensor.ByteSize]));
    }
}
