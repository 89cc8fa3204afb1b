using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Inference.Tokenization;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Oracle;

/// <summary>
/// The llama, bitnet and bitnet-25 architectures against bitnet.cpp's compact oracles
/// (shared/oracle/archs), with the kernels this CPU (or the ISA switch, or qemu) gives: every logits
/// row within the README's tolerance and the 16 greedy tokens equal until a near tie.
/// </summary>
public class ArchOracleTests
{
    /// <summary>The prompt as one batch, then the oracle's generated ids one at a time.</summary>
    internal static float[] RunOracleTokens(BitNetModel model, CompactOracle oracle)
    {
        var state = model.CreateState(256);
        int n = oracle.PromptIds.Length, vocab = oracle.VocabSize;
        var logits = new float[oracle.Rows.Length * vocab];
        model.ForwardAll(state, oracle.PromptIds, logits.AsSpan(0, n * vocab));
        for (int row = n; row < oracle.Rows.Length; row++)
            model.Forward(state, [oracle.GeneratedIds[row - n]]).CopyTo(logits.AsSpan(row * vocab, vocab));
        return logits;
    }

    /// <summary>Greedy decoding from the prompt; asserts the oracle's tokens until a legitimate near tie.</summary>
    internal static string AssertGreedyTokens(BitNetModel model, CompactOracle oracle)
    {
        var state = model.CreateState(256);
        ReadOnlySpan<float> logits = model.Forward(state, oracle.PromptIds);
        for (int k = 0; k < oracle.GeneratedIds.Length; k++)
        {
            int ours = RowComparison.ArgMax(logits);
            if (ours != oracle.GeneratedIds[k])
            {
                Assert.True(oracle.IsNearTie(k, logits), $"{oracle.Name}: greedy token {k} is {ours}, bitnet.cpp's {oracle.GeneratedIds[k]}, and the oracle's gap is no near tie");
                return $"{oracle.Name}: greedy tokens equal until a near tie at token {k}";
            }
            if (k + 1 < oracle.GeneratedIds.Length) logits = model.Forward(state, [ours]);
        }
        return $"{oracle.Name}: all {oracle.GeneratedIds.Length} greedy tokens equal bitnet.cpp's";
    }

    private static void Check(string model, string prefix)
    {
        var oracle = CompactOracle.Load(prefix);
        using var loaded = BitNetModel.Load(ArchModels.PathOf(model));
        Report($"[{loaded.KernelName}] " + oracle.AssertWithinTolerance(RunOracleTokens(loaded, oracle)));
        Report($"[{loaded.KernelName}] " + AssertGreedyTokens(loaded, oracle));
    }

    [Theory]
    [InlineData(ArchModels.LlamaSmall)]
    [InlineData(ArchModels.LlamaUntied)]
    [InlineData(ArchModels.BitnetArch)]
    [InlineData(ArchModels.Bitnet25)]
    public void Plain_prompt_logits_and_greedy_tokens_match_bitnet_cpp(string model) => Check(model, model + "-i2_s");

    [Theory]
    [InlineData(ArchModels.LlamaSmall)]
    [InlineData(ArchModels.LlamaUntied)]
    [InlineData(ArchModels.Bitnet25)]
    public void Chat_prompt_logits_and_greedy_tokens_match_bitnet_cpp(string model) => Check(model, model + "-i2_s.chat");

    [Theory]
    [InlineData(ArchModels.LlamaSmall, "")]
    [InlineData(ArchModels.LlamaSmall, ".chat")]
    [InlineData(ArchModels.LlamaUntied, "")]
    [InlineData(ArchModels.LlamaUntied, ".chat")]
    [InlineData(ArchModels.BitnetArch, "")]
    [InlineData(ArchModels.Bitnet25, ".chat")]
    public void The_prompt_text_tokenizes_to_bitnet_cpp_ids(string model, string kind)
    {
        var oracle = CompactOracle.Load(model + "-i2_s" + kind);
        string prompt = OracleText.Prompt(model + "-i2_s" + kind);
        using var file = GgufFile.Open(ArchModels.PathOf(model));
        var tokenizer = Tokenizer.FromGguf(file);
        Assert.Equal(oracle.PromptIds, tokenizer.Encode(prompt, addBos: true, parseSpecial: true));
    }

    [Fact]
    public void Bitnet_25_gives_the_logits_of_bitnet_b158_bit_for_bit()
    {
        // Same tensor bytes, only the architecture string differs (ARCHS.md §3).
        var oracle = CompactOracle.Load(ArchModels.Bitnet25 + "-i2_s.chat");
        using var b25 = BitNetModel.Load(ArchModels.PathOf(ArchModels.Bitnet25));
        using var b158 = BitNetModel.Load(SharedData.OracleModelPath);
        Assert.Equal("bitnet-25", b25.Config.Architecture);
        Assert.Same(b158.Config.Graph, b25.Config.Graph);
        float[] a = RunOracleTokens(b25, oracle), b = RunOracleTokens(b158, oracle);
        Assert.True(a.AsSpan().SequenceEqual(b), "bitnet-25 and bitnet-b1.58 logits differ");
    }

    [Fact]
    public void The_bitnet_architecture_differs_from_bitnet_b158_only_by_its_activation()
    {
        // Same tensor bytes as the 2B4T-format oracle model; SiLU instead of ReLU² changes every row.
        using var bitnet = BitNetModel.Load(ArchModels.PathOf(ArchModels.BitnetArch));
        using var b158 = BitNetModel.Load(SharedData.OracleModelPath);
        Assert.Equal(FeedForwardActivation.Silu, bitnet.Config.Graph.Activation);
        Assert.Equal(b158.Config.Graph with
        {
            Name = "",
            Activation = FeedForwardActivation.Silu,
            Head = UntiedHead.Refused,
            MatrixScales = true,
            AttentionBiases = false,
            RopeFrequencyFactors = false,
            RotatesWholeHead = false
        }, bitnet.Config.Graph with { Name = "" });
        int[] prompt = CompactOracle.Load(ArchModels.BitnetArch + "-i2_s").PromptIds;
        float[] x = bitnet.Forward(bitnet.CreateState(64), prompt).ToArray(), y = b158.Forward(b158.CreateState(64), prompt).ToArray();
        Assert.False(x.AsSpan().SequenceEqual(y));
    }

    private static void Report(string message)
    {
        TestContext.Current.SendDiagnosticMessage(message);
        TestContext.Current.TestOutputHelper?.WriteLine(message);
    }
}

/// <summary>The prompt text of an oracle case, from its tokens.json.</summary>
internal static class OracleText
{
    public static string Prompt(string prefix)
    {
        using var json = System.Text.Json.JsonDocument.Parse(File.ReadAllText(ArchModels.OracleFile(prefix + ".bitnetcpp.t1.tokens.json")));
        return json.RootElement.GetProperty("prompt").GetString()!;
    }
}

/// <summary>The int8 LM heads (<c>--lm-head q8|screened</c>) on a model with an untied F16 head.</summary>
public class UntiedQuantizedHeadTests
{
    [Fact]
    public async Task Screened_untied_head_generates_bitnet_cpps_greedy_tokens()
    {
        var oracle = CompactOracle.Load(ArchModels.LlamaUntied + "-i2_s.chat");
        using var engine = BitNet.Inference.Generation.BitNetEngine.Load(new BitNet.Inference.Generation.EngineOptions
        {
            ModelPath = ArchModels.PathOf(ArchModels.LlamaUntied), LmHead = LmHeadMode.Screened, ContextLength = 128,
        });
        Assert.False(engine.Network.Weights.IsLmHeadTied);
        Assert.True(engine.Network.IsScreened);
        var ids = new List<int>();
        await foreach (var update in engine.GenerateAsync(new BitNet.Inference.Generation.GenerationRequest
        {
            PromptTokens = oracle.PromptIds, MaxTokens = oracle.GeneratedIds.Length, Sampling = BitNet.Inference.Generation.SamplingOptions.Greedy,
        }, TestContext.Current.CancellationToken))
            if (update.TokenId >= 0) ids.Add(update.TokenId);
        Assert.Equal(oracle.GeneratedIds, ids);
    }

    [Fact]
    public void Q8_untied_head_quantizes_output_weight_not_the_embedding()
    {
        var oracle = CompactOracle.Load(ArchModels.LlamaUntied + "-i2_s");
        using var q8 = BitNetModel.Load(ArchModels.PathOf(ArchModels.LlamaUntied), new ModelLoadOptions { LmHead = LmHeadMode.Q8 });
        using var f16 = BitNetModel.Load(ArchModels.PathOf(ArchModels.LlamaUntied));
        float[] a = q8.Forward(q8.CreateState(64), oracle.PromptIds).ToArray(), b = f16.Forward(f16.CreateState(64), oracle.PromptIds).ToArray();
        // Same head rows, int8 instead of F16: close logits and the same argmax (the tied embedding would give other logits entirely).
        var cmp = RowComparison.Compare(0, b, a);
        Assert.True(cmp.MaxPercentOfStd < 5, $"q8 head max |Δ| {cmp.MaxAbs} is {cmp.MaxPercentOfStd:F2} % of std");
        Assert.Equal(cmp.OracleTop1, cmp.OurTop1);
        Assert.Equal(oracle.GeneratedIds[0], cmp.OurTop1);
    }
}
