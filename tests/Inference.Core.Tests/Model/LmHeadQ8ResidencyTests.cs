using BitNet.Inference.Model;
using BitNet.Inference.Tests.Gguf;

namespace BitNet.Inference.Tests.Model;

/// <summary>
/// With the int8 head the F16 head of a memory-mapped file is only read once, to quantize it, so its
/// pages must leave the process's resident set (they stay in the page cache): otherwise both copies
/// count against a serverless function's memory.
/// </summary>
public class LmHeadQ8ResidencyTests
{
    [Fact]
    public void Loading_with_the_q8_head_leaves_the_f16_head_pages_unmapped()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("reads /proc/self/smaps");
        using var temp = new TempFolder();
        string path = temp.File("small.gguf");
        DummyModel.Write(path, DummyShape.Small, seed: 3);   // 128,256 × 256 F16 head: 62.6 MiB
        long headBytes = 2L * DummyShape.Small.Vocab * DummyShape.Small.Embedding;

        using (var f16 = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2 }))
            Assert.True(Smaps.MappedResidentBytes(path) >= headBytes, "the F16 model keeps its head mapped (the check can see it)");
        using var q8 = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, LmHead = LmHeadMode.Q8 });
        long resident = Smaps.MappedResidentBytes(path);
        Assert.True(resident < headBytes / 8, $"{resident} bytes of the file still resident after quantizing a {headBytes}-byte head");
    }
}
