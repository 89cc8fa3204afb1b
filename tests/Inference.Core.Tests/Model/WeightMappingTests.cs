using System.Runtime.InteropServices;
using BitNet.Inference.Dummy;
using BitNet.Inference.Gguf;
using BitNet.Inference.Kernels;
using BitNet.Inference.Memory;
using BitNet.Inference.Model;
using BitNet.Inference.Tests.Gguf;
using BitNet.Inference.Threading;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Model;

/// <summary>
/// Where a loaded model's streamed weights live. Mapped: every weight page mapped before the first
/// token, and huge pages asked for, so a file read from disk through the mapping lands in 2 MB folios.
/// Memory: the ternary matrices and the F16 head are private copies, the file's mapping stays almost
/// unmapped. Move: mapped, then the mapping's pages are replaced in place by private ones. All compute
/// the same logits bit for bit.
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
    public void Weights_in_memory_leave_the_file_mapping_almost_unmapped()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("reads /proc/self/smaps");
        using var temp = new TempFolder();
        string path = temp.File("small.gguf");
        DummyModel.Write(path, DummyShape.Small, seed: 7);   // 62.6 MiB head, 4 layers
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, Storage = WeightStorage.Memory });
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
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, LmHead = head, Storage = WeightStorage.Memory });
        var (start, bytes) = model.File.Mapping;
        bool Mapped(void* p) => (nint)p >= start && (nint)p < start + (nint)bytes;

        foreach (LayerWeights layer in model.Weights.Layers)
            foreach (TernaryMatrix m in layer.TernaryMatrices)
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

    /// <summary>
    /// With the VNNI kernels, which read a group of 4 rows as one stream, private copies are rearranged into
    /// four-row blocks (the same bytes, reordered), while mapped codes keep the file's order; the logits agree.
    /// </summary>
    [Fact]
    public void Weights_in_memory_are_rearranged_into_four_row_blocks_for_the_vnni_kernels()
    {
        if (!KernelSet.Avx512VnniSet.IsSupported) Assert.Skip("the avx512vnni kernels, which read four-row blocks, cannot run here");
        using var temp = new TempFolder();
        string path = temp.File("tiny.gguf");
        DummyModel.Write(path, DummyShape.Tiny, seed: 12);
        using var memory = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, Kernel = "avx512vnni", Storage = WeightStorage.Memory });
        using var mapped = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, Kernel = "avx512vnni", Storage = WeightStorage.Mapped });
        var pairs = memory.Weights.Layers.SelectMany(l => l.TernaryMatrices).Zip(mapped.Weights.Layers.SelectMany(l => l.TernaryMatrices));
        foreach (var (copy, file) in pairs)
        {
            Assert.Equal(I2sCodeOrder.FourRowBlocks, copy.CodeOrder);
            Assert.Equal(I2sCodeOrder.Rows, file.CodeOrder);
            byte[] back = copy.AllCodes.ToArray();
            if (copy.Columns > I2sLayout.BlockElements && copy.Rows >= 4)   // one block per row reads the same either way
                Assert.NotEqual(file.AllCodes.ToArray(), back);
            I2sLayout.DeinterleaveFourRowBlocks(back, copy.Rows, copy.Columns, new byte[copy.Columns]);
            Assert.Equal(file.AllCodes.ToArray(), back);
        }
        var a = memory.CreateState(32);
        var b = mapped.CreateState(32);
        int[] prompt = [1, 17, 250, 3, 99];
        Assert.Equal(mapped.Forward(b, prompt).ToArray(), memory.Forward(a, prompt).ToArray());
        for (int token = 5; token < 12; token++)
            Assert.Equal(mapped.Forward(b, [token]).ToArray(), memory.Forward(a, [token]).ToArray());
    }

    [Theory]
    [InlineData(LmHeadMode.F16)]
    [InlineData(LmHeadMode.Q8)]
    public void Moved_weights_end_in_private_pages_at_the_same_addresses_with_the_same_logits(LmHeadMode head)
    {
        if (!MappingMove.IsSupported) Assert.Skip("Linux only");
        using var temp = new TempFolder();
        string path = temp.File("small.gguf");
        DummyModel.Write(path, DummyShape.Small, seed: 10);   // 62.6 MiB head, 4 layers
        using var mapped = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1, LmHead = head, Storage = WeightStorage.Mapped });
        var notes = new List<string>();
        using var moving = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, LmHead = head, Storage = WeightStorage.Move, Log = notes.Add });
        Assert.Equal(WeightStorage.Move, moving.Storage);
        Assert.Equal(0, moving.File.CopiedBytes);   // no separate copies: the mapping itself is moved
        Assert.Contains(notes, n => n.StartsWith("weights: ", StringComparison.Ordinal) && n.Contains("moved into private memory", StringComparison.Ordinal));

        // Nothing moves before the first forward pass but the windows the page cache serves in 4 KB pages
        // (the file's last window, at least); tokens computed while the move runs, and after it, equal the mapped model's.
        Thread.Sleep(50);
        Assert.Equal(moving.WeightBytesMovedAtLoad, moving.MovedWeightBytes);
        Assert.False(moving.WeightMove.IsCompleted);
        var a = mapped.CreateState(32);
        var b = moving.CreateState(32);
        int[] prompt = [1, 17, 250, 3, 99];
        Assert.Equal(mapped.Forward(a, prompt).ToArray(), moving.Forward(b, prompt).ToArray());
        Assert.Equal(mapped.Forward(a, [4]).ToArray(), moving.Forward(b, [4]).ToArray());
        Assert.True(SpinWait.SpinUntil(() => moving.WeightMove.IsCompleted, TimeSpan.FromMinutes(1)));
        for (int token = 5; token < 9; token++)
            Assert.Equal(mapped.Forward(a, [token]).ToArray(), moving.Forward(b, [token]).ToArray());

        var (start, bytes) = moving.File.Mapping;
        bool InMapping(void* p) => (nint)p >= start && (nint)p < start + (nint)bytes;
        long streamed = 0;
        foreach (LayerWeights layer in moving.Weights.Layers)
            foreach (TernaryMatrix m in layer.TernaryMatrices)
            {
                Assert.True(InMapping(m.Codes), $"{m.Name} is not read at its place in the mapping");
                Assert.Equal(0, Smaps.FilePages((nint)m.Codes, (long)m.Rows * m.RowBytes));
                streamed += (long)m.Rows * m.RowBytes;
            }
        long headBytes = 2L * moving.Config.VocabSize * moving.Config.EmbeddingLength;
        if (head == LmHeadMode.F16)
        {
            Assert.Equal(0, Smaps.FilePages((nint)moving.Weights.LmHead, headBytes));
            streamed += headBytes;
        }
        else   // the quantized head's F16 rows are not streamed: not moved, and not mapped back
            Assert.True(Smaps.PresentPages((nint)moving.Weights.LmHead + (nint)(4 << 20), headBytes - (8 << 20)) == 0);
        Assert.True(moving.WeightMove.IsCompletedSuccessfully);
        Assert.InRange(moving.MovedWeightBytes, streamed, streamed + 2 * (2 << 20) * (7 * moving.Config.LayerCount + 1));
    }

    /// <summary>
    /// Moved weights start in the file's order and, once every window is private memory, are rearranged into
    /// four-row blocks for the VNNI kernels, matrix by matrix between products: tokens computed before, during
    /// and after equal the mapped model's.
    /// </summary>
    [Fact]
    public void Moved_weights_are_rearranged_into_four_row_blocks_once_moved_for_the_vnni_kernels()
    {
        if (!MappingMove.IsSupported) Assert.Skip("Linux only");
        if (!KernelSet.Avx512VnniSet.IsSupported) Assert.Skip("the avx512vnni kernels, which read four-row blocks, cannot run here");
        using var temp = new TempFolder();
        string path = temp.File("small.gguf");
        DummyModel.Write(path, DummyShape.Small, seed: 13);
        using var mapped = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1, Kernel = "avx512vnni", Storage = WeightStorage.Mapped });
        var notes = new List<string>();
        using var moving = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, Kernel = "avx512vnni", Storage = WeightStorage.Move, Log = notes.Add });
        var matrices = moving.Weights.Layers.SelectMany(l => l.TernaryMatrices).ToList();
        Assert.All(matrices, m => Assert.Equal(I2sCodeOrder.Rows, m.CodeOrder));
        var a = mapped.CreateState(64);
        var b = moving.CreateState(64);
        int[] prompt = [1, 17, 250, 3, 99];
        Assert.Equal(mapped.Forward(a, prompt).ToArray(), moving.Forward(b, prompt).ToArray());
        for (int token = 4; !moving.WeightMove.IsCompleted && token < 60; token++)   // while the move and the rearrangement run
            Assert.Equal(mapped.Forward(a, [token]).ToArray(), moving.Forward(b, [token]).ToArray());
        Assert.True(SpinWait.SpinUntil(() => moving.WeightMove.IsCompleted, TimeSpan.FromMinutes(1)));
        Assert.All(matrices, m => Assert.Equal(I2sCodeOrder.FourRowBlocks, m.CodeOrder));
        Assert.Contains(notes, n => n.Contains($"{matrices.Count} moved ternary matrices rearranged into four-row blocks", StringComparison.Ordinal));
        foreach (var (copy, file) in matrices.Zip(mapped.Weights.Layers.SelectMany(l => l.TernaryMatrices)))
        {
            byte[] back = copy.AllCodes.ToArray();
            I2sLayout.DeinterleaveFourRowBlocks(back, copy.Rows, copy.Columns, new byte[copy.Columns]);
            Assert.Equal(file.AllCodes.ToArray(), back);
        }
        for (int token = 60; token < 64; token++)
            Assert.Equal(mapped.Forward(a, [token]).ToArray(), moving.Forward(b, [token]).ToArray());
    }

    [Fact]
    public void A_keep_warm_touch_starts_the_move_before_any_forward_pass()
    {
        if (!MappingMove.IsSupported) Assert.Skip("Linux only");
        using var temp = new TempFolder();
        string path = temp.File("tiny.gguf");
        DummyModel.Write(path, DummyShape.Tiny, seed: 12);
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1, Storage = WeightStorage.Move });
        Assert.False(model.WeightMove.IsCompleted);
        Assert.True(model.TouchStreamedWeights() > 0);
        Assert.True(SpinWait.SpinUntil(() => model.WeightMove.IsCompleted, TimeSpan.FromMinutes(1)));
        Assert.True(model.MovedWeightBytes > 0);
    }

    [Fact]
    public void Disposing_a_model_while_its_weights_move_stops_the_move_first()
    {
        if (!MappingMove.IsSupported) Assert.Skip("Linux only");
        using var temp = new TempFolder();
        string path = temp.File("small.gguf");
        DummyModel.Write(path, DummyShape.Small, seed: 11);
        for (int i = 0; i < 3; i++)
        {
            var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1, Storage = WeightStorage.Move });
            if (i > 0) model.StartWeightMove();   // the first is disposed before its move starts
            Task move = model.WeightMove;
            model.Dispose();   // would crash the process if the move went on writing into the unmapped range
            Assert.True(move.IsCompleted);
        }
    }
}

/// <summary>
/// WeightStorage.Auto: the mapping when the page cache holds the weights in 2 MB folios it maps whole,
/// private copies when it holds them in 4 KB pages. The page cache is put in each state on purpose:
/// dropped (fsync + POSIX_FADV_DONTNEED), then read back through a MADV_HUGEPAGE mapping (2 MB folios
/// on Linux 6.x with ext4/xfs) or in 4 KB reads with readahead off (one 4 KB folio a read).
/// </summary>
public unsafe partial class AutoWeightStorageTests
{
    [LibraryImport("libc.so.6", EntryPoint = "posix_fadvise")]
    private static partial int Fadvise(int fd, long offset, long length, int advice);
    private const int FadvRandom = 1, FadvDontNeed = 4;

    /// <summary>
    /// Drop the file from the page cache, then read it back in 2 MB folios (through a mapping advised
    /// MADV_HUGEPAGE before its first touch, whose faults read 2 MB folios) or in 4 KB pages (4 KB
    /// reads, readahead off). Returns how many of the file's bytes are then cached in 2 MB folios.
    /// </summary>
    private static long Recache(string path, bool hugeFolios)
    {
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.ReadWrite, 1))
        {
            int fd = (int)stream.SafeFileHandle.DangerousGetHandle();
            Assert.Equal(0, Fadvise(fd, 0, 0, FadvDontNeed));
            if (!hugeFolios)
            {
                Assert.Equal(0, Fadvise(fd, 0, 0, FadvRandom));
                var buffer = new byte[4096];
                while (stream.Read(buffer, 0, buffer.Length) > 0) { }
            }
        }
        return Smaps.HugeFolioBytes(path);   // for hugeFolios, this mapping is what reads the file back in
    }

    /// <summary>File offset of the first 2 MB-aligned window wholly inside the head (the file's first tensor).</summary>
    private static long FirstWholeHeadWindow(string path)
    {
        using var file = GgufFile.Open(path);
        long headOffset = file.DataOffset + file.GetTensor(GgufTensorNames.TokenEmbedding).Offset;
        return (headOffset + HugeFolioProbe.HugePage - 1) & ~(HugeFolioProbe.HugePage - 1);
    }

    /// <summary>Put one cached 2 MB window of the file into 4 KB pages: drop it, read it back 4 KB at a time (readahead off).</summary>
    private static void SplitIntoSmallPages(string path, long window)
    {
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1);
        int fd = (int)stream.SafeFileHandle.DangerousGetHandle();
        Assert.Equal(0, Fadvise(fd, window, HugeFolioProbe.HugePage, FadvDontNeed));
        Assert.Equal(0, Fadvise(fd, 0, 0, FadvRandom));
        var buffer = new byte[4096];
        for (long at = window; at < window + HugeFolioProbe.HugePage; at += buffer.Length)
            RandomAccess.Read(stream.SafeFileHandle, buffer, at);
    }

    private static string WrittenAndSynced(TempFolder temp, DummyShape shape)
    {
        string path = temp.File(shape.Name + ".gguf");
        DummyModel.Write(path, shape, seed: 12);
        using (var handle = File.OpenHandle(path, FileMode.Open, FileAccess.ReadWrite))
            RandomAccess.FlushToDisk(handle);   // written pages are dirty until synced, and dirty pages are not dropped
        return path;
    }

    [MachineDependent(TestCategories.NeedsPageCacheFolios)]
    [Fact]
    public void Auto_starts_on_the_mapping_and_moves_it_when_the_page_cache_holds_2_MB_folios()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("Linux page cache");
        using var temp = new TempFolder();
        string path = WrittenAndSynced(temp, DummyShape.Small);   // its 62.6 MiB head is the streamed tensor with 2 MB windows
        long grown = Recache(path, hugeFolios: true);
        if (grown < new FileInfo(path).Length / 2)
            Assert.Skip($"this kernel or filesystem does not cache files in 2 MB folios (grew {grown} bytes)");
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2 });
        Assert.Equal(WeightStorage.Move, model.Storage);
        Assert.Equal(0, model.File.CopiedBytes);
        model.StartWeightMove();
        Assert.True(SpinWait.SpinUntil(() => model.WeightMove.IsCompleted, TimeSpan.FromMinutes(1)));
        Assert.True(model.MovedWeightBytes >= 2L * DummyShape.Small.Vocab * DummyShape.Small.Embedding);
    }

    [MachineDependent(TestCategories.NeedsPageCacheFolios)]
    [Fact]
    public void Auto_copies_a_file_the_page_cache_holds_in_4_KB_pages()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("Linux page cache");
        using var temp = new TempFolder();
        string path = WrittenAndSynced(temp, DummyShape.Small);
        Assert.Equal(0, Recache(path, hugeFolios: false));   // no 2 MB folio
        var notes = new List<string>();
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, Log = notes.Add });
        Assert.Equal(WeightStorage.Memory, model.Storage);
        Assert.True(model.File.CopiedBytes > 2L * DummyShape.Small.Vocab * DummyShape.Small.Embedding);
        Assert.Contains(notes, n => n.StartsWith("weights: copied to memory", StringComparison.Ordinal));
        // The probe's window was unmapped again: nothing of the data section stays mapped.
        var (start, bytes) = model.File.Mapping;
        long dataStart = model.File.DataOffset + (2 << 20);
        Assert.Equal(0, Smaps.PresentPages(start + (nint)dataStart, bytes - dataStart));
    }

    [MachineDependent(TestCategories.NeedsPageCacheFolios)]
    [Fact]
    public void The_hosts_prefetch_brings_a_file_in_as_2_MB_folios_that_auto_starts_on()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("Linux page cache");
        using var temp = new TempFolder();
        string path = WrittenAndSynced(temp, DummyShape.Small);
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read))
            Assert.Equal(0, Fadvise((int)stream.SafeFileHandle.DangerousGetHandle(), 0, 0, FadvDontNeed));
        BitNet.Inference.Memory.FilePrefetch.Run(path);
        Assert.Equal(0, Smaps.MappedResidentBytes(path));   // read, and unmapped again
        long grown = Smaps.HugeFolioBytes(path);
        if (grown < new FileInfo(path).Length / 2)
            Assert.Skip($"this kernel or filesystem does not cache files in 2 MB folios ({grown} bytes of them)");
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2 });
        Assert.Equal(WeightStorage.Move, model.Storage);
    }

    [MachineDependent(TestCategories.NeedsPageCacheFolios)]
    [Fact]
    public void Auto_moves_a_file_whose_start_came_in_smaller_folios_taking_that_start_at_load()
    {
        // Plain large reads: readahead starts with small folios and grows them, so the head (the
        // file's first tensor) begins in pieces smaller than 2 MB that the mapping cannot map whole.
        // Where the kernel can point those pieces out (PAGEMAP_SCAN), they are moved at load and the
        // rest starts on the mapping; elsewhere the whole file is copied.
        if (!OperatingSystem.IsLinux()) Assert.Skip("Linux page cache");
        using var temp = new TempFolder();
        string path = WrittenAndSynced(temp, DummyShape.Small);
        using (var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, 1))
        {
            Assert.Equal(0, Fadvise((int)stream.SafeFileHandle.DangerousGetHandle(), 0, 0, FadvDontNeed));
            var buffer = new byte[8 << 20];
            while (stream.Read(buffer, 0, buffer.Length) > 0) { }
        }
        var notes = new List<string>();
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, Log = notes.Add });
        // The state this test is about: the head's first whole window is not one 2 MB folio.
        using var check = GgufFile.Open(path);
        long headOffset = check.DataOffset + check.GetTensor(GgufTensorNames.TokenEmbedding).Offset;
        long firstWindow = (headOffset + HugeFolioProbe.HugePage - 1) & ~(HugeFolioProbe.HugePage - 1);
        var (checkStart, checkBytes) = check.Mapping;
        PageWarmup.PreferHugePages(checkStart, (checkBytes + 4095) / 4096 * 4096);
        long pmdBefore = HugeFolioProbe.PmdMappedBytes(checkStart + (nint)firstWindow) ?? 0;
        PageWarmup.PopulateOne(checkStart + (nint)firstWindow, HugeFolioProbe.HugePage);
        bool firstWindowWhole = (HugeFolioProbe.PmdMappedBytes(checkStart + (nint)firstWindow) ?? 0) - pmdBefore >= HugeFolioProbe.HugePage;
        if (firstWindowWhole) Assert.Skip("this kernel's readahead brought the file's start in 2 MB folios too");
        if (!PageTableScan.IsAvailable || model.Storage == WeightStorage.Memory)
        {
            // No scan, or fewer than half the sampled windows whole: copied.
            Assert.True(!PageTableScan.IsAvailable || notes.Exists(n => n.StartsWith("weights: copied", StringComparison.Ordinal)), string.Join(" | ", notes));
            Assert.Equal(WeightStorage.Memory, model.Storage);
            return;
        }
        Assert.Equal(WeightStorage.Move, model.Storage);
        Assert.Contains(notes, n => n.Contains("the rest move at load", StringComparison.Ordinal));
        Assert.Equal(0, model.File.CopiedBytes);
        Assert.True(model.WeightBytesMovedAtLoad >= HugeFolioProbe.HugePage, $"{model.WeightBytesMovedAtLoad} bytes moved at load");
        Assert.True(model.WeightBytesMovedAtLoad < new FileInfo(path).Length, $"{model.WeightBytesMovedAtLoad} bytes moved at load");
        var (start, _) = model.File.Mapping;
        if (Smaps.ReportsPageKinds)
            Assert.Equal(0, Smaps.FilePages(start + (nint)firstWindow, HugeFolioProbe.HugePage));   // that window is private already
    }

    [MachineDependent(TestCategories.NeedsPageCacheFolios)]
    [Fact]
    public void Moved_weights_whose_windows_the_page_cache_split_are_moved_at_load_and_the_rest_after_the_first_pass()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("Linux page cache");
        using var temp = new TempFolder();
        string path = WrittenAndSynced(temp, DummyShape.Small);
        long grown = Recache(path, hugeFolios: true);
        if (grown < new FileInfo(path).Length / 2)
            Assert.Skip($"this kernel or filesystem does not cache files in 2 MB folios (grew {grown} bytes)");
        if (!PageTableScan.IsAvailable) Assert.Skip("this kernel has no PAGEMAP_SCAN (Linux 6.7+)");
        // Split one window of the head (the largest streamed tensor) into 4 KB pages.
        long window = FirstWholeHeadWindow(path) + 4 * MappingMove.Window;
        SplitIntoSmallPages(path, window);

        var notes = new List<string>();
        using var moving = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, Storage = WeightStorage.Move, Log = notes.Add });
        var (start, _) = moving.File.Mapping;
        nint split = start + (nint)window;
        Assert.InRange(moving.WeightBytesMovedAtLoad, MappingMove.Window, 4 * MappingMove.Window);   // that window, and at most the file's ends
        Assert.Contains(notes, n => n.Contains("in 4 KB pages moved into private memory at load", StringComparison.Ordinal));
        if (Smaps.ReportsPageKinds)
        {
            Assert.Equal(0, Smaps.FilePages(split, MappingMove.Window));                                     // private now
            Assert.Equal(MappingMove.Window / 4096, Smaps.FilePages(split + (nint)MappingMove.Window, MappingMove.Window));   // its neighbour waits
        }
        Assert.False(moving.WeightMove.IsCompleted);
        using var mapped = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1, Storage = WeightStorage.Mapped });
        var a = mapped.CreateState(16);
        var b = moving.CreateState(16);
        Assert.Equal(mapped.Forward(a, [1, 17, 250]).ToArray(), moving.Forward(b, [1, 17, 250]).ToArray());
        Assert.True(SpinWait.SpinUntil(() => moving.WeightMove.IsCompleted, TimeSpan.FromMinutes(1)));
        Assert.Equal(mapped.Forward(a, [5]).ToArray(), moving.Forward(b, [5]).ToArray());
        if (Smaps.ReportsPageKinds)
            Assert.Equal(0, Smaps.FilePages((nint)moving.Weights.LmHead, 2L * moving.Config.VocabSize * moving.Config.EmbeddingLength));
    }

    [MachineDependent(TestCategories.NeedsPageCacheFolios)]
    [Fact]
    public void Auto_moves_when_most_sampled_windows_are_whole_folios_and_takes_the_split_one_at_load()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("Linux page cache");
        if (!PageTableScan.IsAvailable) Assert.Skip("this kernel has no PAGEMAP_SCAN (Linux 6.7+): a split file is copied");
        using var temp = new TempFolder();
        string path = WrittenAndSynced(temp, DummyShape.Small);
        long grown = Recache(path, hugeFolios: true);
        if (grown < new FileInfo(path).Length / 2)
            Assert.Skip($"this kernel or filesystem does not cache files in 2 MB folios (grew {grown} bytes)");
        // The probe samples the head's first, middle and last whole window (the only streamed tensor of
        // this shape that has any); split the first into 4 KB pages: 2 of 3 whole.
        long firstWindow = FirstWholeHeadWindow(path);
        SplitIntoSmallPages(path, firstWindow);
        var notes = new List<string>();
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, Log = notes.Add });
        Assert.Equal(WeightStorage.Move, model.Storage);
        Assert.Contains(notes, n => n.Contains("2 of 3 sampled 2 MB windows are whole folios", StringComparison.Ordinal));
        Assert.Equal(0, model.File.CopiedBytes);
        Assert.InRange(model.WeightBytesMovedAtLoad, HugeFolioProbe.HugePage, 4 * HugeFolioProbe.HugePage);   // it, and at most the file's ends
        if (Smaps.ReportsPageKinds)
            Assert.Equal(0, Smaps.FilePages(model.File.Mapping.Start + (nint)firstWindow, HugeFolioProbe.HugePage));
    }

    [Fact]
    public void Auto_copies_when_no_streamed_tensor_holds_a_whole_2_MB_window()
    {
        using var temp = new TempFolder();
        string path = temp.File("tiny.gguf");
        DummyModel.Write(path, DummyShape.Tiny, seed: 13);   // every tensor under 2 MB
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1 });
        Assert.Equal(WeightStorage.Memory, model.Storage);
    }

    [Fact]
    public void Smaps_parsing_finds_the_mapping_that_holds_an_address()
    {
        string[] smaps =
        [
            "7f0000000000-7f0000200000 r--s 00000000 fe:00 11 /tmp/a.gguf",
            "Size:               2048 kB",
            "FilePmdMapped:      2048 kB",
            "7f0000400000-7f0000c00000 r--s 00000000 fe:00 12 /tmp/b.gguf",
            "Rss:                6144 kB",
            "FilePmdMapped:      4096 kB",
            "VmFlags: rd mr me ms hg",
            "7f0001000000-7f0001001000 rw-p 00000000 00:00 0",
            "Rss:                   4 kB",
        ];
        Assert.Equal(2048L * 1024, HugeFolioProbe.PmdMappedBytes(smaps, unchecked((nint)0x7f0000100000)));
        Assert.Equal(4096L * 1024, HugeFolioProbe.PmdMappedBytes(smaps, unchecked((nint)0x7f0000bfffff)));
        Assert.Null(HugeFolioProbe.PmdMappedBytes(smaps, unchecked((nint)0x7f0000300000)));   // between mappings
        Assert.Null(HugeFolioProbe.PmdMappedBytes(smaps, unchecked((nint)0x7f0001000000)));   // no such field
    }
}
