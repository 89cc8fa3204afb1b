using System.Runtime.InteropServices;
using BitNet.Inference.Gguf;
using BitNet.Inference.Kernels;
using Names = BitNet.Inference.Model.GgufTensorNames;

namespace BitNet.Inference.Model;

/// <summary>
/// What a projection's output gets besides the matmul: the bitnet architecture's optional one-element
/// <c>*.scale</c>, then an optional bias (llama). The files that exist carry one or the other, never both.
/// </summary>
public sealed class OutputAdjustment
{
    public static OutputAdjustment None { get; } = new(null, null);

    public OutputAdjustment(float? scale, float[]? bias)
    {
        Scale = scale;
        Bias = bias;
    }

    public float? Scale { get; }
    /// <summary>[outputs], F32.</summary>
    public float[]? Bias { get; }
    public bool IsNone => Scale is null && Bias is null;

    /// <summary>y = y·scale + bias over one token's outputs.</summary>
    public void Apply(Span<float> y)
    {
        if (Scale is float scale) VectorMath.Scale(y, scale);
        if (Bias is { } bias) VectorMath.Add(y, bias);
    }
}

/// <summary>One transformer block's weights. Shapes are [in, out] in GGUF ne order (2B4T sizes).</summary>
public sealed class LayerWeights
{
    /// <summary>The layer's seven ternary matrices, in file order.</summary>
    public IEnumerable<TernaryMatrix> TernaryMatrices => [Query, Key, Value, Output, Gate, Up, Down];

    /// <summary>attn_norm [embd] (2560), F32.</summary>
    public required float[] AttentionNorm { get; init; }
    /// <summary>attn_q [embd, embd] ([2560, 2560]).</summary>
    public required TernaryMatrix Query { get; init; }
    /// <summary>attn_k [embd, kv_dim] ([2560, 640]).</summary>
    public required TernaryMatrix Key { get; init; }
    /// <summary>attn_v [embd, kv_dim] ([2560, 640]).</summary>
    public required TernaryMatrix Value { get; init; }
    /// <summary>attn_sub_norm [embd] (2560), F32, applied to the attention output before Wo; null without sub-norms (llama).</summary>
    public required float[]? AttentionSubNorm { get; init; }
    /// <summary>attn_output [embd, embd] ([2560, 2560]).</summary>
    public required TernaryMatrix Output { get; init; }
    /// <summary>ffn_norm [embd] (2560), F32.</summary>
    public required float[] FfnNorm { get; init; }
    /// <summary>ffn_gate [embd, ffn] ([2560, 6912]).</summary>
    public required TernaryMatrix Gate { get; init; }
    /// <summary>ffn_up [embd, ffn] ([2560, 6912]).</summary>
    public required TernaryMatrix Up { get; init; }
    /// <summary>ffn_sub_norm [ffn] (6912), F32, applied before Wdown; null without sub-norms (llama).</summary>
    public required float[]? FfnSubNorm { get; init; }
    /// <summary>ffn_down [ffn, embd] ([6912, 2560]).</summary>
    public required TernaryMatrix Down { get; init; }

    // Optional biases and scales of the projections' outputs (none in the published files of any family).
    public OutputAdjustment QueryAdjustment { get; init; } = OutputAdjustment.None;
    public OutputAdjustment KeyAdjustment { get; init; } = OutputAdjustment.None;
    public OutputAdjustment ValueAdjustment { get; init; } = OutputAdjustment.None;
    public OutputAdjustment OutputAdjustment { get; init; } = OutputAdjustment.None;
    public OutputAdjustment GateAdjustment { get; init; } = OutputAdjustment.None;
    public OutputAdjustment UpAdjustment { get; init; } = OutputAdjustment.None;
    public OutputAdjustment DownAdjustment { get; init; } = OutputAdjustment.None;
}

/// <summary>
/// All weights of a ternary model, checked against the config and its graph family (spec §2.3; ARCHS.md §2-4). The F16 embedding and
/// I2_S matrices are views into the file (its mapping, or the copies GgufFile.CopyTensorsToMemory made); norms are small F32 copies.
/// </summary>
public sealed unsafe class BitNetWeights
{
    private readonly Half[]? _ownedEmbedding; // pinned copy when the file stores F32/BF16 embeddings
    private readonly Half[]? _ownedOutput;

    private BitNetWeights(Half* embedding, Half[]? ownedEmbedding, Half* output, Half[]? ownedOutput,
        float[] outputNorm, LayerWeights[] layers, bool tied, GgmlType headType, RopeSettings rope)
    {
        LmHeadFileType = headType;
        Rope = rope;
        TokenEmbedding = embedding;
        _ownedEmbedding = ownedEmbedding;
        LmHead = output;
        _ownedOutput = ownedOutput;
        OutputNorm = outputNorm;
        Layers = layers;
        IsLmHeadTied = tied;
    }

    /// <summary>token_embd [embd, vocab] ([2560, 128256]), F16: row t (embd halves) is token t's embedding.</summary>
    public Half* TokenEmbedding { get; }
    /// <summary>The LM head [embd, vocab], F16: output.weight, or token_embd when tied (the 2B4T case).</summary>
    public Half* LmHead { get; }
    public bool IsLmHeadTied { get; }
    /// <summary>The head tensor's type in the file (F16 in every published file; F32/BF16 are converted to F16 at load).</summary>
    public GgmlType LmHeadFileType { get; }
    /// <summary>The RoPE of every layer, with the file's rope_freqs factors when it has them.</summary>
    public RopeSettings Rope { get; }
    /// <summary>The LM head is the file's own F16 tensor, not an owned converted copy: in the mapping, or (F16 head, WeightStorage.Memory) in its private copy; a head quantized at load is never copied, so there it is always the mapping.</summary>
    public bool IsLmHeadMapped => _ownedOutput is null && !(IsLmHeadTied && _ownedEmbedding is not null);
    /// <summary>output_norm [embd] (2560), F32.</summary>
    public float[] OutputNorm { get; }
    public IReadOnlyList<LayerWeights> Layers { get; }

    public static BitNetWeights Load(GgufFile file, ModelConfig config)
    {
        var check = new ShapeChecker(file);
        int embd = config.EmbeddingLength, ffn = config.FeedForwardLength, kv = config.KvDim, vocab = config.VocabSize;

        // Vocabulary and embedding must agree: the tokenizer's ids index the embedding rows.
        if (file.Metadata.TryGetValue(Names.Tokens, out var tokens) && tokens.IsArray && tokens.ArrayLength != vocab)
            throw new ModelFormatException(
                $"the vocabulary has {tokens.ArrayLength} tokens ('{Names.Tokens}') but the model's vocab_size is {vocab}");
        var embeddingInfo = check.Tensor(Names.TokenEmbedding, [embd, vocab], "token embedding [embedding_length, vocab_size]");
        Half* embedding = check.HalfMatrix(embeddingInfo, out Half[]? ownedEmbedding);

        GraphFamily graph = config.Graph;
        Half* lmHead = embedding;
        Half[]? ownedOutput = null;
        bool tied = !file.TryGetTensor(Names.Output, out var headInfo);
        if (!tied && graph.Head == UntiedHead.Refused)
            throw new ModelFormatException(
                $"tensor '{Names.Output}' is not part of the '{config.Architecture}' architecture, whose LM head is the token embedding");
        if (!tied)
            lmHead = check.HalfMatrix(check.Tensor(Names.Output, [embd, vocab], "LM head [embedding_length, vocab_size]"), out ownedOutput);
        else
            headInfo = embeddingInfo;

        var layers = new LayerWeights[config.LayerCount];
        for (int l = 0; l < layers.Length; l++)
        {
            OutputAdjustment Adjustment(string matrix, int outputs, bool biases)
            {
                var adjustment = new OutputAdjustment(
                    graph.MatrixScales ? check.OptionalScalar(Names.Scale(matrix)) : null,
                    biases ? check.OptionalVector(Names.Bias(matrix), outputs) : null);
                return adjustment.IsNone ? OutputAdjustment.None : adjustment;
            }
            layers[l] = new LayerWeights
            {
                AttentionNorm = check.Norm(Names.AttentionNorm(l), embd),
                Query = check.Ternary(Names.AttentionQ(l), embd, embd),
                Key = check.Ternary(Names.AttentionK(l), embd, kv),
                Value = check.Ternary(Names.AttentionV(l), embd, kv),
                AttentionSubNorm = graph.SubNorms ? check.Norm(Names.AttentionSubNorm(l), embd) : null,
                Output = check.Ternary(Names.AttentionOutput(l), embd, embd),
                FfnNorm = check.Norm(Names.FfnNorm(l), embd),
                Gate = check.Ternary(Names.FfnGate(l), embd, ffn),
                Up = check.Ternary(Names.FfnUp(l), embd, ffn),
                FfnSubNorm = graph.SubNorms ? check.Norm(Names.FfnSubNorm(l), ffn) : null,
                Down = check.Ternary(Names.FfnDown(l), ffn, embd),
                QueryAdjustment = Adjustment(Names.AttentionQ(l), embd, graph.AttentionBiases),
                KeyAdjustment = Adjustment(Names.AttentionK(l), kv, graph.AttentionBiases),
                ValueAdjustment = Adjustment(Names.AttentionV(l), kv, graph.AttentionBiases),
                OutputAdjustment = Adjustment(Names.AttentionOutput(l), embd, graph.AttentionBiases),
                GateAdjustment = Adjustment(Names.FfnGate(l), ffn, graph.FeedForwardBiases),
                UpAdjustment = Adjustment(Names.FfnUp(l), ffn, graph.FeedForwardBiases),
                DownAdjustment = Adjustment(Names.FfnDown(l), embd, graph.FeedForwardBiases),
            };
        }
        // llama.cpp refuses tensors it does not load; layers past block_count would be dropped silently.
        foreach (var info in file.Tensors)
            if (Names.LayerOf(info.Name) is int layer && layer >= config.LayerCount)
                throw new ModelFormatException(
                    $"tensor '{info.Name}' belongs to layer {layer}, but '{Names.BlockCount(config.Architecture)}' = {config.LayerCount}");
        float[] outputNorm = check.Norm(Names.OutputNorm, embd);
        float[]? ropeFactors = graph.RopeFrequencyFactors ? check.OptionalVector(Names.RopeFrequencies, config.RopeDimensionCount / 2) : null;
        if (ropeFactors is not null && ropeFactors.Any(f => !(f > 0) || float.IsInfinity(f)))
            throw new ModelFormatException($"tensor '{Names.RopeFrequencies}' holds a factor that is not a positive finite number");
        return new BitNetWeights(embedding, ownedEmbedding, lmHead, ownedOutput, outputNorm, layers, tied, headInfo.Type, RopeSettings.For(config, ropeFactors));
    }

    /// <summary>Finds tensors and checks name, type and shape, with messages naming all three.</summary>
    private readonly struct ShapeChecker(GgufFile file)
    {
        public GgufTensorInfo Tensor(string name, long[] expected, string what)
        {
            if (!file.TryGetTensor(name, out var info))
                throw new ModelFormatException($"tensor '{name}' ({what}) is missing");
            if (!info.Shape.SequenceEqual(expected))
                throw new ModelFormatException(
                    $"tensor '{name}' has shape {info.ShapeText}, expected [{string.Join(", ", expected)}] ({what})");
            return info;
        }

        public float[] Norm(string name, int length) => Vector(name, length, "norm weight");

        /// <summary>An F32 vector [length] that the file may leave out (biases, rope_freqs).</summary>
        public float[]? OptionalVector(string name, int length) =>
            file.TryGetTensor(name, out _) ? Vector(name, length, "F32 vector") : null;

        /// <summary>A one-element F32 tensor that the file may leave out, finite.</summary>
        public float? OptionalScalar(string name)
        {
            if (!file.TryGetTensor(name, out _)) return null;
            float value = Vector(name, 1, "scale")[0];
            return float.IsFinite(value) ? value : throw new ModelFormatException($"tensor '{name}' holds {value}, expected a finite scale");
        }

        private float[] Vector(string name, int length, string what)
        {
            var info = Tensor(name, [length], what);
            if (info.Type != GgmlType.F32)
                throw new ModelFormatException($"tensor '{name}' has type {info.Type}, expected F32");
            var values = new float[length];
            file.ReadTensor(info, MemoryMarshal.AsBytes(values.AsSpan()));
            return values;
        }

        public TernaryMatrix Ternary(string name, int inputs, int outputs)
        {
            var info = Tensor(name, [inputs, outputs], "ternary matrix [inputs, outputs]");
            switch (info.Type)
            {
                case GgmlType.I2_S:
                    if (inputs % I2sLayout.BlockElements != 0)
                        throw new ModelFormatException(
                            $"tensor '{name}' (I2_S) has ne0 = {inputs}, which is not a multiple of {I2sLayout.BlockElements}");
                    return TernaryMatrix.FromI2s(file, info);
                case GgmlType.TQ1_0:
                case GgmlType.TQ2_0:
                    return TernaryMatrix.FromTernaryBlocks(file, info); // the reader checked ne0 % 256
                case GgmlType.F32:
                case GgmlType.F16:
                case GgmlType.BF16:
                    if (inputs % I2sLayout.BlockElements != 0)
                        throw new ModelFormatException($"tensor '{name}' ({info.Type}) has ne0 = {inputs}, which is not a multiple of {I2sLayout.BlockElements}");
                    return TernaryMatrix.FromFloatTernary(file, info);
                default:
                    throw new ModelFormatException(
                        $"tensor '{name}' has type {info.Type}; supported matrix types are I2_S, TQ1_0, TQ2_0 and ternary-valued F32/F16/BF16");
            }
        }

        /// <summary>F16 in place; F32 and BF16 are converted to an owned F16 copy (the engine computes with F16 like bitnet.cpp).</summary>
        public Half* HalfMatrix(GgufTensorInfo info, out Half[]? owned)
        {
            owned = null;
            byte* data = file.GetTensorPointer(info);
            switch (info.Type)
            {
                case GgmlType.F16:
                    return (Half*)data;
                case GgmlType.F32:
                case GgmlType.BF16:
                {
                    long n = info.ElementCount;
                    owned = GC.AllocateArray<Half>(checked((int)n), pinned: true);
                    for (long i = 0; i < n; i++)
                        owned[i] = info.Type == GgmlType.F32
                            ? (Half)((float*)data)[i]
                            : (Half)BitConverter.Int32BitsToSingle(((ushort*)data)[i] << 16);
                    return (Half*)Marshal.UnsafeAddrOfPinnedArrayElement(owned, 0);
                }
                default:
                    throw new ModelFormatException($"tensor '{info.Name}' has type {info.Type}; expected F16 (or F32/BF16)");
            }
        }
    }
}
