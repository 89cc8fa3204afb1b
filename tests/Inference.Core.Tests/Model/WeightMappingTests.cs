using BitNet.Inference.Model;
using BitNet.Inference.Tests.Gguf;

namespace BitNet.Inference.Tests.Model;

/// <summary>How a loaded model maps its file: every weight page mapped before the first token, and
/// huge pages asked for, so a file read from disk through the mapping lands in 2 MB folios.</summary>
public class WeightMappingTests
{
    [Fact]
    public void Loading_a_model_asks_for_huge_pages_on_its_file_mapping()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("reads /proc/self/smaps");
        using var temp = new TempFolder();
        string path = temp.File("tiny.gguf");
        DummyModel.Write(path, DummyShape.Tiny, seed: 4);
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1 });
        var mappings = Smaps.MappingFlags(path).ToList();
        Assert.NotEmpty(mappings);
        Assert.All(mappings, flags => Assert.Contains("hg", flags));
    }

    [Fact]
    public void Loading_a_model_maps_every_weight_page_before_the_first_token()
    {
        if (!OperatingSystem.IsLinux()) Assert.Skip("reads /proc/self/smaps");
        using var temp = new TempFolder();
        string path = temp.File("tiny.gguf");
        DummyModel.Write(path, DummyShape.Tiny, seed: 5);
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 2 });
        Assert.True(Smaps.MappedResidentBytes(path) >= new FileInfo(path).Length * 9 / 10,
            $"{Smaps.MappedResidentBytes(path)} of {new FileInfo(path).Length} bytes mapped after loading");
    }
}
