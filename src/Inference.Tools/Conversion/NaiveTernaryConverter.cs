using System.Buffers.Binary;
using System.Text.Json;
using BitNet.Inference.Gguf;
using BitNet.Inference.Kernels;
using BitNet.Inference.Model;

namespace BitNet.Inference.Conversion;

/// <summary>What a conversion will produce, known before any byte is written.</summary>
public sealed record ConversionEstimate(
    long InputBytes, long OutputBytes, long WorkingBufferBytes, long LargestInputTensorBytes,
    int TensorCount, int TernaryTensorCount, IReadOnlyList<string> Warnings)
{
    /// <summary>
    /// Peak resident memory: the fixed chunk buffers plus, at worst, the pages of the largest input
    /// tensor (memory-mapped, read twice, reclaimable by the OS).
    /// </summary>
    public long PeakMemoryBytes => WorkingBufferBytes + LargestInputTensorBytes;
}

/// <summary>
/// Naive ternary conversion of an unquantized BitNet checkpoint (F32/F16/BF16, GGUF or
/// safetensors) to an I2_S GGUF, the way bitnet.cpp's preprocessing does it (spec §10.2, §3.2):
/// for each projection weight, <c>scale = max(mean|w|, 1e-5)</c> over the whole tensor and
/// <c>t = clamp(round(w / scale), −1, 1)</c>; the file stores the codes and that scale.
/// token_embd (and an untied output) become F16; norms stay F32.
/// Tensors are streamed one at a time in fixed-size chunks from memory-mapped inputs, so memory
/// stays bounded whatever the model size. "Naive": no calibration, no fine-tuning — a model that was
/// not trained ternary will not survive it; a BitNet b1.58 checkpoint stored in full precision will.
/// </summary>
public static class NaiveTernaryConverter
{
    /// <summary>Elements per streamed chunk (a multiple of the 128-element I2_S block).</summary>
    public const int ChunkElements = 1 << 20;
    public const uint FileTypeI2S = 40;
    public const string Architecture = "bitnet-b1.58";

    /// <summary>The chunk buffers of the widest path (F32 out: 4-byte floats in, 4 bytes out per element) plus the 1 MiB file buffer.</summary>
    public const long WorkingBufferBytes = ChunkElements * 8L + (1 << 20);

    /// <summary>Sizes and warnings without writing anything.</summary>
    public static ConversionEstimate Estimate(string input, string? vocabularyFrom = null)
    {
        using var source = ConversionInput.Open(input, vocabularyFrom);
        var writer = BuildWriter(source);
        return new ConversionEstimate(
            InputBytes: source.InputBytes,
            OutputBytes: writer.PlanFileSize(),
            WorkingBufferBytes: WorkingBufferBytes,
            LargestInputTensorBytes: source.Tensors.Select(t => t.ElementCount * SourceTensor.ElementSize(t.DType)).DefaultIfEmpty(0).Max(),
            TensorCount: source.Tensors.Count,
            TernaryTensorCount: source.Tensors.Count(t => OutputType(t) == GgmlType.I2_S),
            Warnings: source.Warnings);
    }

    /// <summary>
    /// Converts <paramref name="input"/> to an I2_S GGUF at <paramref name="output"/>; reports each tensor as it is written.
    /// With <paramref name="runnable"/>, the written file must pass the engine's load checks (hyperparameters, and every
    /// tensor's name, type and shape against them), else nothing is written: a config.json that disagrees with the
    /// tensors (more layers than the checkpoint has, another vocabulary size) makes a file no command could run.
    /// </summary>
    public static ConversionEstimate Convert(string input, string output, string? vocabularyFrom = null, IProgress<string>? progress = null,
        bool runnable = false)
    {
        using var source = ConversionInput.Open(input, vocabularyFrom);
        var writer = BuildWriter(source, progress);
        var estimate = new ConversionEstimate(source.InputBytes, writer.PlanFileSize(), WorkingBufferBytes,
            source.Tensors.Select(t => t.ElementCount * SourceTensor.ElementSize(t.DType)).DefaultIfEmpty(0).Max(),
            source.Tensors.Count, source.Tensors.Count(t => OutputType(t) == GgmlType.I2_S), source.Warnings);
        writer.WriteTo(output, runnable ? CheckRunnable : null);
        return estimate;
    }

    private static void CheckRunnable(string path)
    {
        using var file = GgufFile.Open(path);
        try
        {
            BitNetWeights.Load(file, ModelConfig.FromGguf(file));
        }
        catch (ModelFormatException e)
        {
            throw new ConversionException($"the converted model would not load, so nothing was written: {e.Message}", e);
        }
    }

    /// <summary>I2_S for the ternary projections, F16 for embeddings / output head, F32 for the rest.</summary>
    public static GgmlType OutputType(SourceTensor tensor) =>
        TensorNames.IsTernaryWeight(tensor.Name) && tensor.Shape.Length == 2 ? GgmlType.I2_S
        : tensor.Name is "token_embd.weight" or "output.weight" ? GgmlType.F16
        : GgmlType.F32;

    private static GgufWriter BuildWriter(ConversionInput source, IProgress<string>? progress = null)
    {
        var writer = new GgufWriter();
        foreach (var (key, value) in source.Metadata)
            writer.AddMetadata(key, value);
        foreach (var tensor in source.Tensors)
        {
            GgmlType type = OutputType(tensor);
            if (type == GgmlType.I2_S && tensor.ElementCount % I2sLayout.BlockElements != 0)
                throw new ConversionException($"tensor '{tensor.Name}' has {tensor.ElementCount} elements; I2_S needs a multiple of {I2sLayout.BlockElements}");
            writer.AddTensor(tensor.Name, type, tensor.Shape, stream =>
            {
                switch (type)
                {
                    case GgmlType.I2_S:
                        float scale = WriteTernary(tensor, stream);
                        progress?.Report($"{tensor.Name} {ShapeText(tensor)} → I2_S (scale {scale:G6})");
                        break;
                    case GgmlType.F16:
                        WriteF16(tensor, stream);
                        progress?.Report($"{tensor.Name} {ShapeText(tensor)} → F16");
                        break;
                    default:
                        WriteF32(tensor, stream);
                        progress?.Report($"{tensor.Name} {ShapeText(tensor)} → F32");
                        break;
                }
            });
        }
        return writer;
    }

    /// <summary>The absmean of a tensor, accumulated in double over chunks, clamped at 1e-5 like bitnet.cpp.</summary>
    public static float AbsMeanScale(SourceTensor tensor)
    {
        long n = tensor.ElementCount;
        float[] chunk = new float[(int)Math.Min(ChunkElements, n)];
        double sum = 0;
        for (long start = 0; start < n; start += chunk.Length)
        {
            var span = chunk.AsSpan(0, (int)Math.Min(chunk.Length, n - start));
            tensor.ReadFloats(start, span);
            foreach (float w in span)
                sum += Math.Abs(w);
        }
        return Math.Max((float)(sum / n), 1e-5f);
    }

    /// <summary>Pass 1: the scale. Pass 2: codes, packed chunk by chunk. Then the 32-byte tail (scale + zeros).</summary>
    private static float WriteTernary(SourceTensor tensor, Stream stream)
    {
        float scale = AbsMeanScale(tensor);
        float inverse = 1f / scale;
        long n = tensor.ElementCount;
        int chunkLength = (int)Math.Min(ChunkElements, n);
        float[] values = new float[chunkLength];
        sbyte[] ternary = new sbyte[chunkLength];
        byte[] packed = new byte[chunkLength / 4];
        for (long start = 0; start < n; start += chunkLength)
        {
            int count = (int)Math.Min(chunkLength, n - start);
            tensor.ReadFloats(start, values.AsSpan(0, count));
            for (int i = 0; i < count; i++)
                ternary[i] = (sbyte)Math.Clamp(MathF.Round(values[i] * inverse, MidpointRounding.ToEven), -1f, 1f);
            var codes = packed.AsSpan(0, count / 4);
            codes.Clear(); // PackInto ORs codes into place
            I2sLayout.PackInto(ternary.AsSpan(0, count), codes);
            stream.Write(codes);
        }
        Span<byte> tail = stackalloc byte[I2sLayout.TailBytes];
        tail.Clear();
        BinaryPrimitives.WriteSingleLittleEndian(tail, scale);
        stream.Write(tail);
        return scale;
    }

    private static void WriteF16(SourceTensor tensor, Stream stream)
    {
        long n = tensor.ElementCount;
        int chunkLength = (int)Math.Min(ChunkElements, n);
        float[] values = new float[chunkLength];
        byte[] bytes = new byte[chunkLength * 2];
        for (long start = 0; start < n; start += chunkLength)
        {
            int count = (int)Math.Min(chunkLength, n - start);
            tensor.ReadFloats(start, values.AsSpan(0, count));
            for (int i = 0; i < count; i++)
                BinaryPrimitives.WriteHalfLittleEndian(bytes.AsSpan(i * 2), (Half)values[i]);
            stream.Write(bytes, 0, count * 2);
        }
    }

    private static void WriteF32(SourceTensor tensor, Stream stream)
    {
        long n = tensor.ElementCount;
        int chunkLength = (int)Math.Min(ChunkElements, n);
        float[] values = new float[chunkLength];
        byte[] bytes = new byte[chunkLength * 4];
        for (long start = 0; start < n; start += chunkLength)
        {
            int count = (int)Math.Min(chunkLength, n - start);
            tensor.ReadFloats(start, values.AsSpan(0, count));
            for (int i = 0; i < count; i++)
                BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(i * 4), values[i]);
            stream.Write(bytes, 0, count * 4);
        }
    }

    private static string ShapeText(SourceTensor tensor) => "[" + string.Join(", ", tensor.Shape) + "]";

    /// <summary>The opened input: tensors (GGUF names, ne order) and the metadata the output will carry.</summary>
    private sealed class ConversionInput : IDisposable
    {
        private readonly List<IDisposable> _owned = [];

        public List<SourceTensor> Tensors { get; } = [];
        public List<KeyValuePair<string, GgufValue>> Metadata { get; } = [];
        public List<string> Warnings { get; } = [];
        public long InputBytes { get; private set; }

        public static ConversionInput Open(string input, string? vocabularyFrom)
        {
            var result = new ConversionInput();
            try
            {
                if (Directory.Exists(input))
                    result.OpenSafetensors(Directory.GetFiles(input, "*.safetensors").Order(StringComparer.Ordinal).ToArray(), input);
                else if (!File.Exists(input))
                    throw new ConversionException($"input '{input}' does not exist");
                else if (input.EndsWith(".safetensors", StringComparison.OrdinalIgnoreCase))
                    result.OpenSafetensors([input], Path.GetDirectoryName(Path.GetFullPath(input))!);
                else
                    result.OpenGguf(input);

                if (vocabularyFrom is not null)
                    result.CopyVocabulary(vocabularyFrom);
                else if (!result.Metadata.Any(m => m.Key == "tokenizer.ggml.tokens"))
                    result.Warnings.Add("the output has no tokenizer; pass --vocab-from a GGUF of the same model family to copy its tokenizer.* keys");
                return result;
            }
            catch
            {
                result.Dispose();
                throw;
            }
        }

        private unsafe void OpenGguf(string path)
        {
            GgufFile file;
            try { file = GgufFile.Open(path); }
            catch (GgufFormatException e) { throw new ConversionException($"{path}: not a GGUF file or a safetensors file ({e.Message})", e); }
            _owned.Add(file);
            InputBytes = file.FileSize;
            foreach (var (key, value) in file.MetadataInOrder)
            {
                if (key is GgufFile.AlignmentKey or "general.file_type")
                    continue;
                Metadata.Add(new(key, value));
            }
            Metadata.Add(new("general.file_type", GgufValue.From(FileTypeI2S)));
            foreach (var info in file.Tensors)
            {
                SourceDType dtype = SourceTensor.FromGgml(info.Type, info.Name);
                Tensors.Add(new SourceTensor(info.Name, info.Shape, dtype, file.GetTensorPointer(info), info.ByteSize));
            }
        }

        private void OpenSafetensors(string[] files, string directory)
        {
            if (files.Length == 0)
                throw new ConversionException($"{directory}: no *.safetensors files");
            string configPath = Path.Combine(directory, "config.json");
            if (!File.Exists(configPath))
                throw new ConversionException($"{configPath} is missing; the model's hyperparameters come from the config.json beside the safetensors");
            AddMetadataFromConfig(configPath);
            foreach (string path in files)
            {
                var file = new SafetensorsFile(path);
                _owned.Add(file);
                InputBytes += new FileInfo(path).Length;
                foreach (string name in file.Names)
                {
                    string? gguf = TensorNames.ToGguf(name);
                    if (gguf is null)
                    {
                        Warnings.Add($"skipped '{name}' (no GGUF equivalent)");
                        continue;
                    }
                    Tensors.Add(file.Tensor(name, gguf));
                }
            }
            if (Tensors.Count == 0)
                throw new ConversionException($"{directory}: no Llama-style tensors (model.layers.N.*, model.embed_tokens.weight) found");
        }

        private void AddMetadataFromConfig(string configPath)
        {
            JsonElement config;
            try
            {
                using var document = JsonDocument.Parse(File.ReadAllText(configPath));
                config = document.RootElement.Clone();
            }
            catch (JsonException e)
            {
                throw new ConversionException($"{configPath}: {e.Message}", e);
            }
            if (config.ValueKind != JsonValueKind.Object)
                throw new ConversionException($"{configPath}: expected a JSON object of hyperparameters, not {config.ValueKind.ToString().ToLowerInvariant()}");
            // A key that is there must hold a usable value: a string, 0 or a negative number is refused, not replaced by a default.
            uint Positive(string key, uint? fallback) =>
                !config.TryGetProperty(key, out var v) && fallback is { } f ? f
                : v.ValueKind == JsonValueKind.Number && v.TryGetUInt32(out uint u) && u > 0 ? u
                : throw new ConversionException($"{configPath}: '{key}' is {(v.ValueKind == JsonValueKind.Undefined ? "missing" : $"{v.GetRawText()}")}; expected a positive integer");
            uint Required(string key) => Positive(key, null);
            float Optional(string key, float fallback) =>
                !config.TryGetProperty(key, out var v) ? fallback
                : v.ValueKind == JsonValueKind.Number && v.TryGetDouble(out double d) && d > 0 && float.IsFinite((float)d) ? (float)d
                : throw new ConversionException($"{configPath}: '{key}' is {v.GetRawText()}; expected a positive number");

            uint hidden = Required("hidden_size"), heads = Required("num_attention_heads");
            uint kvHeads = Positive("num_key_value_heads", heads);
            if (hidden % heads != 0)
                throw new ConversionException($"{configPath}: hidden_size {hidden} is not a multiple of num_attention_heads {heads}");
            if (heads % kvHeads != 0)
                throw new ConversionException($"{configPath}: num_attention_heads {heads} is not a multiple of num_key_value_heads {kvHeads}");
            string a = Architecture;
            string name = config.TryGetProperty("_name_or_path", out var n) && n.ValueKind == JsonValueKind.String ? n.GetString()! : Path.GetFileName(Path.GetDirectoryName(configPath)) ?? "bitnet";
            Metadata.Add(new("general.architecture", GgufValue.From(a)));
            Metadata.Add(new("general.name", GgufValue.From(name)));
            Metadata.Add(new($"{a}.vocab_size", GgufValue.From(Required("vocab_size"))));
            Metadata.Add(new($"{a}.context_length", GgufValue.From(Positive("max_position_embeddings", 4096u))));
            Metadata.Add(new($"{a}.embedding_length", GgufValue.From(hidden)));
            Metadata.Add(new($"{a}.block_count", GgufValue.From(Required("num_hidden_layers"))));
            Metadata.Add(new($"{a}.feed_forward_length", GgufValue.From(Required("intermediate_size"))));
            Metadata.Add(new($"{a}.rope.dimension_count", GgufValue.From(hidden / heads)));
            Metadata.Add(new($"{a}.attention.head_count", GgufValue.From(heads)));
            Metadata.Add(new($"{a}.attention.head_count_kv", GgufValue.From(kvHeads)));
            Metadata.Add(new($"{a}.attention.layer_norm_rms_epsilon", GgufValue.From(Optional("rms_norm_eps", 1e-5f))));
            Metadata.Add(new($"{a}.rope.freq_base", GgufValue.From(Optional("rope_theta", 500000f))));
            Metadata.Add(new("general.file_type", GgufValue.From(FileTypeI2S)));
            Metadata.Add(new("general.quantization_version", GgufValue.From(2u)));
        }

        private void CopyVocabulary(string path)
        {
            using var vocabulary = GgufFile.Open(path);
            Metadata.RemoveAll(m => m.Key.StartsWith("tokenizer.", StringComparison.Ordinal));
            foreach (var (key, value) in vocabulary.MetadataInOrder)
                if (key.StartsWith("tokenizer.", StringComparison.Ordinal))
                    Metadata.Add(new(key, value));
        }

        public void Dispose()
        {
            foreach (var owned in _owned)
                owned.Dispose();
        }
    }
}
