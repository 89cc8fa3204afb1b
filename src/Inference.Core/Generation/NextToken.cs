using BitNet.Inference.Model;
using BitNet.Inference.Sampling;

namespace BitNet.Inference.Generation;

/// <summary>
/// One step of generation: evaluate tokens, then choose the next one. With a screened head
/// (<see cref="LmHeadMode.Screened"/>) and a sampling chain that keeps a bounded number of tokens,
/// only the candidate rows get exact F16 logits (<see cref="Sampler.SelectCandidates"/>); the token
/// chosen is the one the full F16 head would give, random draws included.
/// </summary>
public static class NextToken
{
    /// <summary>
    /// Evaluate <paramref name="tokens"/> and sample the next token. <paramref name="history"/> is every
    /// token so far, <paramref name="tokens"/> included. <paramref name="logits"/> is the full logits
    /// when they were computed (screening off or impossible), else empty.
    /// </summary>
    public static int Evaluate(BitNetModel model, InferenceState state, Sampler sampler, ReadOnlySpan<int> tokens,
        ReadOnlySpan<int> history, bool allowScreening, out ReadOnlySpan<float> logits)
    {
        if (allowScreening && model.IsScreened && sampler.CanSampleFromCandidates)
        {
            if (model.ForwardScreened(state, tokens))
            {
                int count = sampler.SelectCandidates(state.ScreenLower, state.ScreenUpper, history, state.CandidateIds);
                ReadOnlySpan<int> ids = state.CandidateIds[..count];
                Span<float> exact = state.CandidateLogits[..count];
                model.ExactLogits(state, ids, exact);
                logits = default;
                return sampler.Sample(ids, exact, history);
            }
            logits = state.Logits;   // no bounds for this input: ForwardScreened computed the full head
        }
        else
        {
            logits = model.Forward(state, tokens);
        }
        return sampler.Sample(logits, history);
    }
}
