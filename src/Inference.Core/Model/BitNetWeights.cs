using System.Runtime.InteropServices;
using BitNet.Inference.Gguf;
using BitNet.Inference.Kernels;
using Names = BitNet.Inference.Model.GgufTensorNames;

namespace BitNet.Inference.Model;

/// <summary>One transformer block's weights. Shapes are [in, out] in GGUF ne order (2B4T sizes).</summary>
public sealed class LayerWeights
{
    /// <summary>attn_norm [embd] (2560), F32.</summary>
    public required float[] AttentionNorm { get; init; }
    /// <summary>attn_q [embd, embd] ([2560, 2560]).</summary>
    public required TernaryMatrix Query { get; init; }
    /// <summary>attn_k [embd, kv_dim] ([2560, 640]).</summary>
    public required TernaryMatrix Key { get; init; }
    /// <summary>attn_v [embd, kv_dim] ([2560, 640]).</summary>
    public required TernaryMatrix Value { get; init; }
    /// <summary>attn_sub_norm [embd] (2560), F32, applied to the attention output before Wo.</summary>
    public required float[] AttentionSubNorm { get; init; }
    /// <summary>attn_output [embd, embd] ([2560, 2560]).</summary>
    public required TernaryMatrix Output { get; init; }
    /// <summary>ffn_norm [embd] (2560), F32.</summary>
    public required float[] FfnNorm { get; init; }
    /// <summary>ffn_gate [embd, ffn] ([2560, 6912]).</summary>
    public required TernaryMatrix Gate { get; init; }
    /// <summary>ffn_up [embd, ffn] ([2560, 6912]).</summary>
    public required TernaryMatrix Up { get; init; }
    /// <summary>ffn_sub_norm [ffn] (6912), F32, applied before Wdown.</summary>
    public required float[] FfnSubNorm { get; init; }
    /// <summary>ffn_down [ffn, embd] ([6912, 2560]).</summary>
    public required TernaryMatrix Down { get; init; }
}

/// <summary>
/// All weights of a BitNet b1.58 model, checked against the config (spec §2.3). The F16 embedding and
/// I2_S matrices are views into the file (its mapping, or the copies GgufFile.CopyTensorsToMemory made); norms are small F32 copies.
/// </summary>
public sealed unsafe class BitNetWeights
{
    private readonly Half[]? _ownedEmbedding; // pinned copy when the file stores F32/BF16 embeddings
    private readonly Half[]? _ownedOutput;

    private BitNetWeights(Half* embedding, Half[]? ownedEmbedding, Half* output, Half[]? ownedOutput,
        float[] outputNorm, LayerWeights[] layers, bool tied)
    {
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

        Half* lmHead = embedding;
        Half[]? ownedOutput = null;
        bool tied = !file.TryGetTensor(Names.Output, out _);
        if (!tied)
            lmHead = check.HalfMatrix(check.Tensor(Names.Output, [embd, vocab], "LM head [embedding_length, vocab_size]"), out ownedOutput);

        var layers = new LayerWeights[config.LayerCount];
        for (int l = 0; l < layers.Length; l++)
        {
            layers[l] = new LayerWeights
            {
                AttentionNorm = check.Norm(Names.AttentionNorm(l), embd),
                Query = check.Ternary(Names.AttentionQ(l), embd, embd),
                Key = check.Ternary(Names.AttentionK(l), embd, kv),
                Value = check.Ternary(Names.AttentionV(l), embd, kv),
                AttentionSubNorm = check.Norm(Names.AttentionSubNorm(l), embd),
                Output = check.Ternary(Names.AttentionOutput(l), embd, embd),
                FfnNorm = check.Norm(Names.FfnNorm(l), embd),
                Gate = check.Ternary(Names.FfnGate(l), embd, ffn),
                Up = check.Ternary(Names.FfnUp(l), embd, ffn),
                FfnSubNorm = check.Norm(Names.FfnSubNorm(l), ffn),
                Down = check.Ternary(Names.FfnDown(l), ffn, embd),
            };
        }
        float[] outputNorm = check.Norm(Names.OutputNorm, embd);
        return new BitNetWeights(embedding, ownedEmbedding, lmHead, ownedOutput, outputNorm, layers, tied);
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

        public float[] Norm(string name, int length)
        {
            var info = Tensor(name, [length], "norm weight");
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
