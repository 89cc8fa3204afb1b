using BitNet.Inference.Gguf;
using BitNet.Inference.Kernels;
using BitNet.Inference.Model;
using BitNet.Inference.Tests.Gguf;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Model;

/// <summary>Mainline llama.cpp's TQ1_0/TQ2_0 ternary blocks: decoding, and models stored in them.</summary>
public class TernaryFormatTests
{
    private static sbyte[] RandomTernary(int n, int seed)
    {
        var rng = new Random(seed);
        var v = new sbyte[n];
        for (int i = 0; i < n; i++) v[i] = (sbyte)rng.Next(-1, 2);
        return v;
    }

    [Theory]
    [InlineData(GgmlType.TQ1_0)]
    [InlineData(GgmlType.TQ2_0)]
    public void Block_encoding_round_trips_every_value_and_the_scale(GgmlType type)
    {
        for (int seed = 0; seed < 20; seed++)
        {
            sbyte[] values = RandomTernary(256, seed);
            var block = new byte[type == GgmlType.TQ1_0 ? TernaryFormats.Tq1BlockBytes : TernaryFormats.Tq2BlockBytes];
            var decoded = new sbyte[256];
            Half d = (Half)0.0375f;
            if (type == GgmlType.TQ1_0) TernaryFormats.EncodeTq1_0(values, d, block); else TernaryFormats.EncodeTq2_0(values, d, block);
            Half back = type == GgmlType.TQ1_0 ? TernaryFormats.DecodeTq1_0(block, decoded) : TernaryFormats.DecodeTq2_0(block, decoded);
            Assert.Equal(values, decoded);
            Assert.Equal(d, back);
        }
    }

    [Fact]
    public void Tq2_0_places_element_by_half_bit_pair_and_lane()
    {
        var values = new sbyte[256];
        values[128 + 2 * 32 + 5] = 1; // half 1, bit pair 2, lane 5 → byte 32 + 5, bits 5..4 hold code 2
        var block = new byte[66];
        TernaryFormats.EncodeTq2_0(values, Half.One, block);
        Assert.Equal(2, (block[37] >> 4) & 3);
        Assert.Equal(1, block[0] & 3); // zero is code 1
    }

    /// <summary>Rewrite the oracle model with every I2_S matrix stored as TQ1_0 or TQ2_0 (same values, block scale = tensor scale).</summary>
    private static void WriteAsTernaryBlocks(string path, GgmlType target)
    {
        using var source = GgufFile.Open(SharedData.OracleModelPath);
        var w = new GgufWriter();
        foreach (var (key, value) in source.MetadataInOrder) w.AddMetadata(key, value);
        foreach (var t in source.Tensors)
        {
            byte[] data = source.GetTensorBytes(t).ToArray();
            if (t.Type != GgmlType.I2_S) { w.AddTensor(t.Name, t.Type, t.Shape, data); continue; }
            long n = t.ElementCount;
            var values = new sbyte[n];
            for (long e = 0; e < n; e++) values[e] = (sbyte)I2sLayout.CodeToValue(I2sLayout.Code(data, e));
            Half d = (Half)I2sLayout.ReadScale(data, n);
            int blockBytes = target == GgmlType.TQ1_0 ? TernaryFormats.Tq1BlockBytes : TernaryFormats.Tq2BlockBytes;
            var blocks = new byte[n / 256 * blockBytes];
            for (long b = 0; b < n / 256; b++)
            {
                var dest = blocks.AsSpan((int)(b * blockBytes), blockBytes);
                if (target == GgmlType.TQ1_0) TernaryFormats.EncodeTq1_0(values.AsSpan((int)(b * 256), 256), d, dest);
                else TernaryFormats.EncodeTq2_0(values.AsSpan((int)(b * 256), 256), d, dest);
            }
            w.AddTensor(t.Name, target, t.Shape, blocks);
        }
        w.WriteTo(path);
    }

    [Theory]
    [InlineData(GgmlType.TQ1_0, WeightStorage.Auto)]
    [InlineData(GgmlType.TQ2_0, WeightStorage.Auto)]
    [InlineData(GgmlType.TQ2_0, WeightStorage.Move)]     // the repacked matrices are not in the mapping: only the head moves
    [InlineData(GgmlType.TQ1_0, WeightStorage.Memory)]
    public void Model_stored_as_ternary_blocks_gives_the_same_logits_as_i2s(GgmlType type, WeightStorage storage)
    {
        using var temp = new TempFolder();
        string path = temp.File("tq.gguf");
        WriteAsTernaryBlocks(path, type);
        int[] tokens = [128000, 791, 6864, 315, 9822, 374];
        const int vocab = 128256;
        var expected = new float[tokens.Length * vocab];
        var actual = new float[tokens.Length * vocab];
        using (var i2s = BitNetModel.Load(SharedData.OracleModelPath))
            i2s.ForwardAll(i2s.CreateState(16), tokens, expected);
        using var tq = BitNetModel.Load(path, new ModelLoadOptions { Storage = storage });
        Assert.Equal(type, tq.Weights.Layers[0].Query.SourceType);
        Assert.Null(tq.Weights.Layers[0].Query.BlockScales); // one common scale → the I2_S path exactly
        tq.ForwardAll(tq.CreateState(16), tokens, actual);
        Assert.True(expected.AsSpan().SequenceEqual(actual), "TQ model logits differ from the I2_S model's");
        if (tq.Storage == WeightStorage.Move && BitNet.Inference.Memory.MappingMove.IsSupported)
        {
            Assert.True(SpinWait.SpinUntil(() => tq.WeightMove.IsCompleted, TimeSpan.FromMinutes(1)));
            Assert.True(tq.WeightMove.IsCompletedSuccessfully && tq.MovedWeightBytes >= 2L * vocab * 256, $"{tq.MovedWeightBytes} bytes moved");
            tq.ForwardAll(tq.CreateState(16), tokens, actual);
            Assert.True(expected.AsSpan().SequenceEqual(actual), "TQ model logits differ from the I2_S model's after the move");
        }
    }

    [Fact]
    public void Blocks_with_different_scales_are_scaled_per_block()
    {
        // One 2 × 512 TQ2_0 matrix whose four blocks have scales 0.5, 1, 2 and 4.
        using var temp = new TempFolder();
        sbyte[] values = RandomTernary(1024, 3);
        float[] scales = [0.5f, 1f, 2f, 4f];
        var blocks = new byte[4 * 66];
        for (int b = 0; b < 4; b++)
            TernaryFormats.EncodeTq2_0(values.AsSpan(b * 256, 256), (Half)scales[b], blocks.AsSpan(b * 66, 66));
        var w = new GgufWriter();
        w.AddTensor("m", GgmlType.TQ2_0, [512, 2], blocks);
        w.WriteTo(temp.File("m.gguf"));
        using var file = GgufFile.Open(temp.File("m.gguf"));
        var matrix = TernaryMatrix.FromTernaryBlocks(file, file.GetTensor("m"));
        Assert.Equal(scales, matrix.BlockScales);

        var x = new float[512];
        var rng = new Random(9);
        for (int i = 0; i < x.Length; i++) x[i] = (float)(rng.NextDouble() * 2 - 1);
        var act = new QuantizedActivations(1, 512);
        act.Quantize(x, 1, 512);
        var y = new float[2];
        MatMul.TernaryRows(matrix, act, y, 0, 2);
        for (int r = 0; r < 2; r++)
        {
            double expected = 0;
            for (int k = 0; k < 512; k++) expected += scales[(r * 512 + k) / 256] * values[r * 512 + k] * act.Values[k] / (double)act.Scales[0];
            Assert.Equal(expected, y[r], 1e-4);
        }
    }

    /// <summary>The tiny model with every I2_S matrix stored as float values t·scale (llama.cpp's f32/f16/bf16 conversions).</summary>
    private static void WriteAsFloats(string path, GgmlType target, bool spoil = false)
    {
        using var source = GgufFile.Open(TinyModels.Tiny);
        var w = new GgufWriter();
        foreach (var (key, value) in source.MetadataInOrder) w.AddMetadata(key, value);
        foreach (var t in source.Tensors)
        {
            byte[] data = source.GetTensorBytes(t).ToArray();
            if (t.Type != GgmlType.I2_S) { w.AddTensor(t.Name, t.Type, t.Shape, data); continue; }
            long n = t.ElementCount;
            float scale = I2sLayout.ReadScale(data, n);
            var bytes = new byte[n * (target == GgmlType.F32 ? 4 : 2)];
            for (long e = 0; e < n; e++)
            {
                float v = I2sLayout.CodeToValue(I2sLayout.Code(data, e)) * scale;
                if (spoil && e == 77) v = 0.5f * scale;
                if (target == GgmlType.F32) BitConverter.TryWriteBytes(bytes.AsSpan((int)e * 4), v);
                else if (target == GgmlType.F16) BitConverter.TryWriteBytes(bytes.AsSpan((int)e * 2), (Half)v);
                else BitConverter.TryWriteBytes(bytes.AsSpan((int)e * 2), (ushort)(BitConverter.SingleToInt32Bits(v) >> 16));
            }
            w.AddTensor(t.Name, target, t.Shape, bytes);
        }
        w.WriteTo(path);
    }

    [Theory]
    [InlineData(GgmlType.F32)]
    [InlineData(GgmlType.F16)]
    [InlineData(GgmlType.BF16)]
    public void Ternary_valued_float_matrices_give_the_same_logits_as_i2s(GgmlType type)
    {
        using var temp = new TempFolder();
        string path = temp.File("f.gguf");
        WriteAsFloats(path, type);
        int[] tokens = [297, 1, 2, 3];
        var expected = new float[tokens.Length * 300];
        var actual = new float[tokens.Length * 300];
        using (var i2s = BitNetModel.Load(TinyModels.Tiny))
            i2s.ForwardAll(i2s.CreateState(8), tokens, expected);
        using var model = BitNetModel.Load(path);
        Assert.Equal(type, model.Weights.Layers[1].Down.SourceType);
        model.ForwardAll(model.CreateState(8), tokens, actual);
        if (type == GgmlType.BF16)
        {
            // BF16 keeps 8 mantissa bits, so the stored magnitude is the scale rounded to BF16: same codes, nearby logits.
            using var i2s = GgufFile.Open(TinyModels.Tiny);
            var q = i2s.GetTensor("blk.0.attn_q.weight");
            float scale = I2sLayout.ReadScale(i2s.GetTensorBytes(q), q.ElementCount);
            Assert.Equal(BitConverter.Int32BitsToSingle(BitConverter.SingleToInt32Bits(scale) >> 16 << 16), model.Weights.Layers[0].Query.Scale);
            Assert.All(actual, v => Assert.True(float.IsFinite(v)));
        }
        else Assert.Equal(expected, actual);
    }

    [Fact]
    public void Float_matrix_that_is_not_ternary_is_rejected()
    {
        using var temp = new TempFolder();
        string path = temp.File("f.gguf");
        WriteAsFloats(path, GgmlType.F32, spoil: true);
        var error = Assert.Throws<ModelFormatException>(() => BitNetModel.Load(path).Dispose());
        Assert.Contains("tensor 'blk.0.attn_q.weight' (F32) is not ternary: element [0, 77]", error.Message);
    }
}
