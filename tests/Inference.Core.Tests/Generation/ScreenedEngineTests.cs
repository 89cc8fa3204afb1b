using BitNet.Inference.Generation;
using BitNet.Inference.Model;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Generation;

/// <summary>An engine whose LM head is screened answers every request exactly as the F16 engine does.</summary>
public class ScreenedEngineTests(EngineFixture f16) : IClassFixture<EngineFixture>
{
    private static BitNetEngine LoadScreened() =>
        BitNetEngine.Load(new EngineOptions { ModelPath = SharedData.OracleModelPath, ContextLength = 128, Threads = 2, LmHead = LmHeadMode.Screened });

    public static TheoryData<string, float, int, float> Requests => new()
    {
        { "The capital of France is", 0f, 40, 1f },
        { "Bees communicate the direction", 0.8f, 40, 1f },
        { "Once upon a time", 1.3f, 10, 1.15f },
    };

    [Theory]
    [MemberData(nameof(Requests))]
    public async Task Generations_equal_the_F16_engines_token_for_token(string prompt, float temperature, int topK, float repeatPenalty)
    {
        using var screened = LoadScreened();
        var request = new GenerationRequest
        {
            PromptTokens = f16.Engine.Tokenize(prompt),
            MaxTokens = 24,
            Sampling = new SamplingOptions { Temperature = temperature, TopK = topK, RepeatPenalty = repeatPenalty, Seed = 5 },
            StopOnEndOfGeneration = false,
        };
        var expected = await EngineFixture.Collect(f16.Engine, request);
        var actual = await EngineFixture.Collect(screened, request);
        Assert.Equal(EngineFixture.TokenIds(expected.Updates), EngineFixture.TokenIds(actual.Updates));
        Assert.Equal(string.Concat(expected.Updates.Select(u => u.Text)), string.Concat(actual.Updates.Select(u => u.Text)));
    }

    [Fact]
    public async Task Requests_that_need_every_logit_get_the_full_F16_head()
    {
        using var screened = LoadScreened();
        // Log-probabilities normalise over the whole vocabulary; top_k 0 keeps it all.
        foreach (var request in new[]
        {
            new GenerationRequest { PromptTokens = f16.Engine.Tokenize("Hello"), MaxTokens = 6, Sampling = SamplingOptions.Greedy, TopLogprobs = 3 },
            new GenerationRequest { PromptTokens = f16.Engine.Tokenize("Hello"), MaxTokens = 6, Sampling = new SamplingOptions { TopK = 0, Seed = 9 } },
        })
        {
            var expected = await EngineFixture.Collect(f16.Engine, request);
            var actual = await EngineFixture.Collect(screened, request);
            Assert.Equal(EngineFixture.TokenIds(expected.Updates), EngineFixture.TokenIds(actual.Updates));
            var expectedLogprobs = expected.Updates.Where(u => u.Logprobs is not null).SelectMany(u => u.Logprobs!).ToArray();
            var actualLogprobs = actual.Updates.Where(u => u.Logprobs is not null).SelectMany(u => u.Logprobs!).ToArray();
            Assert.Equal(expectedLogprobs.Length, actualLogprobs.Length);
            for (int i = 0; i < expectedLogprobs.Length; i++)
            {
                Assert.Equal(expectedLogprobs[i].Chosen.Logprob, actualLogprobs[i].Chosen.Logprob);
                Assert.Equal(expectedLogprobs[i].Top.Select(t => t.Token), actualLogprobs[i].Top.Select(t => t.Token));
            }
        }
    }
}
