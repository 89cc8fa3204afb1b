using BitNet.Inference.Generation;
using BitNet.Inference.Sampling;

namespace BitNet.Inference.Tests.Sampling;

/// <summary>
/// Screened sampling: choosing among the candidates SelectCandidates keeps, with their exact logits,
/// gives the token that sampling over every logit gives, for any bounds that hold.
/// </summary>
public class CandidateSamplingTests
{
    private const int Vocab = 3000;

    public static TheoryData<string> Chains => new("greedy", "defaults", "top-k 1", "top-k 5 hot", "penalties", "repeat below 1", "ties", "logit bias");

    private static SamplingOptions Options(string chain, ulong seed) => chain switch
    {
        "greedy" => SamplingOptions.Greedy,
        "defaults" => new SamplingOptions { Seed = seed },
        "top-k 1" => new SamplingOptions { TopK = 1, Seed = seed },
        "top-k 5 hot" => new SamplingOptions { TopK = 5, Temperature = 3f, TopP = 1f, MinP = 0f, Seed = seed },
        "penalties" => new SamplingOptions { RepeatPenalty = 1.3f, FrequencyPenalty = 0.4f, PresencePenalty = 0.6f, RepeatLastN = 16, Seed = seed },
        "repeat below 1" => new SamplingOptions { RepeatPenalty = 0.7f, Temperature = 0f },
        "ties" => new SamplingOptions { TopK = 7, Seed = seed },
        "logit bias" => new SamplingOptions
        {
            TopK = 5, RepeatPenalty = 1.2f, RepeatLastN = 16, Seed = seed,
            LogitBias = new Dictionary<int, float> { [7] = 9f, [1500] = -100f, [2999] = 4.5f, [75] = -3f },
        },
        _ => throw new ArgumentException(chain),
    };

    [Theory]
    [MemberData(nameof(Chains))]
    public void Sampling_the_candidates_gives_the_token_of_the_full_logits(string chain)
    {
        var rng = new Random(chain.GetHashCode() & 0xFFFF);
        for (int trial = 0; trial < 60; trial++)
        {
            SamplingOptions options = Options(chain, (ulong)trial);
            var full = new Sampler(options, Vocab);
            var screened = new Sampler(options, Vocab);

            var logits = new float[Vocab];
            for (int i = 0; i < Vocab; i++)
                logits[i] = chain == "ties" ? rng.Next(0, 12) : (float)(rng.NextDouble() * 10 - 5);
            // Some history, with repeats, for the penalties to act on (the top tokens among them).
            int[] history = Enumerable.Range(0, 24).Select(_ => rng.Next(0, 40) * (Vocab / 40)).ToArray();

            // Bounds around each logit, off-centre, of random widths (some exact).
            var lower = new float[Vocab];
            var upper = new float[Vocab];
            for (int i = 0; i < Vocab; i++)
            {
                float width = (float)(rng.NextDouble() * (trial % 3));
                float shift = (float)rng.NextDouble() * width;
                lower[i] = logits[i] - shift;
                upper[i] = logits[i] + (width - shift);
            }

            var ids = new int[Vocab];
            int count = screened.SelectCandidates(lower, upper, history, ids);
            Assert.InRange(count, 1, Vocab);
            for (int i = 1; i < count; i++) Assert.True(ids[i] > ids[i - 1]);
            float[] exact = ids.Take(count).Select(id => logits[id]).ToArray();

            double coin = rng.NextDouble();
            int expected = full.Sample(logits, history, coin);
            int actual = screened.Sample(ids.AsSpan(0, count), exact, history, coin);
            Assert.Equal(expected, actual);
        }
    }

    [Fact]
    public void Exact_bounds_keep_only_the_top_k_and_its_ties()
    {
        var sampler = new Sampler(new SamplingOptions { TopK = 2, Seed = 1 }, 6);
        float[] logits = [1f, 5f, 3f, 5f, 3f, 0f];
        var ids = new int[6];
        int count = sampler.SelectCandidates((float[])logits.Clone(), (float[])logits.Clone(), [], ids);
        Assert.Equal([1, 3], ids.Take(count));

        var third = new Sampler(new SamplingOptions { TopK = 3, Seed = 1 }, 6);
        count = third.SelectCandidates((float[])logits.Clone(), (float[])logits.Clone(), [], ids);
        Assert.Equal([1, 2, 3, 4], ids.Take(count));   // 3 and 4 tie for third place: both may be needed
    }

    [Fact]
    public void Chains_that_need_every_logit_cannot_use_candidates()
    {
        Assert.False(new Sampler(new SamplingOptions { TopK = 0 }, 100).CanSampleFromCandidates);
        Assert.False(new Sampler(new SamplingOptions { TopK = 100 }, 100).CanSampleFromCandidates);
        Assert.False(new Sampler(new SamplingOptions { RepeatPenalty = -1f }, 100).CanSampleFromCandidates);
        Assert.True(new Sampler(new SamplingOptions { TopK = 0, Temperature = 0f }, 100).CanSampleFromCandidates);
        Assert.True(new Sampler(new SamplingOptions { TopK = 99 }, 100).CanSampleFromCandidates);

        var sampler = new Sampler(new SamplingOptions { TopK = 0 }, 4);
        Assert.Throws<InvalidOperationException>(() => sampler.SelectCandidates(new float[4], new float[4], [], new int[4]));
    }

    [Fact]
    public void Candidate_logits_must_match_the_ids()
    {
        var sampler = new Sampler(SamplingOptions.Greedy, 10);
        Assert.Throws<ArgumentException>(() => sampler.Sample([1, 2], [0f], [], 0.5));
        Assert.Throws<ArgumentException>(() => sampler.Sample([], [], [], 0.5));
    }
}
