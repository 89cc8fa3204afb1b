using BitNet.Inference.Generation;
using BitNet.Inference.Model;
using BitNet.Inference.Sampling;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Oracle;

/// <summary>The oracle model with a screened head, loaded once next to the F16 one.</summary>
public sealed class ScreenedModelFixture : IDisposable
{
    public BitNetModel Model { get; } = BitNetModel.Load(SharedData.OracleModelPath, OracleModelFixture.Options with { LmHead = LmHeadMode.Screened });
    public void Dispose() => Model.Dispose();
}

/// <summary>
/// The screened LM head on bitnet.cpp's oracle model (real Llama-3 vocabulary): the bounds hold for
/// every row at every step, the candidates' exact logits are the F16 head's bit for bit, and every
/// token chosen — greedy or sampled — is the token the F16 head gives.
/// </summary>
public class ScreenedHeadTests(OracleModelFixture f16, ScreenedModelFixture screened, ITestOutputHelper output)
    : IClassFixture<OracleModelFixture>, IClassFixture<ScreenedModelFixture>
{
    [Theory]
    [InlineData("capital")]
    [InlineData("chat")]
    public void Bounds_hold_for_every_row_and_candidates_get_the_F16_logits(string caseName)
    {
        OracleCase oracle = OracleCase.ByName(caseName);
        int vocab = f16.Model.Config.VocabSize;
        var reference = f16.Model.CreateState(128);
        var state = screened.Model.CreateState(128);
        var sampler = new Sampler(new SamplingOptions { Seed = 1 }, vocab);   // top-k 40
        int[] fed = oracle.FedTokens;
        int steps = 0;
        long candidates = 0;
        int most = 0;
        for (int at = oracle.PromptIds.Length; at <= fed.Length; at++)
        {
            // The prompt as one batch, then one fed token at a time (decode).
            ReadOnlySpan<int> tokens = at == oracle.PromptIds.Length ? fed.AsSpan(0, at) : fed.AsSpan(at - 1, 1);
            float[] expected = f16.Model.Forward(reference, tokens).ToArray();
            Assert.True(screened.Model.ForwardScreened(state, tokens));
            Span<float> lower = state.ScreenLower, upper = state.ScreenUpper;
            for (int v = 0; v < vocab; v++)
                Assert.True(lower[v] <= expected[v] && expected[v] <= upper[v],
                    $"step {steps}, row {v}: {expected[v]} outside [{lower[v]}, {upper[v]}]");

            int count = sampler.SelectCandidates(lower, upper, fed.AsSpan(0, at), state.CandidateIds);
            var exact = new float[count];
            screened.Model.ExactLogits(state, state.CandidateIds[..count], exact);
            for (int i = 0; i < count; i++)
                Assert.Equal(BitConverter.SingleToInt32Bits(expected[state.CandidateIds[i]]), BitConverter.SingleToInt32Bits(exact[i]));
            steps++;
            candidates += count;
            most = Math.Max(most, count);
        }
        output.WriteLine($"{caseName}: {steps} steps, top-40 candidates {candidates / (double)steps:F1} on average, {most} at most, of {vocab} rows");
    }

    [Fact]
    public void Full_logits_of_a_screened_model_are_the_F16_logits()
    {
        int[] prompt = OracleCase.Capital.PromptIds;
        var reference = f16.Model.CreateState(64);
        var state = screened.Model.CreateState(64);
        Assert.Equal(f16.Model.Forward(reference, prompt).ToArray(), screened.Model.Forward(state, prompt).ToArray());
        Assert.Equal(f16.Model.Forward(reference, [12366]).ToArray(), screened.Model.Forward(state, [12366]).ToArray());
    }

    public static TheoryData<string> Chains => new("greedy", "defaults", "hot with penalties");

    [Theory]
    [MemberData(nameof(Chains))]
    public void Generated_tokens_are_the_F16_heads_tokens(string chain)
    {
        SamplingOptions options = chain switch
        {
            "greedy" => SamplingOptions.Greedy,
            "defaults" => new SamplingOptions { Seed = 42 },
            _ => new SamplingOptions { Temperature = 1.5f, TopK = 60, TopP = 0.99f, MinP = 0f, RepeatPenalty = 1.2f, FrequencyPenalty = 0.2f, Seed = 7 },
        };
        int[] f16Tokens = Generate(f16.Model, options, out _);
        int[] screenedTokens = Generate(screened.Model, options, out long exactRows);
        Assert.Equal(f16Tokens, screenedTokens);
        Assert.True(exactRows > 0, "the screened model should have computed candidate rows, not the full head");
        output.WriteLine($"{chain}: {string.Join(' ', screenedTokens)}; {exactRows / (double)screenedTokens.Length:F1} exact rows per token");
        if (chain == "greedy")
            Assert.Equal(OracleCase.Capital.GeneratedIds.Take(16), screenedTokens.Take(16));
    }

    private static int[] Generate(BitNetModel model, SamplingOptions options, out long exactRows)
    {
        var state = model.CreateState(128);
        var sampler = new Sampler(options, model.Config.VocabSize);
        var history = new List<int>(OracleCase.Capital.PromptIds);
        var tokens = new int[32];
        for (int i = 0; i < tokens.Length; i++)
        {
            int[] all = history.ToArray();
            tokens[i] = NextToken.Evaluate(model, state, sampler, i == 0 ? all : all.AsSpan(all.Length - 1), all, allowScreening: true, out _);
            history.Add(tokens[i]);
        }
        exactRows = state.ExactRowsComputed;
        return tokens;
    }
}
