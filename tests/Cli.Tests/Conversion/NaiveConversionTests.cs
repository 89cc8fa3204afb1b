using System.Buffers.Binary;
using System.CommandLine;
using System.Text;
using System.Text.Json;
using BitNet.Cli.Commands;
using BitNet.Cli.Tests.Hub;
using BitNet.Inference.Conversion;
using BitNet.Inference.Gguf;
using BitNet.Inference.Kernels;

namespace BitNet.Cli.Tests.Conversion;

public sealed class NaiveConversionTests : IDisposable
{
    private static readonly string[] TwoTokens = ["a", "b"];
    private static readonly string[] OtherVocabulary = ["x", "y", "z"];
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    /// <summary>One tensor of a generated checkpoint: HF name, row-major shape, dtype, values (already representable in that dtype).</summary>
    private sealed record Tensor(string Name, long[] Shape, string DType, float[] Values);

    private static float[] Random(int count, int seed, float spread = 0.05f)
    {
        var random = new Random(seed);
        var values = new float[count];
        for (int i = 0; i < count; i++)
            values[i] = (float)((random.NextDouble() * 2 - 1) * spread);
        values[0] = 0; // exact zero stays zero
        return values;
    }

    /// <summary>Round values to what the dtype can hold, so expectations are computed on the stored numbers.</summary>
    private static float[] Representable(float[] values, string dtype) => dtype switch
    {
        "F16" => [.. values.Select(v => (float)(Half)v)],
        "BF16" => [.. values.Select(v => BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(v) & unchecked((int)0xFFFF0000)))],
        _ => values,
    };

    private static void WriteSafetensors(string path, IReadOnlyList<Tensor> tensors)
    {
        var header = new Dictionary<string, object>();
        var data = new MemoryStream();
        Span<byte> b = stackalloc byte[4];
        foreach (var t in tensors)
        {
            long begin = data.Length;
            foreach (float v in t.Values)
            {
                switch (t.DType)
                {
                    case "F32": BinaryPrimitives.WriteSingleLittleEndian(b, v); data.Write(b[..4]); break;
                    case "F16": BinaryPrimitives.WriteHalfLittleEndian(b, (Half)v); data.Write(b[..2]); break;
                    case "BF16": BinaryPrimitives.WriteUInt16LittleEndian(b, (ushort)(BitConverter.SingleToUInt32Bits(v) >> 16)); data.Write(b[..2]); break;
                }
            }
            header[t.Name] = new Dictionary<string, object> { ["dtype"] = t.DType, ["shape"] = t.Shape, ["data_offsets"] = new[] { begin, data.Length } };
        }
        header["__metadata__"] = new Dictionary<string, string> { ["format"] = "pt" };
        byte[] json = Encoding.UTF8.GetBytes(JsonSerializer.Serialize(header, TestJson.Default.DictionaryStringObject));
        using var file = File.Create(path);
        Span<byte> length = stackalloc byte[8];
        BinaryPrimitives.WriteUInt64LittleEndian(length, (ulong)json.Length);
        file.Write(length);
        file.Write(json);
        data.Position = 0;
        data.CopyTo(file);
    }

    private static List<Tensor> TinyCheckpoint()
    {
        const int hidden = 128, kv = 64, ffn = 256, vocab = 64;
        Tensor T(string name, long[] shape, string dtype, int seed, float spread = 0.05f) =>
            new(name, shape, dtype, Representable(Random((int)shape.Aggregate(1L, (a, b) => a * b), seed, spread), dtype));
        return
        [
            T("model.embed_tokens.weight", [vocab, hidden], "F32", 1),
            T("model.norm.weight", [hidden], "F32", 2, 1),
            T("model.layers.0.input_layernorm.weight", [hidden], "F32", 3, 1),
            T("model.layers.0.self_attn.q_proj.weight", [hidden, hidden], "BF16", 4),
            T("model.layers.0.self_attn.k_proj.weight", [kv, hidden], "BF16", 5),
            T("model.layers.0.self_attn.v_proj.weight", [kv, hidden], "F16", 6),
            T("model.layers.0.self_attn.o_proj.weight", [hidden, hidden], "F32", 7),
            T("model.layers.0.self_attn.attn_sub_norm.weight", [hidden], "F32", 8, 1),
            T("model.layers.0.post_attention_layernorm.weight", [hidden], "F32", 9, 1),
            T("model.layers.0.mlp.gate_proj.weight", [ffn, hidden], "F16", 10),
            T("model.layers.0.mlp.up_proj.weight", [ffn, hidden], "BF16", 11),
            T("model.layers.0.mlp.down_proj.weight", [hidden, ffn], "F32", 12),
            T("model.layers.0.mlp.ffn_sub_norm.weight", [ffn], "F32", 13, 1),
            T("model.layers.0.self_attn.rotary_emb.inv_freq", [64], "F32", 14),
        ];
    }

    private string WriteCheckpointDirectory(List<Tensor> tensors)
    {
        string dir = _temp.Combine("hf");
        Directory.CreateDirectory(dir);
        WriteSafetensors(Path.Combine(dir, "model.safetensors"), tensors);
        File.WriteAllText(Path.Combine(dir, "config.json"), ConfigJson);
        return dir;
    }

    private const string ConfigJson = """
        {"architectures":["BitNetForCausalLM"],"hidden_size":128,"intermediate_size":256,"num_attention_heads":2,
         "num_key_value_heads":1,"num_hidden_layers":1,"vocab_size":64,"max_position_embeddings":512,
         "rms_norm_eps":1e-5,"rope_theta":500000.0}
        """;

    /// <summary>The reference rule, computed independently: scale = max(mean|w|, 1e-5), t = clamp(round(w / scale)).</summary>
    private static (sbyte[] Ternary, float Scale) Expected(float[] values)
    {
        double sum = values.Sum(v => (double)Math.Abs(v));
        float scale = Math.Max((float)(sum / values.Length), 1e-5f);
        return ([.. values.Select(v => (sbyte)Math.Clamp(Math.Round(v * (1f / scale), MidpointRounding.ToEven), -1, 1))], scale);
    }

    private static void AssertTernary(GgufFile file, string name, float[] values)
    {
        var info = file.GetTensor(name);
        Assert.Equal(GgmlType.I2_S, info.Type);
        var bytes = file.GetTensorBytes(info);
        var (ternary, scale) = Expected(values);
        Assert.Equal(scale, I2sLayout.ReadScale(bytes, values.Length));
        for (int e = 0; e < values.Length; e++)
            Assert.True(ternary[e] == I2sLayout.CodeToValue(I2sLayout.Code(bytes, e)), $"{name}[{e}]: expected {ternary[e]}");
        Assert.Contains(ternary, t => t == 1);
        Assert.Contains(ternary, t => t == -1);
        Assert.Contains(ternary, t => t == 0);
    }

    [Fact]
    public void Safetensors_checkpoint_becomes_an_i2s_gguf_with_llama_names_and_config_metadata()
    {
        var tensors = TinyCheckpoint();
        string output = _temp.Combine("out.gguf");
        var result = NaiveTernaryConverter.Convert(WriteCheckpointDirectory(tensors), output);

        using var file = GgufFile.Open(output);
        Assert.Equal("bitnet-b1.58", file.GetString("general.architecture"));
        Assert.Equal(40, file.GetInteger("general.file_type"));
        Assert.Equal(128, file.GetInteger("bitnet-b1.58.embedding_length"));
        Assert.Equal(1, file.GetInteger("bitnet-b1.58.attention.head_count_kv"));
        Assert.Equal(64, file.GetInteger("bitnet-b1.58.rope.dimension_count"));
        Assert.Equal(512, file.GetInteger("bitnet-b1.58.context_length"));
        Assert.Equal(500000f, file.GetFloat("bitnet-b1.58.rope.freq_base"));
        Assert.Equal(13, file.Tensors.Count);
        Assert.Equal(7, result.TernaryTensorCount);
        Assert.Contains(result.Warnings, w => w.Contains("rotary_emb.inv_freq"));
        Assert.Contains(result.Warnings, w => w.Contains("tokenizer"));

        float[] Values(string hf) => tensors.Single(t => t.Name == hf).Values;
        AssertTernary(file, "blk.0.attn_q.weight", Values("model.layers.0.self_attn.q_proj.weight"));
        AssertTernary(file, "blk.0.attn_k.weight", Values("model.layers.0.self_attn.k_proj.weight"));
        AssertTernary(file, "blk.0.attn_v.weight", Values("model.layers.0.self_attn.v_proj.weight"));
        AssertTernary(file, "blk.0.attn_output.weight", Values("model.layers.0.self_attn.o_proj.weight"));
        AssertTernary(file, "blk.0.ffn_gate.weight", Values("model.layers.0.mlp.gate_proj.weight"));
        AssertTernary(file, "blk.0.ffn_up.weight", Values("model.layers.0.mlp.up_proj.weight"));
        AssertTernary(file, "blk.0.ffn_down.weight", Values("model.layers.0.mlp.down_proj.weight"));
        Assert.Equal([256L, 128L], file.GetTensor("blk.0.ffn_down.weight").Shape); // [out, in] → ne [in, out]
        Assert.Equal([128L, 256L], file.GetTensor("blk.0.ffn_up.weight").Shape);

        var embedding = file.GetTensor("token_embd.weight");
        Assert.Equal(GgmlType.F16, embedding.Type);
        Assert.Equal([128L, 64L], embedding.Shape);
        var embeddingBytes = file.GetTensorBytes(embedding);
        float[] original = Values("model.embed_tokens.weight");
        for (int i = 0; i < original.Length; i++)
            Assert.Equal((float)(Half)original[i], (float)BinaryPrimitives.ReadHalfLittleEndian(embeddingBytes[(i * 2)..]));

        var norm = file.GetTensor("blk.0.ffn_sub_norm.weight");
        Assert.Equal(GgmlType.F32, norm.Type);
        Assert.Equal(Values("model.layers.0.mlp.ffn_sub_norm.weight")[5], BinaryPrimitives.ReadSingleLittleEndian(file.GetTensorBytes(norm)[20..]));
    }

    [Fact]
    public void F32_gguf_is_converted_keeping_its_metadata_and_estimate_matches_the_written_size()
    {
        var values = Random(128 * 256, 21);
        var embedding = Random(128 * 32, 22);
        var writer = new GgufWriter()
            .AddMetadata("general.architecture", GgufValue.From("bitnet-b1.58"))
            .AddMetadata("general.file_type", GgufValue.From(0u))
            .AddMetadata("tokenizer.ggml.tokens", GgufValue.From(TwoTokens))
            .AddTensor("token_embd.weight", GgmlType.F32, [128, 32], F32Bytes(embedding))
            .AddTensor("blk.0.ffn_up.weight", GgmlType.F32, [128, 256], F32Bytes(values));
        string input = _temp.Combine("in-f32.gguf"), output = _temp.Combine("out.gguf");
        writer.WriteTo(input);

        var estimate = NaiveTernaryConverter.Estimate(input);
        NaiveTernaryConverter.Convert(input, output);

        Assert.Equal(new FileInfo(output).Length, estimate.OutputBytes);
        Assert.Equal(128 * 256 * 4, estimate.LargestInputTensorBytes);
        Assert.Equal(NaiveTernaryConverter.WorkingBufferBytes + estimate.LargestInputTensorBytes, estimate.PeakMemoryBytes);
        Assert.Empty(estimate.Warnings);
        using var file = GgufFile.Open(output);
        Assert.Equal(40, file.GetInteger("general.file_type"));
        Assert.Equal(["a", "b"], file.GetStringArray("tokenizer.ggml.tokens"));
        AssertTernary(file, "blk.0.ffn_up.weight", values);
        Assert.Equal(GgmlType.F16, file.GetTensor("token_embd.weight").Type);
    }

    [Fact]
    public void Tensors_larger_than_one_chunk_use_one_scale_for_the_whole_tensor()
    {
        int n = NaiveTernaryConverter.ChunkElements + 4 * 128; // spills into a second chunk
        var values = Random(n, 31);
        for (int i = NaiveTernaryConverter.ChunkElements; i < n; i++)
            values[i] *= 10; // the second chunk alone would get a different scale
        var writer = new GgufWriter().AddTensor("blk.0.attn_q.weight", GgmlType.F32, [128, n / 128], F32Bytes(values));
        string input = _temp.Combine("big.gguf"), output = _temp.Combine("big-i2s.gguf");
        writer.WriteTo(input);
        NaiveTernaryConverter.Convert(input, output);
        using var file = GgufFile.Open(output);
        AssertTernary(file, "blk.0.attn_q.weight", values);
    }

    [Fact]
    public void Vocabulary_can_be_copied_from_another_gguf()
    {
        string vocab = _temp.Combine("vocab.gguf");
        new GgufWriter().AddMetadata("tokenizer.ggml.model", GgufValue.From("gpt2"))
            .AddMetadata("tokenizer.ggml.tokens", GgufValue.From(OtherVocabulary))
            .AddMetadata("general.name", GgufValue.From("not copied")).WriteTo(vocab);
        string output = _temp.Combine("out.gguf");
        var result = NaiveTernaryConverter.Convert(WriteCheckpointDirectory(TinyCheckpoint()), output, vocab);
        using var file = GgufFile.Open(output);
        Assert.Equal("gpt2", file.GetString("tokenizer.ggml.model"));
        Assert.Equal(3, file.GetStringArray("tokenizer.ggml.tokens").Length);
        Assert.NotEqual("not copied", file.GetString("general.name"));
        Assert.DoesNotContain(result.Warnings, w => w.Contains("tokenizer"));
    }

    [Fact]
    public void Bad_inputs_are_clear_errors()
    {
        var odd = new GgufWriter().AddTensor("blk.0.attn_q.weight", GgmlType.F32, [100, 3], new byte[1200]);
        string oddPath = _temp.Combine("odd.gguf");
        odd.WriteTo(oddPath);
        Assert.Contains("multiple of 128", Assert.Throws<ConversionException>(() => NaiveTernaryConverter.Estimate(oddPath)).Message);

        var quantized = new GgufWriter().AddTensor("blk.0.attn_q.weight", GgmlType.I2_S, [128, 1], I2sLayout.Pack(new sbyte[128], 1f));
        string quantizedPath = _temp.Combine("q.gguf");
        quantized.WriteTo(quantizedPath);
        Assert.Contains("unquantized", Assert.Throws<ConversionException>(() => NaiveTernaryConverter.Estimate(quantizedPath)).Message);

        string dir = WriteCheckpointDirectory(TinyCheckpoint());
        File.Delete(Path.Combine(dir, "config.json"));
        Assert.Contains("config.json", Assert.Throws<ConversionException>(() => NaiveTernaryConverter.Estimate(dir)).Message);
        Assert.Contains("does not exist", Assert.Throws<ConversionException>(() => NaiveTernaryConverter.Estimate(_temp.Combine("nope.gguf"))).Message);

        string junk = _temp.Combine("junk.safetensors");
        File.WriteAllBytes(junk, [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F, 1, 2]);
        File.WriteAllText(_temp.Combine("config.json"), ConfigJson);
        Assert.Contains("header length", Assert.Throws<ConversionException>(() => NaiveTernaryConverter.Estimate(junk)).Message);
    }

    [Fact]
    public async Task Convert_command_requires_naive_estimates_and_writes()
    {
        string dir = WriteCheckpointDirectory(TinyCheckpoint());
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        Task<int> Run(params string[] args) =>
            new RootCommand { ConvertCommand.Create(stdout, stderr) }.Parse(["convert", .. args]).InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(2, await Run(dir, _temp.Combine("o.gguf")));
        Assert.Contains("--naive", stderr.ToString());
        Assert.Equal(0, await Run("--naive", dir, "--estimate-only"));
        Assert.Contains("output size:", stdout.ToString());
        Assert.Contains("peak memory:", stdout.ToString());
        Assert.False(File.Exists(_temp.Combine("o.gguf")));
        Assert.Equal(0, await Run("--naive", dir, _temp.Combine("o.gguf")));
        Assert.Contains("7 of 13 tensors ternary", stdout.ToString());
        Assert.Contains("blk.0.attn_q.weight [128, 128] → I2_S", stderr.ToString());
        Assert.Equal(1, await Run("--naive", _temp.Combine("missing"), _temp.Combine("x.gguf")));
        Assert.Contains("does not exist", stderr.ToString());
    }

    /// <summary>Every hyperparameter config.json gives is checked: a string, 0, a negative number or heads that do not divide are refused by name.</summary>
    [Theory]
    [InlineData("\"num_attention_heads\":2", "\"num_attention_heads\":\"2\"", "'num_attention_heads' is \"2\"; expected a positive integer")]
    [InlineData("\"num_attention_heads\":2", "\"num_attention_heads\":0", "'num_attention_heads' is 0; expected a positive integer")]
    [InlineData("\"num_attention_heads\":2", "\"num_attention_heads\":3", "hidden_size 128 is not a multiple of num_attention_heads 3")]
    [InlineData("\"hidden_size\":128", "\"hidden_size\":0", "'hidden_size' is 0; expected a positive integer")]
    [InlineData("\"vocab_size\":64", "\"vocab_size\":-64", "'vocab_size' is -64; expected a positive integer")]
    [InlineData("\"num_key_value_heads\":1", "\"num_key_value_heads\":0", "'num_key_value_heads' is 0; expected a positive integer")]
    [InlineData("\"max_position_embeddings\":512", "\"max_position_embeddings\":0", "'max_position_embeddings' is 0; expected a positive integer")]
    [InlineData("\"rms_norm_eps\":1e-5", "\"rms_norm_eps\":\"NaN\"", "'rms_norm_eps' is \"NaN\"; expected a positive number")]
    [InlineData("\"rope_theta\":500000.0", "\"rope_theta\":-1", "'rope_theta' is -1; expected a positive number")]
    [InlineData("\"num_hidden_layers\":1,", "", "'num_hidden_layers' is missing; expected a positive integer")]
    public void A_config_json_value_that_cannot_describe_a_model_is_named(string from, string to, string message)
    {
        string dir = WriteCheckpointDirectory(TinyCheckpoint());
        string config = Path.Combine(dir, "config.json");
        string text = File.ReadAllText(config);
        Assert.Contains(from, text);
        File.WriteAllText(config, text.Replace(from, to, StringComparison.Ordinal));
        Assert.Equal($"{config}: {message}", Assert.Throws<ConversionException>(() => NaiveTernaryConverter.Estimate(dir)).Message);
    }

    [Fact]
    public void A_config_json_that_is_not_an_object_is_named()
    {
        string dir = WriteCheckpointDirectory(TinyCheckpoint());
        File.WriteAllText(Path.Combine(dir, "config.json"), "[]");
        Assert.EndsWith("config.json: expected a JSON object of hyperparameters, not array",
            Assert.Throws<ConversionException>(() => NaiveTernaryConverter.Estimate(dir)).Message);
    }

    [Theory]
    [InlineData(-128L, "has shape [-128, -128]; every dimension must be at least 1")]
    [InlineData(1L << 40, "has shape [1099511627776, 1099511627776], more bytes than a file can hold")]
    public void A_safetensors_shape_that_is_negative_or_too_large_is_named(long dimension, string message)
    {
        var tensors = TinyCheckpoint();
        int q = tensors.FindIndex(t => t.Name == "model.layers.0.self_attn.q_proj.weight");
        tensors[q] = tensors[q] with { Shape = [dimension, dimension] };
        string dir = WriteCheckpointDirectory(tensors);
        Assert.Equal($"{Path.Combine(dir, "model.safetensors")}: tensor 'model.layers.0.self_attn.q_proj.weight' {message}",
            Assert.Throws<ConversionException>(() => NaiveTernaryConverter.Estimate(dir)).Message);
    }

    /// <summary>A config.json that disagrees with the tensors would make a GGUF no command can run: convert refuses and writes nothing.</summary>
    [Theory]
    [InlineData("\"num_hidden_layers\":1", "\"num_hidden_layers\":2", "tensor 'blk.1.attn_norm.weight' (norm weight) is missing")]
    [InlineData("\"vocab_size\":64", "\"vocab_size\":99", "tensor 'token_embd.weight' has shape [128, 64], expected [128, 99] (token embedding [embedding_length, vocab_size])")]
    public async Task Convert_refuses_a_checkpoint_whose_output_the_engine_would_not_load(string from, string to, string reason)
    {
        string dir = WriteCheckpointDirectory(TinyCheckpoint());
        string config = Path.Combine(dir, "config.json");
        File.WriteAllText(config, File.ReadAllText(config).Replace(from, to, StringComparison.Ordinal));
        string output = _temp.Combine("out.gguf");
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = await new RootCommand { ConvertCommand.Create(stdout, stderr) }
            .Parse(["convert", "--naive", dir, output]).InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(1, exit);
        Assert.Equal($"error: the converted model would not load, so nothing was written: {reason}", stderr.ToString().Trim().Split('\n')[^1]);
        Assert.False(File.Exists(output));
        Assert.False(File.Exists(output + ".partial"));
    }

    /// <summary>The output is checked before the input is read: nothing is converted into a folder, a missing folder or over an input.</summary>
    [Theory]
    [InlineData("folder", "cannot write '{out}': it is a directory; give a file name such as {out}/model-i2_s.gguf")]
    [InlineData("missing-folder", "cannot write '{out}': the folder '{dir}/nope' does not exist")]
    [InlineData("empty", "cannot write '': give a file name such as model-i2_s.gguf")]
    [InlineData("input", "cannot write '{out}': it is one of the inputs; give another file name")]
    [InlineData("vocabulary", "cannot write '{out}': it is one of the inputs; give another file name")]
    public async Task Convert_refuses_an_output_path_it_cannot_or_must_not_write_before_converting(string kind, string message)
    {
        string input = Path.Combine(WriteCheckpointDirectory(TinyCheckpoint()), "model.safetensors");
        string vocabulary = _temp.Combine("vocab.gguf");
        new GgufWriter().AddMetadata("tokenizer.ggml.tokens", GgufValue.From(TwoTokens)).WriteTo(vocabulary);
        byte[] inputBytes = File.ReadAllBytes(input), vocabularyBytes = File.ReadAllBytes(vocabulary);
        string output = kind switch
        {
            "folder" => _temp.Path,
            "missing-folder" => _temp.Combine("nope", "out.gguf"),
            "empty" => "",
            "input" => input,
            _ => vocabulary,
        };
        var stdout = new StringWriter();
        var stderr = new StringWriter();
        int exit = await new RootCommand { ConvertCommand.Create(stdout, stderr) }
            .Parse(["convert", "--naive", input, output, "--vocab-from", vocabulary]).InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(1, exit);
        Assert.Equal("error: " + message.Replace("{out}", output).Replace("{dir}", _temp.Path), stderr.ToString().Trim());
        Assert.Equal("", stdout.ToString());
        Assert.Equal(inputBytes, File.ReadAllBytes(input));
        Assert.Equal(vocabularyBytes, File.ReadAllBytes(vocabulary));
        Assert.Empty(Directory.EnumerateFiles(_temp.Path, "*.partial", SearchOption.AllDirectories));
    }

    private static byte[] F32Bytes(float[] values)
    {
        var bytes = new byte[values.Length * 4];
        for (int i = 0; i < values.Length; i++)
            BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
        return bytes;
    }
}

[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, object>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(Dictionary<string, string>))]
[System.Text.Json.Serialization.JsonSerializable(typeof(long[]))]
[System.Text.Json.Serialization.JsonSerializable(typeof(string))]
internal sealed partial class TestJson : System.Text.Json.Serialization.JsonSerializerContext;
