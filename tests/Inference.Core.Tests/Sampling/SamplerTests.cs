using BitNet.Inference.Generation;
using BitNet.Inference.Sampling;

namespace BitNet.Inference.Tests.Sampling;

public class SamplerTests
{
    private static readonly SamplingOptions NoFilters = new() { Temperature = 1f, TopK = 0, TopP = 1f, MinP = 0f, Seed = 1 };

    [Fact]
    public void Greedy_picks_the_largest_logit_and_the_lowest_id_on_a_tie()
    {
        var sampler = new Sampler(SamplingOptions.Greedy, 5);
        Assert.Equal(2, sampler.Sample([0f, 1f, 3f, 3f, -1f], []));
        Assert.Equal(0, sampler.Sample([7f, 7f, 7f, 7f, 7f], []));
    }

    [Fact]
    public void Logit_bias_is_added_before_the_choice_and_minus_100_bans_a_token()
    {
        float[] logits = [0f, 1f, 3f, 2f, -1f];
        Assert.Equal(3, new Sampler(SamplingOptions.Greedy with { LogitBias = new Dictionary<int, float> { [2] = -100f } }, 5).Sample(logits, []));
        Assert.Equal(4, new Sampler(SamplingOptions.Greedy with { LogitBias = new Dictionary<int, float> { [4] = 4.5f, [9] = 100f } }, 5).Sample(logits, []));
        // Biased logits go through the filters: with top_k 1 only the boosted token is left to draw.
        Assert.Equal(0, new Sampler(NoFilters with { TopK = 1, LogitBias = new Dictionary<int, float> { [0] = 10f } }, 5).Sample(logits, [], 0.99));
    }

    [Fact]
    public void Coin_walks_the_cumulative_distribution_of_the_softmax()
    {
        // logits ln(1), ln(2), ln(3), ln(4) → probabilities 0.1, 0.2, 0.3, 0.4, sorted best first: 3, 2, 1, 0.
        float[] logits = [0f, MathF.Log(2), MathF.Log(3), MathF.Log(4)];
        var sampler = new Sampler(NoFilters, 4);
        Assert.Equal(3, sampler.Sample(logits, [], 0.00));
        Assert.Equal(3, sampler.Sample(logits, [], 0.39));
        Assert.Equal(2, sampler.Sample(logits, [], 0.41));
        Assert.Equal(2, sampler.Sample(logits, [], 0.69));
        Assert.Equal(1, sampler.Sample(logits, [], 0.71));
        Assert.Equal(0, sampler.Sample(logits, [], 0.91));
        Assert.Equal(0, sampler.Sample(logits, [], 0.999999));
    }

    [Fact]
    public void Temperature_sharpens_the_distribution_after_the_filters()
    {
        // At T = 0.5 the weights become 1, 4, 9, 16 (sum 30): token 3 covers coins below 16/30 = 0.533.
        float[] logits = [0f, MathF.Log(2), MathF.Log(3), MathF.Log(4)];
        var sampler = new Sampler(NoFilters with { Temperature = 0.5f }, 4);
        Assert.Equal(3, sampler.Sample(logits, [], 0.52));
        Assert.Equal(2, sampler.Sample(logits, [], 0.54));
        Assert.Equal(2, sampler.Sample(logits, [], 0.83));
        Assert.Equal(1, sampler.Sample(logits, [], 0.84));
    }

    [Fact]
    public void Top_k_keeps_only_the_k_best_and_renormalizes()
    {
        // Top 2 of {0.1, 0.2, 0.3, 0.4} → 3 and 2 with 4/7 and 3/7.
        float[] logits = [0f, MathF.Log(2), MathF.Log(3), MathF.Log(4)];
        var sampler = new Sampler(NoFilters with { TopK = 2 }, 4);
        Assert.Equal(3, sampler.Sample(logits, [], 0.56));
        Assert.Equal(2, sampler.Sample(logits, [], 0.58));
        Assert.Equal(2, sampler.Sample(logits, [], 0.9999));
    }

    [Fact]
    public void Top_k_breaks_ties_toward_the_lower_id()
    {
        float[] logits = [1f, 5f, 5f, 5f, 0f];
        var sampler = new Sampler(NoFilters with { TopK = 1 }, 5);
        Assert.Equal(1, sampler.Sample(logits, [], 0.99));
    }

    [Fact]
    public void Top_p_keeps_the_smallest_prefix_reaching_p_of_the_untempered_mass()
    {
        // 0.4 + 0.3 = 0.7 ≥ 0.65: tokens 3 and 2 survive, renormalized to 4/7 and 3/7, even at a high temperature.
        float[] logits = [0f, MathF.Log(2), MathF.Log(3), MathF.Log(4)];
        var sampler = new Sampler(NoFilters with { TopP = 0.65f, Temperature = 1f }, 4);
        Assert.Equal(3, sampler.Sample(logits, [], 0.57));
        Assert.Equal(2, sampler.Sample(logits, [], 0.99));

        var hot = new Sampler(NoFilters with { TopP = 0.65f, Temperature = 100f }, 4);
        Assert.Equal(2, hot.Sample(logits, [], 0.99));
    }

    [Fact]
    public void Min_p_drops_tokens_below_the_fraction_of_the_best()
    {
        // min_p 0.3 of p_max 0.4 is 0.12: token 0 (0.1) goes; 1, 2, 3 stay with 2/9, 3/9, 4/9.
        float[] logits = [0f, MathF.Log(2), MathF.Log(3), MathF.Log(4)];
        var sampler = new Sampler(NoFilters with { MinP = 0.3f }, 4);
        Assert.Equal(1, sampler.Sample(logits, [], 0.9999));
        Assert.Equal(1, sampler.Sample(logits, [], 0.80));
        Assert.Equal(2, sampler.Sample(logits, [], 0.76));
    }

    [Fact]
    public void Repeat_penalty_divides_positive_and_multiplies_negative_logits_once_per_distinct_token()
    {
        // Token 0 (logit 2) seen three times → 2/2 = 1 < token 1's 1.5. Token 2 (−1) → −2.
        var options = SamplingOptions.Greedy with { RepeatPenalty = 2f, RepeatLastN = 8 };
        var sampler = new Sampler(options, 3);
        Assert.Equal(1, sampler.Sample([2f, 1.5f, -1f], [0, 0, 0]));
        // Outside the window the token is not penalized.
        var narrow = new Sampler(options with { RepeatLastN = 1 }, 3);
        Assert.Equal(0, narrow.Sample([2f, 1.5f, -1f], [0, 2]));
    }

    [Fact]
    public void Frequency_and_presence_penalties_subtract_count_times_f_plus_p()
    {
        // Token 0: 3 − (2·0.5 + 0.6) = 1.4 < token 1's 1.5.
        var options = SamplingOptions.Greedy with { FrequencyPenalty = 0.5f, PresencePenalty = 0.6f };
        Assert.Equal(1, new Sampler(options, 3).Sample([3f, 1.5f, 0f], [0, 0]));
        // Only one occurrence: 3 − 1.1 = 1.9 > 1.5.
        Assert.Equal(0, new Sampler(options, 3).Sample([3f, 1.5f, 0f], [0]));
    }

    [Fact]
    public void Same_seed_gives_the_same_sequence_and_another_seed_a_different_one()
    {
        var rng = new Random(5);
        var logits = new float[1000];
        for (int i = 0; i < logits.Length; i++) logits[i] = (float)rng.NextDouble() * 3f;
        var options = new SamplingOptions { Temperature = 1.5f, TopK = 0, TopP = 1f, MinP = 0f };

        int[] Run(ulong seed)
        {
            var sampler = new Sampler(options with { Seed = seed }, logits.Length);
            return Enumerable.Range(0, 50).Select(_ => sampler.Sample(logits, [])).ToArray();
        }

        Assert.Equal(Run(42), Run(42));
        Assert.NotEqual(Run(42), Run(43));
    }

    [Fact]
    public void Draws_follow_the_distribution_over_many_samples()
    {
        float[] logits = [0f, MathF.Log(2), MathF.Log(3), MathF.Log(4)];
        var sampler = new Sampler(NoFilters with { Seed = 7 }, 4);
        var counts = new int[4];
        for (int i = 0; i < 40_000; i++) counts[sampler.Sample(logits, [])]++;
        for (int t = 0; t < 4; t++)
            Assert.InRange(counts[t] / 40_000.0, (t + 1) / 10.0 - 0.01, (t + 1) / 10.0 + 0.01);
    }

    [Fact]
    public void Sampling_a_token_does_not_allocate()
    {
        var rng = new Random(1);
        var logits = new float[128_256];
        for (int i = 0; i < logits.Length; i++) logits[i] = (float)rng.NextDouble();
        var sampler = new Sampler(new SamplingOptions { Seed = 3, RepeatPenalty = 1.1f }, logits.Length);
        int[] history = [1, 2, 3, 4];
        sampler.Sample(logits, history);
        // Best of three rounds: a per-token allocation shows in every round, while a one-off
        // allocation by the runtime on this thread (tiering, type loading) shows in one at most.
        long least = long.MaxValue;
        for (int round = 0; round < 3; round++)
        {
            long before = GC.GetAllocatedBytesForCurrentThread();
            for (int i = 0; i < 10; i++) sampler.Sample(logits, history);
            least = Math.Min(least, GC.GetAllocatedBytesForCurrentThread() - before);
        }
        Assert.Equal(0, least);
    }

    [Fact]
    public void Wrong_logit_count_is_a_clear_error()
    {
        var sampler = new Sampler(SamplingOptions.Greedy, 4);
        Assert.Throws<ArgumentException>(() => sampler.Sample([1f, 2f], []));
    }
}
