using System.Buffers.Binary;
using System.Runtime.InteropServices;
using BitNet.Inference.Gguf;
using Names = BitNet.Inference.Model.GgufTensorNames;

namespace BitNet.Inference.Dummy;

/// <summary>The sizes of a generated random model, its architecture, and whether it has a separate F16 LM head.</summary>
public sealed record DummyShape(string Name, int Embedding, int Layers, int Heads, int KvHeads, int FeedForward, int Vocab, int Context,
    string Architecture = DummyModel.Architecture, bool UntiedHead = false, float RopeBase = 500000f)
{
    /// <summary>BitNet b1.58 2B4T: the published file's exact names, shapes and types (spec §2.3), about 1.19 GB.</summary>
    public static DummyShape Bitnet2B4T { get; } = new("2b4t", 2560, 30, 20, 5, 6912, 128256, 4096);
    /// <summary>The oracle model's sizes (shared/oracle/README.md), about 74 MB.</summary>
    public static DummyShape Small { get; } = new("small", 256, 4, 4, 2, 512, 128256, 4096);
    /// <summary>A few-hundred-kilobyte model for tests: 2 layers, head dim 64, a synthetic byte-level vocabulary.</summary>
    public static DummyShape Tiny { get; } = new("tiny", 128, 2, 2, 1, 256, 300, 64);

    // The published 1.58-bit llama-architecture models, untied F16 heads, from their model cards and config.json:
    // HF1BitLLM/Llama3-8B-1.58-100B-tokens: Llama 3 8B's config (4096 hidden, 32 layers, 32/8 heads, FFN 14336, vocab 128256, θ 500000, 8k).
    public static DummyShape Llama3_8B { get; } = new("llama3-8b", 4096, 32, 32, 8, 14336, 128256, 8192, "llama", UntiedHead: true);
    // tiiuae/Falcon3-1B-Instruct-1.58bit: 18 blocks, 8/4 heads of 256, FFN 8192, vocab 131072, θ 1000042, 8k.
    public static DummyShape Falcon3_1B { get; } = new("falcon3-1b", 2048, 18, 8, 4, 8192, 131072, 8192, "llama", UntiedHead: true, RopeBase: 1000042f);
    // tiiuae/Falcon3-3B-Instruct-1.58bit: 22 blocks, 12/4 heads of 256, FFN 9216, vocab 131072, θ 1000042, 32k.
    public static DummyShape Falcon3_3B { get; } = new("falcon3-3b", 3072, 22, 12, 4, 9216, 131072, 32768, "llama", UntiedHead: true, RopeBase: 1000042f);
    // tiiuae/Falcon3-7B-Instruct-1.58bit: 28 blocks, 12/4 heads of 256, FFN 23040, vocab 131072, θ 1000042, 32k.
    public static DummyShape Falcon3_7B { get; } = new("falcon3-7b", 3072, 28, 12, 4, 23040, 131072, 32768, "llama", UntiedHead: true, RopeBase: 1000042f);
    // tiiuae/Falcon3-10B-Instruct-1.58bit: 40 blocks, 12/4 heads of 256, FFN 23040, vocab 131072, θ 1000042, 32k.
    public static DummyShape Falcon3_10B { get; } = new("falcon3-10b", 3072, 40, 12, 4, 23040, 131072, 32768, "llama", UntiedHead: true, RopeBase: 1000042f);

    public static IReadOnlyList<DummyShape> All { get; } = [Bitnet2B4T, Small, Tiny, Llama3_8B, Falcon3_1B, Falcon3_3B, Falcon3_7B, Falcon3_10B];

    public static DummyShape Parse(string name) =>
        All.FirstOrDefault(s => string.Equals(s.Name, name, StringComparison.OrdinalIgnoreCase))
        ?? throw new ArgumentException($"unknown shape '{name}' ({string.Join(", ", All.Select(s => s.Name))})");

    /// <summary>Whether the architecture has attn_sub_norm and ffn_sub_norm (the bitnet family; llama has none).</summary>
    public bool SubNorms => Architecture != "llama";
}

/// <summary>
/// Random ternary models in the exact GGUF layout of the published files (2B4T, and the llama-architecture
/// 1.58-bit models with their untied F16 head), for benchmarks and tests: I2_S
/// matrices with codes uniform over {−1, 0, +1} and one scale per tensor (uniform in [0.01, 0.05],
/// F16-exact), an F16 embedding drawn from 0.05·N(0,1), F32 norms 1 + 0.1·N(0,1). Each tensor has its
/// own generator seeded from (seed, tensor index), and data is streamed tensor by tensor.
/// The vocabulary is copied from another GGUF (tokenizer.* keys) or synthesized (bytes + specials).
/// </summary>
public static class DummyModel
{
    public const string Architecture = "bitnet-b1.58";

    /// <summary>Plan the file (metadata and tensors with streaming writers) without writing anything.</summary>
    public static GgufWriter Plan(DummyShape shape, ulong seed, GgufFile? vocabularySource = null)
    {
        string arch = shape.Architecture;
        var w = new GgufWriter();
        var vocab = vocabularySource is null ? SyntheticVocabulary(shape.Vocab) : null;
        int vocabSize = vocabularySource is null ? shape.Vocab
            : vocabularySource.Metadata.TryGetValue(Names.Tokens, out var t) && t.IsArray ? t.ArrayLength
            : throw new GgufFormatException($"{vocabularySource.Path}: no '{Names.Tokens}' array to copy the vocabulary from");

        // The published file's 24 keys, in its order (spec §2.1).
        w.AddMetadata(Names.Architecture, GgufValue.From(arch));
        w.AddMetadata(Names.Name, GgufValue.From($"bitnet-dummy-{shape.Name}"));
        w.AddMetadata(Names.VocabSize(arch), GgufValue.From((uint)vocabSize));
        w.AddMetadata(Names.ContextLength(arch), GgufValue.From((uint)shape.Context));
        w.AddMetadata(Names.EmbeddingLength(arch), GgufValue.From((uint)shape.Embedding));
        w.AddMetadata(Names.BlockCount(arch), GgufValue.From((uint)shape.Layers));
        w.AddMetadata(Names.FeedForwardLength(arch), GgufValue.From((uint)shape.FeedForward));
        w.AddMetadata(Names.RopeDimensionCount(arch), GgufValue.From((uint)(shape.Embedding / shape.Heads)));
        w.AddMetadata(Names.HeadCount(arch), GgufValue.From((uint)shape.Heads));
        w.AddMetadata(Names.HeadCountKv(arch), GgufValue.From((uint)shape.KvHeads));
        w.AddMetadata(Names.AddBosToken, vocabularySource?.Metadata.GetValueOrDefault(Names.AddBosToken) ?? GgufValue.From(true));
        w.AddMetadata(Names.RmsEpsilon(arch), GgufValue.From(1e-5f));
        w.AddMetadata(Names.RopeFreqBase(arch), GgufValue.From(shape.RopeBase));
        w.AddMetadata(Names.FileType, GgufValue.From(40u)); // MOSTLY_I2_S
        if (vocabularySource is null)
        {
            w.AddMetadata(Names.TokenizerModel, GgufValue.From("gpt2"));
            w.AddMetadata(Names.Tokens, GgufValue.From(vocab!.Tokens));
            w.AddMetadata(Names.Scores, GgufValue.From(vocab.Scores));
            w.AddMetadata(Names.TokenTypes, GgufValue.From(vocab.Types));
            w.AddMetadata(Names.Merges, GgufValue.From(vocab.Merges));
            w.AddMetadata(Names.BosTokenId, GgufValue.From((uint)vocab.Bos));
            w.AddMetadata(Names.EosTokenId, GgufValue.From((uint)vocab.Eos));
            w.AddMetadata(Names.PaddingTokenId, GgufValue.From((uint)vocab.Eos));
        }
        else
        {
            foreach (var (key, value) in vocabularySource.MetadataInOrder)
                if (key.StartsWith("tokenizer.", StringComparison.Ordinal) && key != Names.AddBosToken)
                    w.AddMetadata(key, value);
        }
        w.AddMetadata(Names.QuantizationVersion, GgufValue.From(2u));

        // Tensors in the published file's order: embedding, then per block, then output_norm.
        int embd = shape.Embedding, ffn = shape.FeedForward, kv = shape.Embedding / shape.Heads * shape.KvHeads;
        int index = 0;
        ulong TensorSeed() => Mix(seed + (ulong)index++ * 0x9E3779B97F4A7C15UL);
        w.AddTensor(Names.TokenEmbedding, GgmlType.F16, [embd, vocabSize], F16Gaussian((long)embd * vocabSize, 0.05f, TensorSeed()));
        for (int l = 0; l < shape.Layers; l++)
        {
            w.AddTensor(Names.AttentionNorm(l), GgmlType.F32, [embd], Norm(embd, TensorSeed()));
            w.AddTensor(Names.AttentionQ(l), GgmlType.I2_S, [embd, embd], Ternary((long)embd * embd, TensorSeed()));
            w.AddTensor(Names.AttentionK(l), GgmlType.I2_S, [embd, kv], Ternary((long)embd * kv, TensorSeed()));
            w.AddTensor(Names.AttentionV(l), GgmlType.I2_S, [embd, kv], Ternary((long)embd * kv, TensorSeed()));
            if (shape.SubNorms) w.AddTensor(Names.AttentionSubNorm(l), GgmlType.F32, [embd], Norm(embd, TensorSeed()));
            w.AddTensor(Names.AttentionOutput(l), GgmlType.I2_S, [embd, embd], Ternary((long)embd * embd, TensorSeed()));
            w.AddTensor(Names.FfnNorm(l), GgmlType.F32, [embd], Norm(embd, TensorSeed()));
            w.AddTensor(Names.FfnGate(l), GgmlType.I2_S, [embd, ffn], Ternary((long)embd * ffn, TensorSeed()));
            w.AddTensor(Names.FfnUp(l), GgmlType.I2_S, [embd, ffn], Ternary((long)embd * ffn, TensorSeed()));
            if (shape.SubNorms) w.AddTensor(Names.FfnSubNorm(l), GgmlType.F32, [ffn], Norm(ffn, TensorSeed()));
            w.AddTensor(Names.FfnDown(l), GgmlType.I2_S, [ffn, embd], Ternary((long)ffn * embd, TensorSeed()));
        }
        w.AddTensor(Names.OutputNorm, GgmlType.F32, [embd], Norm(embd, TensorSeed()));
        if (shape.UntiedHead)
            w.AddTensor(Names.Output, GgmlType.F16, [embd, vocabSize], F16Gaussian((long)embd * vocabSize, 0.05f, TensorSeed()));
        return w;
    }

    /// <summary>Write a random model to <paramref name="path"/> (streamed; bounded memory).</summary>
    public static void Write(string path, DummyShape shape, ulong seed, string? vocabularyFrom = null)
    {
        using var source = vocabularyFrom is null ? null : GgufFile.Open(vocabularyFrom);
        Plan(shape, seed, source).WriteTo(path);
    }

    // ---- tensor data --------------------------------------------------------------------------

    private const int ChunkBytes = 1 << 20;

    /// <summary>I2_S codes, each uniform over {0, 1, 2} (−1, 0, +1), then the scale tail.</summary>
    private static Action<Stream> Ternary(long elements, ulong seed) => stream =>
    {
        var rng = new SplitMix64(seed);
        // Elements are i.i.d., so each packed byte is just four independent codes: one draw of 81 = 3⁴ combinations.
        var buffer = new byte[Math.Min(ChunkBytes, elements / 4)];
        long remaining = elements / 4;
        while (remaining > 0)
        {
            int n = (int)Math.Min(buffer.Length, remaining);
            for (int i = 0; i < n; i++)
                buffer[i] = PackedCodes[(int)((rng.Next32() * 81UL) >> 32)];
            stream.Write(buffer, 0, n);
            remaining -= n;
        }
        // Scale uniform in [0.01, 0.05], rounded to an F16-exact value; then 28 zero bytes.
        float scale = (float)(Half)(0.01f + 0.04f * rng.NextFloat());
        Span<byte> tail = stackalloc byte[32];
        tail.Clear();
        BinaryPrimitives.WriteSingleLittleEndian(tail, scale);
        stream.Write(tail);
    };

    /// <summary>The 81 bytes whose four 2-bit fields are all valid codes (0, 1 or 2).</summary>
    private static readonly byte[] PackedCodes = BuildPackedCodes();

    private static byte[] BuildPackedCodes()
    {
        var table = new byte[81];
        for (int i = 0; i < 81; i++)
            table[i] = (byte)((i % 3) << 6 | (i / 3 % 3) << 4 | (i / 9 % 3) << 2 | (i / 27));
        return table;
    }

    private static Action<Stream> F16Gaussian(long elements, float sigma, ulong seed) => stream =>
    {
        var rng = new SplitMix64(seed);
        var buffer = new Half[ChunkBytes / 2];
        long remaining = elements;
        while (remaining > 0)
        {
            int n = (int)Math.Min(buffer.Length, remaining);
            for (int i = 0; i < n; i += 2)
            {
                var (a, b) = rng.NextGaussianPair();
                buffer[i] = (Half)(sigma * a);
                if (i + 1 < n) buffer[i + 1] = (Half)(sigma * b);
            }
            stream.Write(MemoryMarshal.AsBytes(buffer.AsSpan(0, n)));
            remaining -= n;
        }
    };

    private static Action<Stream> Norm(int length, ulong seed) => stream =>
    {
        var rng = new SplitMix64(seed);
        var values = new float[length];
        for (int i = 0; i < length; i++) values[i] = 1f + 0.1f * rng.NextGaussianPair().First;
        stream.Write(MemoryMarshal.AsBytes(values.AsSpan()));
    };

    // ---- vocabulary ---------------------------------------------------------------------------

    /// <summary>A synthetic GPT-2 byte-level vocabulary.</summary>
    public sealed record Vocabulary(string[] Tokens, float[] Scores, int[] Types, string[] Merges, int Bos, int Eos);

    /// <summary>
    /// 256 byte tokens (GPT-2 byte→unicode strings), a few merges of common pairs, filler CONTROL tokens,
    /// and the Llama 3 specials at the end (BOS, EOS, EOT) when the vocabulary is large enough to hold
    /// them at their real ids; otherwise they are the last three ids.
    /// </summary>
    public static Vocabulary SyntheticVocabulary(int size)
    {
        if (size < 300) throw new ArgumentOutOfRangeException(nameof(size), size, "a synthetic vocabulary needs at least 300 tokens");
        var tokens = new string[size];
        var types = new int[size];
        var scores = new float[size];
        string[] byteText = ByteLevelStrings();
        for (int b = 0; b < 256; b++) { tokens[b] = byteText[b]; types[b] = 1; }
        // Merges of a few common English pairs ("Ġ" is the byte-level space).
        string[] merged = ["Ġt", "he", "in", "Ġa", "er", "on", "Ġthe", "re", "an", "at"];
        string[] merges = ["Ġ t", "h e", "i n", "Ġ a", "e r", "o n", "Ġt he", "r e", "a n", "a t"];
        int id = 256;
        foreach (string m in merged) { tokens[id] = m; types[id] = 1; id++; }
        bool realIds = size > 128009;
        int bos = realIds ? 128000 : size - 3, eos = bos + 1, eot = realIds ? 128009 : size - 1;
        for (; id < size; id++)
        {
            tokens[id] = $"<|dummy_{id}|>";
            types[id] = 3; // CONTROL
            scores[id] = -1000f;
        }
        tokens[bos] = "<|begin_of_text|>";
        tokens[eos] = "<|end_of_text|>";
        tokens[eot] = "<|eot_id|>";
        return new Vocabulary(tokens, scores, types, merges, bos, eos);
    }

    /// <summary>GPT-2's byte→unicode map: printable bytes map to themselves, the rest to U+0100 onwards.</summary>
    private static string[] ByteLevelStrings()
    {
        var result = new string[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            result[b] = printable ? ((char)b).ToString() : ((char)next++).ToString();
        }
        return result;
    }

    private static ulong Mix(ulong z)
    {
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9UL;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBUL;
        return z ^ (z >> 31);
    }

    /// <summary>SplitMix64: tiny, fast and reproducible on every platform and .NET version.</summary>
    private struct SplitMix64(ulong seed)
    {
        private ulong _state = seed;

        public ulong Next()
        {
            _state += 0x9E3779B97F4A7C15UL;
            return Mix(_state);
        }

        public uint Next32() => (uint)(Next() >> 32);
        public float NextFloat() => (Next() >> 40) * (1f / (1 << 24));

        /// <summary>Two independent standard normals by Box–Muller (float precision is plenty for random weights).</summary>
        public (float First, float Second) NextGaussianPair()
        {
            float u1 = ((Next() >> 40) + 1) * (1f / ((1 << 24) + 1)); // (0, 1]
            float u2 = (Next() >> 40) * (1f / (1 << 24));
            float radius = MathF.Sqrt(-2f * MathF.Log(u1));
            var (sin, cos) = MathF.SinCos(2f * MathF.PI * u2);
            return (radius * cos, radius * sin);
        }
    }
}
