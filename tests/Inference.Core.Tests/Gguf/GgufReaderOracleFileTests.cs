using System.Diagnostics;
using BitNet.Inference.Gguf;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Gguf;

public class GgufReaderOracleFileTests
{
    [Fact]
    public void Oracle_model_header_metadata_and_tensors_are_read()
    {
        var watch = Stopwatch.StartNew();
        using var file = GgufFile.Open(SharedData.OracleModelPath);
        watch.Stop();

        Assert.Equal(3, file.Version);
        Assert.Equal(32, file.Alignment);
        Assert.Equal(74_100_352, file.FileSize);
        Assert.Equal("bitnet-b1.58", file.GetString("general.architecture"));
        Assert.Equal(256, file.GetInteger("bitnet-b1.58.embedding_length"));
        Assert.Equal(1e-5f, file.GetFloat("bitnet-b1.58.attention.layer_norm_rms_epsilon"));
        Assert.True(file.GetBool("tokenizer.ggml.add_bos_token"));
        Assert.Equal(128000, file.GetInteger("tokenizer.ggml.bos_token_id"));

        string[] tokens = file.GetStringArray("tokenizer.ggml.tokens");
        Assert.Equal(128256, tokens.Length);
        Assert.Equal("!", tokens[0]);
        Assert.Equal("<|begin_of_text|>", tokens[128000]);
        Assert.Equal(128256, file.GetInt32Array("tokenizer.ggml.token_type").Length);
        Assert.Equal("Ġ Ġ", file.GetStringArray("tokenizer.ggml.merges")[0]);
        Assert.Equal("general.architecture", file.MetadataInOrder[0].Key);

        var embedding = file.GetTensor("token_embd.weight");
        Assert.Equal(GgmlType.F16, embedding.Type);
        Assert.Equal(new long[] { 256, 128256 }, embedding.Shape);
        Assert.Equal(256L * 128256 * 2, file.GetTensorBytes(embedding).Length);

        var q = file.GetTensor("blk.0.attn_q.weight");
        Assert.Equal(GgmlType.I2_S, q.Type);
        Assert.Equal(256 * 256 / 4 + 32, q.ByteSize);
        Assert.Equal(4 * 4 + 1, file.Tensors.Count(t => t.Type == GgmlType.F32));
        Assert.Equal(4 * 7, file.Tensors.Count(t => t.Type == GgmlType.I2_S));
        Assert.False(file.TryGetTensor("output.weight", out _));
        Assert.True(watch.ElapsedMilliseconds < 5000, $"opening took {watch.ElapsedMilliseconds} ms");
    }

    [Fact]
    public void Oracle_model_i2s_scales_match_the_generator_record()
    {
        using var file = GgufFile.Open(SharedData.OracleModelPath);
        using var meta = System.Text.Json.JsonDocument.Parse(File.ReadAllText(SharedData.OracleFile("bitnet-small-meta.json")));
        int checkedScales = 0;
        foreach (var entry in meta.RootElement.GetProperty("scales").EnumerateObject())
        {
            var tensor = file.GetTensor(entry.Name);
            float scale = BitNet.Inference.Kernels.I2sLayout.ReadScale(file.GetTensorBytes(tensor), tensor.ElementCount);
            Assert.Equal((float)entry.Value.GetDouble(), scale);
            checkedScales++;
        }
        Assert.Equal(28, checkedScales);
    }

    [Fact]
    public unsafe void ReadAt_copies_the_same_bytes_the_mapping_holds_and_refuses_ranges_past_the_end()
    {
        using var file = GgufFile.Open(SharedData.OracleModelPath);
        var embedding = file.GetTensor("token_embd.weight");
        var (start, bytes) = file.Mapping;
        Assert.Equal(file.FileSize, bytes);
        long offset = file.GetTensorPointer(embedding) - (byte*)start + 2 * 256 * 1000;   // token 1000's row
        var row = new byte[512];
        file.ReadAt(offset, row);
        Assert.Equal(new ReadOnlySpan<byte>((byte*)start + offset, 512).ToArray(), row);
        var all = new byte[file.FileSize];
        Parallel.For(0, 4, i => file.ReadAt(0, all));   // several threads, one lazily opened handle
        Assert.Equal(new ReadOnlySpan<byte>((byte*)start, 1 << 20).ToArray(), all.AsSpan(0, 1 << 20).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => file.ReadAt(file.FileSize - 10, new byte[11]));
        Assert.Throws<ArgumentOutOfRangeException>(() => file.ReadAt(-1, new byte[1]));
    }
}
