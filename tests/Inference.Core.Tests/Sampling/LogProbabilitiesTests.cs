using BitNet.Inference.Sampling;

namespace BitNet.Inference.Tests.Sampling;

public class LogProbabilitiesTests
{
    [Fact]
    public void Logprobs_are_the_log_softmax_of_the_logits()
    {
        var rng = new Random(7);
        var logits = new float[1000];
        for (int i = 0; i < logits.Length; i++) logits[i] = (float)(rng.NextDouble() * 30 - 10);
        double max = logits.Max(), sum = logits.Sum(l => Math.Exp(l - max));

        TokenLogprobs result = LogProbabilities.Of(logits, chosen: 123, top: 20);

        Assert.Equal(123, result.Chosen.Token);
        Assert.Equal(logits[123] - max - Math.Log(sum), result.Chosen.Logprob, 5);
        foreach (TokenLogprob alternative in result.Top)
            Assert.Equal(logits[alternative.Token] - max - Math.Log(sum), alternative.Logprob, 5);
        // The alternatives are the 20 largest logits, best first.
        int[] expected = Enumerable.Range(0, logits.Length).OrderByDescending(i => logits[i]).Take(20).ToArray();
        Assert.Equal(expected, result.Top.Select(t => t.Token));
        Assert.True(result.Top.All(t => t.Logprob <= 0));
    }

    [Fact]
    public void Alternatives_with_equal_logits_are_listed_lowest_id_first()
    {
        float[] logits = [1, 5, 3, 5, 5, 0];
        TokenLogprobs result = LogProbabilities.Of(logits, chosen: 5, top: 4);
        Assert.Equal([1, 3, 4, 2], result.Top.Select(t => t.Token));
        Assert.Equal(result.Top[0].Logprob, result.Top[1].Logprob);
        // The chosen token need not be among them (the sampler may draw an unlikely one).
        Assert.Equal(5, result.Chosen.Token);
        Assert.True(result.Chosen.Logprob < result.Top[^1].Logprob);
    }

    [Fact]
    public void Probabilities_of_the_whole_vocabulary_sum_to_one_even_for_large_logits()
    {
        float[] logits = [1000f, 999f, 998f, -1000f];
        double total = Enumerable.Range(0, logits.Length).Sum(t => Math.Exp(LogProbabilities.Of(logits, t, 0).Chosen.Logprob));
        Assert.Equal(1.0, total, 6);
        Assert.Empty(LogProbabilities.Of(logits, 0, top: 0).Top);
        Assert.Equal(4, LogProbabilities.Of(logits, 0, top: 20).Top.Count);   // capped at the vocabulary
    }

    [Fact]
    public void Requests_outside_the_vocabulary_or_the_top_limit_are_refused()
    {
        float[] logits = [0, 1];
        Assert.Throws<ArgumentOutOfRangeException>(() => LogProbabilities.Of(logits, 2, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => LogProbabilities.Of(logits, -1, 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => LogProbabilities.Of(logits, 0, LogProbabilities.MaxTop + 1));
        Assert.Throws<ArgumentOutOfRangeException>(() => LogProbabilities.Of(logits, 0, -1));
    }
}
