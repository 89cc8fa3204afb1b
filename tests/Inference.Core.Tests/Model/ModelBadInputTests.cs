using System.Buffers.Binary;
using BitNet.Inference.Dummy;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Inference.Tests.Gguf;
using Names = BitNet.Inference.Model.GgufTensorNames;

namespace BitNet.Inference.Tests.Model;

public class ModelBadInputTests
{
    /// <summary>The tiny dummy model, with metadata and tensors edited on the way out.</summary>
    private static string Build(TempFolder temp, Func<string, GgufValue, GgufValue?>? meta = null,
        Func<GgufWriter.TensorSpec, (GgmlType Type, long[] Shape)?>? tensor = null, DummyShape? shape = null)
    {
        var plan = DummyModel.Plan(shape ?? DummyShape.Tiny, seed: 5);
        var w = new GgufWriter();
        foreach (var (key, value) in plan.Metadata)
            if ((meta is null ? value : meta(key, value)) is { } kept) w.AddMetadata(key, kept);
        foreach (var t in plan.Tensors)
        {
            if (tensor is null) { w.AddTensor(t.Name, t.Type, t.Shape, t.WriteData); continue; }
            var changed = tensor(t);
            if (changed is null) continue; // dropped
            if (changed.Value.Type == t.Type && changed.Value.Shape.SequenceEqual(t.Shape)) { w.AddTensor(t.Name, t.Type, t.Shape, t.WriteData); continue; }
            long bytes = GgmlTypeInfo.TensorBytes(changed.Value.Type, changed.Value.Shape, out _);
            w.AddTensor(t.Name, changed.Value.Type, changed.Value.Shape, new byte[bytes]);
        }
        string path = temp.File("model.gguf");
        w.WriteTo(path);
        return path;
    }

    private static ModelFormatException LoadFails(string path) =>
        Assert.Throws<ModelFormatException>(() => BitNetModel.Load(path).Dispose());

    [Theory]
    [InlineData(WeightStorage.Memory)]
    [InlineData(WeightStorage.Mapped)]
    public void A_model_that_fails_to_load_from_an_open_file_leaves_the_file_to_its_caller(WeightStorage storage)
    {
        using var temp = new TempFolder();
        // A matrix with the wrong shape fails after the weights were copied (memory) or looked at (mapped).
        string path = Build(temp, tensor: t => t.Name == Names.FfnDown(1) ? (t.Type, [t.Shape[0], t.Shape[1] * 2]) : (t.Type, t.Shape));
        using var file = GgufFile.Open(path);
        var error = Assert.Throws<ModelFormatException>(() => BitNetModel.Load(file, new ModelLoadOptions { Threads = 2, Storage = storage }));
        Assert.Contains(Names.FfnDown(1), error.Message);
        Assert.True(file.Mapping.Bytes > 0);

        using var other = new TempFolder();
        using var good = GgufFile.Open(Build(other));
        Assert.Throws<ArgumentOutOfRangeException>(() => BitNetModel.Load(good, new ModelLoadOptions { BatchSize = 0 }));
        Assert.Throws<ArgumentOutOfRangeException>(() => BitNetModel.Load(good, new ModelLoadOptions { BatchSize = ModelLoadOptions.MaxBatchSize + 1 }));
        Assert.True(good.Mapping.Bytes > 0);
    }

    [Fact]
    public void An_engine_whose_model_fails_to_load_unmaps_the_file_only_after_the_tokenizer_is_done_with_it()
    {
        // The oracle model (Llama 3's vocabulary: the tokenizer copies its texts from the mapping for a
        // while) with an architecture the model refuses at once, long before the tokenizer is done.
        using var temp = new TempFolder();
        byte[] bytes = File.ReadAllBytes(BitNet.Tests.Shared.SharedData.OracleModelPath);
        int value = bytes.AsSpan().IndexOf("general.architecture"u8) + "general.architecture".Length + 4 + 8;
        Assert.True(bytes.AsSpan(value).StartsWith("bitnet-b1.58"u8));
        "mamba-b1.58x"u8.CopyTo(bytes.AsSpan(value));
        string path = TinyModels.WriteCopy(temp, bytes);
        // A tokenizer that finds the file closed fails unobserved (or, inside a copy, reads unmapped memory: a crash).
        int closedUnderTheTokenizer = 0;
        EventHandler<UnobservedTaskExceptionEventArgs> unobserved = (_, e) =>
        {
            if (e.Exception.InnerExceptions.Any(x => x is ObjectDisposedException)) Interlocked.Increment(ref closedUnderTheTokenizer);
        };
        TaskScheduler.UnobservedTaskException += unobserved;
        try
        {
            for (int i = 0; i < 20; i++)
            {
                var error = Assert.Throws<ModelFormatException>(() =>
                    BitNet.Inference.Generation.BitNetEngine.Load(new BitNet.Inference.Generation.EngineOptions { ModelPath = path, Threads = 1 }).Dispose());
                Assert.Contains("unsupported architecture 'mamba-b1.58x'", error.Message);
            }
            GC.Collect();
            GC.WaitForPendingFinalizers();
            GC.Collect();
        }
        finally
        {
            TaskScheduler.UnobservedTaskException -= unobserved;
        }
        Assert.Equal(0, closedUnderTheTokenizer);
        if (OperatingSystem.IsLinux())
            Assert.DoesNotContain(path, File.ReadAllText("/proc/self/maps"));
    }

    [Fact]
    public void Wrong_architecture_is_named()
    {
        using var temp = new TempFolder();
        string path = Build(temp, (k, v) => k == Names.Architecture ? GgufValue.From("qwen2") : v);
        var error = LoadFails(path);
        Assert.Contains("unsupported architecture 'qwen2' (supported: bitnet-b1.58, bitnet-25, bitnet, llama)", error.Message);
        Assert.IsAssignableFrom<GgufFormatException>(error);
    }

    [Fact]
    public void Bitnet_25_architecture_loads_with_its_own_keys_and_names_a_missing_one()
    {
        using var temp = new TempFolder();
        var plan = DummyModel.Plan(DummyShape.Tiny, seed: 5);
        var w = new GgufWriter();
        foreach (var (key, value) in plan.Metadata)
            w.AddMetadata(key.Replace("bitnet-b1.58", "bitnet-25"), key == Names.Architecture ? GgufValue.From("bitnet-25") : value);
        foreach (var t in plan.Tensors) w.AddTensor(t.Name, t.Type, t.Shape, t.WriteData);
        w.WriteTo(temp.File("b25.gguf"));
        using (var model = BitNetModel.Load(temp.File("b25.gguf")))
        {
            Assert.Equal("bitnet-25", model.Config.Architecture);
            Assert.Equal(2, model.Config.LayerCount);
        }

        using var temp2 = new TempFolder();
        string path = Build(temp2, (k, v) => k == Names.Architecture ? GgufValue.From("bitnet-25") : v);
        Assert.Contains("metadata key 'bitnet-25.embedding_length' is missing", LoadFails(path).Message);
    }

    [Fact]
    public void Vocabulary_and_embedding_mismatch_is_reported()
    {
        using var temp = new TempFolder();
        string path = Build(temp, (k, v) => k == Names.VocabSize(DummyModel.Architecture) ? GgufValue.From(301u) : v);
        Assert.Contains("the vocabulary has 300 tokens ('tokenizer.ggml.tokens') but the model's vocab_size is 301", LoadFails(path).Message);

        using var temp2 = new TempFolder();
        path = Build(temp2, tensor: t => t.Name == Names.TokenEmbedding ? (GgmlType.F16, [128, 299]) : (t.Type, t.Shape),
            meta: (k, v) => k == Names.Tokens ? null : v);
        Assert.Contains("tensor 'token_embd.weight' has shape [128, 299], expected [128, 300]", LoadFails(path).Message);
    }

    [Fact]
    public void Bad_tensor_shape_is_reported_with_both_shapes()
    {
        using var temp = new TempFolder();
        string path = Build(temp, tensor: t => t.Name == "blk.1.ffn_up.weight" ? (GgmlType.I2_S, [128, 128]) : (t.Type, t.Shape));
        Assert.Contains("tensor 'blk.1.ffn_up.weight' has shape [128, 128], expected [128, 256]", LoadFails(path).Message);
    }

    [Fact]
    public void Missing_tensor_is_named()
    {
        using var temp = new TempFolder();
        string path = Build(temp, tensor: t => t.Name == "blk.0.attn_k.weight" ? null : (t.Type, t.Shape));
        Assert.Contains("tensor 'blk.0.attn_k.weight' (ternary matrix [inputs, outputs]) is missing", LoadFails(path).Message);
    }

    [Fact]
    public void Unsupported_matrix_type_is_named()
    {
        using var temp = new TempFolder();
        string path = Build(temp, tensor: t => t.Name == "blk.0.attn_q.weight" ? (GgmlType.Q8_0, t.Shape) : (t.Type, t.Shape));
        Assert.Contains("tensor 'blk.0.attn_q.weight' has type Q8_0; supported matrix types are I2_S, TQ1_0, TQ2_0 and ternary-valued F32/F16/BF16", LoadFails(path).Message);
    }

    [Fact]
    public void Head_dimension_must_match_the_rope_dimension()
    {
        using var temp = new TempFolder();
        string path = Build(temp, (k, v) => k == Names.RopeDimensionCount(DummyModel.Architecture) ? GgufValue.From(32u) : v);
        Assert.Contains("'bitnet-b1.58.rope.dimension_count' = 32, expected the head dimension 64 (embedding 128 / 2 heads)", LoadFails(path).Message);

        using var temp2 = new TempFolder();
        path = Build(temp2, (k, v) => k == Names.HeadCount(DummyModel.Architecture) ? GgufValue.From(3u) : v);
        Assert.Contains("embedding length 128 is not divisible by the head count 3", LoadFails(path).Message);
    }

    [Fact]
    public void I2s_rows_must_be_a_multiple_of_128()
    {
        using var temp = new TempFolder();
        var shape = DummyShape.Tiny with { Embedding = 192, Heads = 3, KvHeads = 1 };
        var error = LoadFails(Build(temp, shape: shape));
        Assert.Contains("tensor 'blk.0.attn_q.weight' (I2_S) has ne0 = 192, which is not a multiple of 128", error.Message);
    }

    [Fact]
    public void Hyperparameter_of_the_wrong_type_is_named()
    {
        using var temp = new TempFolder();
        string path = Build(temp, (k, v) => k == Names.BlockCount(DummyModel.Architecture) ? GgufValue.From("two") : v);
        Assert.Contains("metadata key 'bitnet-b1.58.block_count' is str, expected an integer", LoadFails(path).Message);
    }

    [Fact]
    public void A_block_count_below_the_files_layers_is_refused_naming_a_tensor_it_would_drop()
    {
        using var temp = new TempFolder();
        Assert.Equal(2, DummyShape.Tiny.Layers);
        string path = Build(temp, (k, v) => k == Names.BlockCount(DummyModel.Architecture) ? GgufValue.From(1u) : v);
        var error = LoadFails(path);
        Assert.Matches(@"tensor 'blk\.1\.[a-z_]+\.weight' belongs to layer 1, but 'bitnet-b1\.58\.block_count' = 1", error.Message);
    }

    [Fact]
    public void An_embedding_of_more_than_2_to_the_31_elements_is_refused_at_load()
    {
        // token_embd [128, 2^24] F16: 2^31 values, one more than a span indexes. The data is a sparse
        // 4 GB tail; the old loader took it and the first forward pass overflowed in the LM head.
        using var temp = new TempFolder();
        string path = Build(temp, (k, v) => k == Names.Tokens || k == Names.VocabSize(DummyModel.Architecture) ? null : v);
        byte[] bytes = File.ReadAllBytes(path);
        int dims = ByteSearch.AfterString(bytes, Names.TokenEmbedding) + 4;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(dims + 8), 1UL << 24);
        long dataOffset;
        using (var original = GgufFile.Open(path)) dataOffset = original.DataOffset;
        long end = (bytes.Length - dataOffset + 31) / 32 * 32;
        BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(dims + 16 + 4), (ulong)end);
        using (var stream = new FileStream(path, FileMode.Create))
        {
            stream.Write(bytes);
            stream.SetLength(dataOffset + end + 128L * (1 << 24) * sizeof(ushort));   // sparse
        }

        var error = LoadFails(path);
        Assert.Contains("the token embedding [bitnet-b1.58.embedding_length = 128, vocab_size = 16777216] would have 2147483648 elements; at most 2147483647 are supported", error.Message);
    }

    [Fact]
    public void Feed_forward_matrices_of_more_than_2_GB_of_codes_are_refused_from_the_metadata()
    {
        using var temp = new TempFolder();
        string arch = DummyModel.Architecture;
        string path = Build(temp, (k, v) =>
            k == Names.EmbeddingLength(arch) ? GgufValue.From(65536u) : k == Names.FeedForwardLength(arch) ? GgufValue.From(1u << 20) : v);
        Assert.Contains(
            "the feed-forward matrices [bitnet-b1.58.embedding_length = 65536, bitnet-b1.58.feed_forward_length = 1048576] would need " +
            "17179869184 bytes of codes each; at most 2147483647 are supported", LoadFails(path).Message);
    }
}
