using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Inference.Tests.Gguf;

namespace BitNet.Inference.Tests.Model;

/// <summary>
/// Where a loaded model's streamed weights live. Mapped: every weight page mapped before the first
/// token, and huge pages asked for, so a file read from disk through the mapping lands in 2 MB folios.
/// Memory (the default): the ternary matrices and the F16 head are private copies, the file's mapping
/// stays almost unmapped, and the model computes the same logits bit for bit.
/// </summary>
public unsafe class WeightMappingTests
{
    [Fact]
    public void Loading_a_model_asks_for_huge_pages_on_its_file_mapping()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("reads /proc/self/smaps");
        using var temp = new TempFolder();
        string path = temp.File("tiny.gguf");
        DummyModel.Write(path, DummyShape.Tiny, seed: 4);
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1, Storage = WeightStorage.Mapped });
        var mappings = Smaps.MappingFlags(path).ToList();
        Assert.NotEmpty(mappings);
        Assert.All(mappings, flags => Assert.Contains("hg", flags));
    }

    [Fact]
    public void Loading_mapped_weights_maps_every_weight_page_before_the_first_token()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("reads /proc/self/smaps");
        using var temp = new TempFolder();
        string path = temp.File("tiny.gguf");
        DummyModel.Write(path, DummyShape.Tiny, seed: 5);
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, Storage = WeightStorage.Mapped });
        Assert.True(Smaps.MappedResidentBytes(path) >= new FileInfo(path).Length * 9 / 10,
            $"{Smaps.MappedResidentBytes(path)} of {new FileInfo(path).Length} bytes mapped after loading");
        Assert.Equal(0, model.File.CopiedBytes);
    }

    [Fact]
    public void Weights_in_memory_are_the_default_and_leave_the_file_mapping_almost_unmapped()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("reads /proc/self/smaps");
        using var temp = new TempFolder();
        string path = temp.File("small.gguf");
        DummyModel.Write(path, DummyShape.Small, seed: 7);   // 62.6 MiB head, 4 layers
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2 });
        Assert.Equal(WeightStorage.Memory, model.Storage);
        var state = model.CreateState(64);
        model.Forward(state, [1, 2, 3]);
        // Only the header (metadata, the vocabulary) is read through the mapping; norms are read with
        // pread, so they do not map the pages (or 2 MB folios) around them. Pages just past the header
        // may come in with its last fault (fault-around, or a large folio mapped whole).
        var (start, bytes) = model.File.Mapping;
        long slack = 2 << 20;
        long dataStart = model.File.DataOffset + slack;
        long present = Smaps.PresentPages(start + (nint)dataStart, bytes - dataStart);
        Assert.True(present == 0, $"{present} pages of tensor data mapped beyond the header");
        Assert.True(Smaps.MappedResidentBytes(path) <= model.File.DataOffset + slack + (1 << 20));
    }

    [Theory]
    [InlineData(LmHeadMode.F16)]
    [InlineData(LmHeadMode.Q8)]
    [InlineData(LmHeadMode.Screened)]
    public void Weights_in_memory_are_private_copies_of_what_each_token_streams(LmHeadMode head)
    {
        using var temp = new TempFolder();
        string path = temp.File("tiny.gguf");
        DummyModel.Write(path, DummyShape.Tiny, seed: 8);
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, LmHead = head });
        var (start, bytes) = model.File.Mapping;
        bool Mapped(void* p) => (nint)p >= start && (nint)p < start + (nint)bytes;

        foreach (LayerWeights layer in model.Weights.Layers)
            foreach (TernaryMatrix m in new[] { layer.Query, layer.Key, layer.Value, layer.Output, layer.Gate, layer.Up, layer.Down })
                Assert.False(Mapped(m.Codes), $"{m.Name} is read through the mapping");
        // The F16 head is streamed, so copied; a head that is quantized at load is read once through the
        // mapping (then released) and afterwards only by pread: a copy would only add to the resident set.
        Assert.Equal(head != LmHeadMode.F16, Mapped(model.Weights.LmHead));
        long ternaryBytes = model.File.Tensors.Where(t => t.Type == GgmlType.I2_S).Sum(t => t.ByteSize);
        long headBytes = 2L * DummyShape.Tiny.Vocab * DummyShape.Tiny.Embedding;
        Assert.InRange(model.File.CopiedBytes - ternaryBytes - (head == LmHeadMode.F16 ? headBytes : 0), 0, 64 * 15);
    }

    [Theory]
    [InlineData(LmHeadMode.F16)]
    [InlineData(LmHeadMode.Q8)]
    [InlineData(LmHeadMode.Screened)]
    public void Weights_in_memory_and_mapped_weights_give_the_same_logits(LmHeadMode head)
    {
        using var temp = new TempFolder();
        string path = temp.File("tiny.gguf");
        DummyModel.Write(path, DummyShape.Tiny, seed: 9);
        using var memory = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, LmHead = head, Storage = WeightStorage.Memory });
        using var mapped = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1, LmHead = head, Storage = WeightStorage.Mapped });
        var a = memory.CreateState(32);
        var b = mapped.CreateState(32);
        int[] prompt = [1, 17, 250, 3, 99];
        Assert.Equal(mapped.Forward(b, prompt).ToArray(), memory.Forward(a, prompt).ToArray());
        for (int token = 5; token < 12; token++)   // single-token steps take the decode kernels
            Assert.Equal(mapped.Forward(b, [token]).ToArray(), memory.Forward(a, [token]).ToArray());
    }
}
