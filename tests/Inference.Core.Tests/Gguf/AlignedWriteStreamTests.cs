using BitNet.Inference.Dummy;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Gguf;

/// <summary>AlignedWriteStream: any pattern of writes reaches the file as whole 2 MB writes at 2 MB offsets, bytes intact.</summary>
public sealed class AlignedWriteStreamTests : IDisposable
{
    private const int Chunk = AlignedWriteStream.ChunkBytes;
    private readonly TempFolder _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>
    /// Records the (position, length) of every write that reaches the file. A derived FileStream's
    /// write overloads call one another, so only the outermost call of each write is recorded.
    /// </summary>
    private sealed class RecordingFileStream(string path, FileMode mode) : FileStream(path, mode, FileAccess.Write, FileShare.None, 1)
    {
        private int _depth;
        public List<(long Position, int Count)> Writes { get; } = [];

        private void Record(int count)
        {
            if (_depth == 0) Writes.Add((Position, count));
        }

        public override void Write(byte[] buffer, int offset, int count)
        {
            Record(count);
            _depth++;
            try { base.Write(buffer, offset, count); } finally { _depth--; }
        }

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            Record(buffer.Length);
            _depth++;
            try { base.Write(buffer); } finally { _depth--; }
        }

        public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
        {
            Record(buffer.Length);
            _depth++;
            try { await base.WriteAsync(buffer, cancellationToken); } finally { _depth--; }
        }
    }

    private static byte[] Pattern(int length, int seed)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    [Theory]
    [InlineData(new[] { 1, 7, 4096, 100_000 }, false)]
    [InlineData(new[] { 5 * Chunk + 3, 10, Chunk }, false)]
    [InlineData(new[] { Chunk - 1, 1, 1, Chunk * 2 }, true)]
    public async Task Writes_reach_the_file_as_whole_chunks_at_chunk_offsets(int[] pieces, bool useAsync)
    {
        string path = _temp.File("out.bin");
        var expected = new List<byte>();
        var recorder = new RecordingFileStream(path, FileMode.Create);
        await using (var stream = new AlignedWriteStream(recorder))
        {
            int seed = 0;
            for (int repeat = 0; repeat < 3; repeat++)
                foreach (int length in pieces)
                {
                    byte[] data = Pattern(length, seed++);
                    expected.AddRange(data);
                    if (useAsync) await stream.WriteAsync(data, TestContext.Current.CancellationToken);
                    else stream.Write(data);
                }
        }
        Assert.Equal(expected.ToArray(), File.ReadAllBytes(path));
        var writes = recorder.Writes;
        Assert.All(writes, w => Assert.Equal(0, w.Position % Chunk));
        Assert.True(writes.SkipLast(1).All(w => w.Count == Chunk), string.Join(" ", writes));   // whole chunks but the last
        Assert.Equal(expected.Count, writes.Sum(w => (long)w.Count));
    }

    [Fact]
    public void Appending_from_an_unaligned_end_first_fills_up_to_the_next_boundary()
    {
        string path = _temp.File("append.bin");
        byte[] head = Pattern(Chunk / 2 + 5, 1), tail = Pattern(3 * Chunk, 2);
        File.WriteAllBytes(path, head);
        var recorder = new RecordingFileStream(path, FileMode.Append);
        using (var stream = new AlignedWriteStream(recorder))
            stream.Write(tail);
        Assert.Equal([.. head, .. tail], File.ReadAllBytes(path));
        Assert.Equal((long)head.Length, recorder.Writes[0].Position);
        Assert.Equal(Chunk - head.Length, recorder.Writes[0].Count);
        Assert.All(recorder.Writes.Skip(1), w => Assert.Equal(0, w.Position % Chunk));
    }

    [Fact]
    public void Flush_writes_a_partial_chunk_and_later_writes_stay_aligned()
    {
        string path = _temp.File("flush.bin");
        var recorder = new RecordingFileStream(path, FileMode.Create);
        using (var stream = new AlignedWriteStream(recorder))
        {
            stream.Write(Pattern(1000, 3));
            stream.Flush();
            stream.Write(Pattern(3 * Chunk, 4));
        }
        Assert.Equal((0L, 1000), recorder.Writes[0]);
        Assert.Equal((1000L, Chunk - 1000), recorder.Writes[1]);
        Assert.All(recorder.Writes.Skip(2), w => Assert.Equal(0, w.Position % Chunk));
        Assert.Equal(1000 + 3L * Chunk, new FileInfo(path).Length);
    }

    [MachineDependent(TestCategories.NeedsPageCacheFolios)]
    [Fact]
    public void A_model_written_by_GgufWriter_is_cached_in_2_MB_folios_that_auto_starts_on()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("Linux page cache");
        string path = _temp.File("small.gguf");
        DummyModel.Write(path, DummyShape.Small, seed: 14);
        long huge = Model.Smaps.HugeFolioBytes(path);
        if (huge < new FileInfo(path).Length / 2)
            Assert.Skip($"this kernel or filesystem does not cache written files in 2 MB folios ({huge} bytes of them)");
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2 });
        Assert.Equal(WeightStorage.Move, model.Storage);   // mapped now, moved into memory after the first token
    }
}
