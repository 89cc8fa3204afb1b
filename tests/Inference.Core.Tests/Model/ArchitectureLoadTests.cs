using BitNet.Inference.Dummy;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Inference.Tests.Gguf;
using Names = BitNet.Inference.Model.GgufTensorNames;

namespace BitNet.Inference.Tests.Model;

/// <summary>
/// The llama and bitnet architectures on small generated files: what each graph reads (biases, scales,
/// rope_freqs, RoPE scaling, the head) and what it refuses, with the key or tensor named.
/// </summary>
public class ArchitectureLoadTests
{
    private static readonly DummyShape TinyLlama = DummyShape.Tiny with { Name = "tiny-llama", Architecture = "llama", UntiedHead = true };
    private static readonly int[] Prompt = [297, 5, 200, 17, 42];

    /// <summary>A generated file, its metadata edited and extra F32 tensors appended.</summary>
    private static string Build(TempFolder temp, DummyShape shape, Func<string, GgufValue, GgufValue?>? meta = null,
        IEnumerable<(string Name, float[] Values)>? extra = null, Func<string, bool>? drop = null)
    {
        var plan = DummyModel.Plan(shape, seed: 7);
        var w = new GgufWriter();
        foreach (var (key, value) in plan.Metadata)
            if ((meta is null ? value : meta(key, value)) is { } kept) w.AddMetadata(key, kept);
        foreach (var t in plan.Tensors)
            if (drop?.Invoke(t.Name) != true) w.AddTensor(t.Name, t.Type, t.Shape, t.WriteData);
        foreach (var (name, values) in extra ?? [])
            w.AddTensor(name, GgmlType.F32, [values.Length], System.Runtime.InteropServices.MemoryMarshal.AsBytes(values.AsSpan()).ToArray());
        string path = temp.File($"m{Guid.NewGuid():N}.gguf");
        w.WriteTo(path);
        return path;
    }

    private static float[] Logits(string path)
    {
        using var model = BitNetModel.Load(path, new ModelLoadOptions { Threads = 1 });
        return model.Forward(model.CreateState(32), Prompt).ToArray();
    }

    [Fact]
    public void A_llama_file_runs_build_llama_with_its_untied_head()
    {
        using var temp = new TempFolder();
        string path = Build(temp, TinyLlama);
        using var model = BitNetModel.Load(path);
        Assert.Same(GraphFamily.Llama, model.Config.Graph);
        Assert.False(model.Weights.IsLmHeadTied);
        Assert.All(model.Weights.Layers, l => Assert.Null(l.AttentionSubNorm));
        var all = new float[Prompt.Length * 300];
        model.ForwardAll(model.CreateState(32), Prompt, all);
        Assert.All(all, v => Assert.True(float.IsFinite(v)));

        // The untied head is what computes the logits: without output.weight the tied embedding gives others.
        float[] untied = Logits(path), tied = Logits(Build(temp, TinyLlama, drop: n => n == Names.Output));
        Assert.False(untied.AsSpan().SequenceEqual(tied));
    }

    [Fact]
    public void The_bitnet_architecture_refuses_an_output_weight()
    {
        using var temp = new TempFolder();
        var shape = DummyShape.Tiny with { Architecture = "bitnet", UntiedHead = true };
        var error = Assert.Throws<ModelFormatException>(() => BitNetModel.Load(Build(temp, shape)).Dispose());
        Assert.Contains("tensor 'output.weight' is not part of the 'bitnet' architecture", error.Message);
    }

    [Fact]
    public void Biases_and_scales_change_the_logits_only_where_the_graph_reads_them()
    {
        using var temp = new TempFolder();
        float[] plain = Logits(Build(temp, TinyLlama));
        var bias = Enumerable.Range(0, 128).Select(i => 0.01f * (i % 7 - 3)).ToArray();
        Assert.False(plain.AsSpan().SequenceEqual(Logits(Build(temp, TinyLlama, extra: [(Names.Bias(Names.AttentionOutput(0)), bias)]))));
        Assert.True(plain.AsSpan().SequenceEqual(Logits(Build(temp, TinyLlama, extra: [(Names.Bias(Names.AttentionOutput(0)), new float[128])]))));
        var wrong = Assert.Throws<ModelFormatException>(() => Logits(Build(temp, TinyLlama, extra: [(Names.Bias(Names.AttentionQ(0)), new float[64])])));
        Assert.Contains("tensor 'blk.0.attn_q.bias' has shape [64], expected [128]", wrong.Message);

        var bitnet = DummyShape.Tiny with { Architecture = "bitnet" };
        float[] unscaled = Logits(Build(temp, bitnet));
        Assert.False(unscaled.AsSpan().SequenceEqual(Logits(Build(temp, bitnet, extra: [(Names.Scale(Names.FfnDown(1)), [0.5f])]))));
        Assert.True(unscaled.AsSpan().SequenceEqual(Logits(Build(temp, bitnet, extra: [(Names.Scale(Names.FfnDown(1)), [1f])]))));
    }

    [Fact]
    public void Rope_frequency_factors_and_linear_scaling_divide_the_angles()
    {
        using var temp = new TempFolder();
        float[] plain = Logits(Build(temp, TinyLlama));
        int pairs = 128 / 2 / 2;   // head dim 64
        Assert.True(plain.AsSpan().SequenceEqual(Logits(Build(temp, TinyLlama, extra: [(Names.RopeFrequencies, Enumerable.Repeat(1f, pairs).ToArray())]))));
        float[] factors = Logits(Build(temp, TinyLlama, extra: [(Names.RopeFrequencies, Enumerable.Repeat(2f, pairs).ToArray())]));
        Assert.False(plain.AsSpan().SequenceEqual(factors));
        // Halving every angle by rope_freqs = 2 is linear scaling by a factor of 2.
        string linear = BuildWithKeys(temp, (Names.RopeScalingType("llama"), GgufValue.From("linear")), (Names.RopeScalingFactor("llama"), GgufValue.From(2f)));
        using (var model = BitNetModel.Load(linear)) Assert.Equal(0.5f, model.Config.RopeFrequencyScale);
        Assert.True(factors.AsSpan().SequenceEqual(Logits(linear)));

        string yarn = BuildWithKeys(temp, (Names.RopeScalingType("llama"), GgufValue.From("yarn")));
        Assert.Contains("'llama.rope.scaling.type' = 'yarn' is not supported", Assert.Throws<ModelFormatException>(() => Logits(yarn)).Message);
    }

    [Fact]
    public void Heads_wider_than_embedding_over_head_count_are_refused_by_name()
    {
        using var temp = new TempFolder();
        string path = BuildWithKeys(temp, (Names.KeyLength("llama"), GgufValue.From(128u)));
        var error = Assert.Throws<ModelFormatException>(() => Logits(path));
        Assert.Contains("'llama.attention.key_length' = 128, but only heads of embedding / head count = 64 are supported", error.Message);
    }

    private static string BuildWithKeys(TempFolder temp, params (string Key, GgufValue Value)[] keys)
    {
        var plan = DummyModel.Plan(TinyLlama, seed: 7);
        var w = new GgufWriter();
        foreach (var (key, value) in plan.Metadata) w.AddMetadata(key, value);
        foreach (var (key, value) in keys) w.AddMetadata(key, value);
        foreach (var t in plan.Tensors) w.AddTensor(t.Name, t.Type, t.Shape, t.WriteData);
        string path = temp.File($"k{Guid.NewGuid():N}.gguf");
        w.WriteTo(path);
        return path;
    }

    [Fact]
    public void The_llama3_8b_shape_plans_the_published_layout_and_size()
    {
        var plan = DummyModel.Plan(DummyShape.Llama3_8B, seed: 1);
        var byName = plan.Tensors.ToDictionary(t => t.Name);
        Assert.Equal(2 + 32 * 9 + 1, plan.Tensors.Count);                       // no sub-norms; output.weight
        Assert.Equal([4096L, 128256L], byName[Names.Output].Shape);
        Assert.Equal(GgmlType.F16, byName[Names.Output].Type);
        Assert.Equal([4096L, 1024L], byName[Names.AttentionK(31)].Shape);      // 8 KV heads of 128
        Assert.Equal([14336L, 4096L], byName[Names.FfnDown(0)].Shape);
        Assert.False(byName.ContainsKey(Names.AttentionSubNorm(0)));
        Assert.InRange(plan.PlanFileSize(), 3_840_000_000L, 3_860_000_000L);   // about 3.85 GB
    }

    [Fact]
    public void Adjacent_pair_rope_rotates_elements_two_i_and_two_i_plus_one()
    {
        float[] q = Enumerable.Range(0, 8).Select(i => (float)(i + 1)).ToArray();
        float[] expected = (float[])q.Clone();
        const int position = 3;
        for (int i = 0; i < 4; i++)
        {
            float theta = position * MathF.Pow(MathF.Pow(10000f, -2f / 8), i);
            float a = expected[2 * i], b = expected[2 * i + 1];
            expected[2 * i] = a * MathF.Cos(theta) - b * MathF.Sin(theta);
            expected[2 * i + 1] = a * MathF.Sin(theta) + b * MathF.Cos(theta);
        }
        Rope.Apply(new RopeSettings(RopeStyle.AdjacentPairs, 8, 8, 10000f), q, 1, [], 0, position);
        for (int i = 0; i < 8; i++) Assert.Equal(expected[i], q[i], 1e-5f);
    }
}
