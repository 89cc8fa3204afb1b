namespace BitNet.Inference.Sampling;

/// <summary>A token and its log-probability (natural log) under the model's distribution.</summary>
public readonly record struct TokenLogprob(int Token, float Logprob);

/// <summary>
/// The log-probability of a sampled token and the most likely alternatives at that step, as the
/// OpenAI API reports them (<c>logprobs</c> / <c>top_logprobs</c>).
/// </summary>
public sealed record TokenLogprobs(TokenLogprob Chosen, IReadOnlyList<TokenLogprob> Top);

/// <summary>
/// Log-probabilities from a step's logits: log softmax(logits) of the model itself, before the
/// sampler's penalties, filters and temperature, which is what OpenAI's API reports (the sampler
/// decides which token is drawn, not how likely the model found it).
/// </summary>
public static class LogProbabilities
{
    /// <summary>Most alternatives a request may ask for (OpenAI's limit for top_logprobs).</summary>
    public const int MaxTop = 20;

    /// <summary>
    /// log p(chosen) and the <paramref name="top"/> most likely tokens, best first (ties to the lower
    /// id, as the greedy sampler breaks them): logit − (max + ln Σ exp(logit − max)), the sum in double.
    /// </summary>
    public static TokenLogprobs Of(ReadOnlySpan<float> logits, int chosen, int top)
    {
        if ((uint)chosen >= (uint)logits.Length)
            throw new ArgumentOutOfRangeException(nameof(chosen), chosen, $"not a token of this {logits.Length}-entry vocabulary");
        ArgumentOutOfRangeException.ThrowIfNegative(top);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(top, MaxTop);

        float max = float.NegativeInfinity;
        foreach (float logit in logits) max = Math.Max(max, logit);
        double sum = 0;
        foreach (float logit in logits) sum += Math.Exp((double)logit - max);
        double logNormalizer = max + Math.Log(sum);

        // Insertion into a short sorted list: one pass over the vocabulary, top ≤ 20.
        top = Math.Min(top, logits.Length);
        var best = new TokenLogprob[top];
        int kept = 0;
        for (int token = 0; token < logits.Length && top > 0; token++)
        {
            float logit = logits[token];
            if (kept == top && logit <= logits[best[kept - 1].Token]) continue;
            int at = kept == top ? top - 1 : kept++;
            while (at > 0 && logits[best[at - 1].Token] < logit)
            {
                best[at] = best[at - 1];
                at--;
            }
            best[at] = new TokenLogprob(token, logit);
        }
        for (int i = 0; i < top; i++) best[i] = new TokenLogprob(best[i].Token, (float)(logits[best[i].Token] - logNormalizer));
        return new TokenLogprobs(new TokenLogprob(chosen, (float)(logits[chosen] - logNormalizer)), best);
    }
}
