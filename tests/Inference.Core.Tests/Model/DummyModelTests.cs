using BitNet.Inference.Dummy;
using BitNet.Inference.Gguf;
using BitNet.Inference.Kernels;
using BitNet.Inference.Model;
using BitNet.Inference.Tests.Gguf;
using BitNet.Tests.Shared;
using Names = BitNet.Inference.Model.GgufTensorNames;

namespace BitNet.Inference.Tests.Model;

public class DummyModelTests
{
    /// <summary>The metadata keys of the 2B-4T dummy plan, in file order.</summary>
    private static readonly string[] MetadataKeysInOrder =
    [
        "general.architecture", "general.name", "bitnet-b1.58.vocab_size", "bitnet-b1.58.context_length",
        "bitnet-b1.58.embedding_length", "bitnet-b1.58.block_count", "bitnet-b1.58.feed_forward_length",
        "bitnet-b1.58.rope.dimension_count", "bitnet-b1.58.attention.head_count", "bitnet-b1.58.attention.head_count_kv",
        "tokenizer.ggml.add_bos_token", "bitnet-b1.58.attention.layer_norm_rms_epsilon", "bitnet-b1.58.rope.freq_base",
        "general.file_type", "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.scores",
        "tokenizer.ggml.token_type", "tokenizer.ggml.merges", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
        "tokenizer.ggml.padding_token_id", "general.quantization_version",
    ];

    [Fact]
    public void Tiny_dummy_round_trips_through_the_reader_and_runs()
    {
        using var file = GgufFile.Open(TinyModels.Tiny);
        Assert.Equal("bitnet-b1.58", file.GetString(Names.Architecture));
        Assert.Equal(300, file.GetStringArray(Names.Tokens).Length);
        Assert.Equal(2 * 11 + 2, file.Tensors.Count);
        var q = file.GetTensor(Names.AttentionQ(0));
        ReadOnlySpan<byte> bytes = file.GetTensorBytes(q);
        float scale = I2sLayout.ReadScale(bytes, q.ElementCount);
        Assert.InRange(scale, 0.01f, 0.05f);
        Assert.Equal(scale, (float)(Half)scale);
        var counts = new int[4];
        for (long e = 0; e < q.ElementCount; e++) counts[I2sLayout.Code(bytes, e)]++;
        Assert.Equal(0, counts[3]);
        foreach (int c in counts[..3]) Assert.InRange(c, q.ElementCount / 3 - 400, q.ElementCount / 3 + 400); // uniform ternary

        using var model = BitNetModel.Load(TinyModels.Tiny);
        var state = model.CreateState(0);
        Assert.Equal(64, state.ContextLength);
        ReadOnlySpan<float> logits = model.Forward(state, [297, 5, 200]);
        Assert.Equal(300, logits.Length);
        foreach (float v in logits) Assert.True(float.IsFinite(v));
    }

    [Fact]
    public void Same_seed_gives_the_same_file_and_another_seed_does_not()
    {
        using var temp = new TempFolder();
        DummyModel.Write(temp.File("a.gguf"), DummyShape.Tiny, 7);
        DummyModel.Write(temp.File("b.gguf"), DummyShape.Tiny, 8);
        Assert.Equal(File.ReadAllBytes(TinyModels.Tiny), File.ReadAllBytes(temp.File("a.gguf")));
        Assert.NotEqual(File.ReadAllBytes(temp.File("a.gguf")), File.ReadAllBytes(temp.File("b.gguf")));
    }

    [Fact]
    public void Plan_for_2b4t_has_the_published_names_shapes_types_and_sizes()
    {
        var plan = DummyModel.Plan(DummyShape.Bitnet2B4T, seed: 1);
        var tensors = plan.Tensors;
        Assert.Equal(332, tensors.Count);
        Assert.Equal(121, tensors.Count(t => t.Type == GgmlType.F32));
        Assert.Equal(210, tensors.Count(t => t.Type == GgmlType.I2_S));
        Assert.Equal(1, tensors.Count(t => t.Type == GgmlType.F16));
        Assert.Equal(1_179_449_920L, tensors.Sum(t => t.ByteSize));
        var byName = tensors.ToDictionary(t => t.Name);
        void Expect(string name, GgmlType type, long[] shape, long bytes)
        {
            Assert.True(byName.TryGetValue(name, out var t), name);
            Assert.Equal(type, t!.Type);
            Assert.Equal(shape, t.Shape);
            Assert.Equal(bytes, t.ByteSize);
        }
        Expect("token_embd.weight", GgmlType.F16, [2560, 128256], 656_670_720);
        Expect("output_norm.weight", GgmlType.F32, [2560], 10_240);
        for (int l = 0; l < 30; l++)
        {
            Expect($"blk.{l}.attn_norm.weight", GgmlType.F32, [2560], 10_240);
            Expect($"blk.{l}.attn_q.weight", GgmlType.I2_S, [2560, 2560], 1_638_432);
            Expect($"blk.{l}.attn_k.weight", GgmlType.I2_S, [2560, 640], 409_632);
            Expect($"blk.{l}.attn_v.weight", GgmlType.I2_S, [2560, 640], 409_632);
            Expect($"blk.{l}.attn_sub_norm.weight", GgmlType.F32, [2560], 10_240);
            Expect($"blk.{l}.attn_output.weight", GgmlType.I2_S, [2560, 2560], 1_638_432);
            Expect($"blk.{l}.ffn_norm.weight", GgmlType.F32, [2560], 10_240);
            Expect($"blk.{l}.ffn_gate.weight", GgmlType.I2_S, [2560, 6912], 4_423_712);
            Expect($"blk.{l}.ffn_up.weight", GgmlType.I2_S, [2560, 6912], 4_423_712);
            Expect($"blk.{l}.ffn_sub_norm.weight", GgmlType.F32, [6912], 27_648);
            Expect($"blk.{l}.ffn_down.weight", GgmlType.I2_S, [6912, 2560], 4_423_712);
        }
        Assert.False(byName.ContainsKey("output.weight")); // tied LM head

        string[] keys = plan.Metadata.Select(kv => kv.Key).ToArray();
        Assert.Equal(MetadataKeysInOrder, keys);
        var meta = plan.Metadata.ToDictionary(kv => kv.Key, kv => kv.Value);
        Assert.Equal(128256u, meta["bitnet-b1.58.vocab_size"].Value);
        Assert.Equal(40u, meta["general.file_type"].Value);
        Assert.Equal(128000u, meta["tokenizer.ggml.bos_token_id"].Value);
        Assert.Equal("<|eot_id|>", ((string[])meta["tokenizer.ggml.tokens"].Value)[128009]);
    }

    [Fact]
    public void Vocab_from_copies_the_tokenizer_keys_of_another_gguf()
    {
        using var source = GgufFile.Open(SharedData.OracleModelPath);
        var plan = DummyModel.Plan(DummyShape.Tiny with { Vocab = 128256 }, seed: 3, source);
        var meta = plan.Metadata.ToDictionary(kv => kv.Key, kv => kv.Value);
        foreach (var (key, value) in source.MetadataInOrder.Where(kv => kv.Key.StartsWith("tokenizer.")))
            Assert.Same(value, meta[key]);
        Assert.Equal(new long[] { 128, 128256 }, plan.Tensors[0].Shape);
    }
}
