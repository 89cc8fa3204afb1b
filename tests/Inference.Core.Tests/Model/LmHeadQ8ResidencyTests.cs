using BitNet.Inference.Dummy;
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
    [Theory]
    [InlineData(WeightStorage.Mapped)]
    [InlineData(WeightStorage.Memory)]
    public void Loading_with_the_q8_head_leaves_the_f16_head_pages_unmapped(WeightStorage storage)
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("reads /proc/self/smaps");
        using var temp = new TempFolder();
        string path = temp.File("small.gguf");
        DummyModel.Write(path, DummyShape.Small, seed: 3);   // 128,256 × 256 F16 head: 62.6 MiB
        long headBytes = 2L * DummyShape.Small.Vocab * DummyShape.Small.Embedding;

        using (var f16 = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, Storage = WeightStorage.Mapped }))
            Assert.True(Smaps.MappedResidentBytes(path) >= headBytes, "the mapped F16 model keeps its head mapped (the check can see it)");
        using var q8 = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, LmHead = LmHeadMode.Q8, Storage = storage });
        long resident = Smaps.MappedResidentBytes(path);
        Assert.True(resident < headBytes / 8, $"{resident} bytes of the file still resident after quantizing a {headBytes}-byte head");
    }

    /// <summary>The tied head is the embedding table too: looking up tokens must not map it back, a
    /// page (or, with the file cached in 2 MB folios, a whole folio) per token.</summary>
    [Fact]
    public void Embedding_lookups_with_the_q8_head_do_not_map_the_table_back()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("reads /proc/self/smaps");
        using var temp = new TempFolder();
        string path = temp.File("small.gguf");
        DummyModel.Write(path, DummyShape.Small, seed: 3);
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2, LmHead = LmHeadMode.Q8 });
        var state = model.CreateState(256);
        long before = Smaps.MappedResidentBytes(path);
        // 200 tokens spread over the whole vocabulary: 200 different pages of the table.
        int[] tokens = [.. Enumerable.Range(0, 200).Select(i => i * (DummyShape.Small.Vocab / 200))];
        ReadOnlySpan<float> logits = model.Forward(state, tokens);
        Assert.True(float.IsFinite(logits[0]));
        long grown = Smaps.MappedResidentBytes(path) - before;
        Assert.True(grown < 200 * 4096 / 4, $"the file's resident bytes grew by {grown} over 200 lookups");
    }

    [Fact]
    public void The_q8_head_model_embeds_tokens_exactly_as_the_f16_one_does()
    {
        using var temp = new TempFolder();
        string path = temp.File("tiny.gguf");
        DummyModel.Write(path, DummyShape.Tiny, seed: 6);
        using var f16 = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1 });
        using var q8 = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1, LmHead = LmHeadMode.Q8 });
        var a = f16.CreateState(16);
        var b = q8.CreateState(16);
        f16.Forward(a, [5, 299, 17]);
        q8.Forward(b, [5, 299, 17]);
        // Everything before the head is the same computation: the residual stream matches bit for bit.
        Assert.Equal(a.Residual.AsSpan(0, 3 * f16.Config.EmbeddingLength).ToArray(), b.Residual.AsSpan(0, 3 * q8.Config.EmbeddingLength).ToArray());
    }
}
