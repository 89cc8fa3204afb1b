using BitNet.Inference.Model;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Generation;

/// <summary>A sequence whose next token comes from the screened head's candidate rows in a batched step.</summary>
public interface IScreenedSequence
{
    /// <summary>Its head input in the step (<see cref="BitNetModel.PrepareHeadInputs"/>).</summary>
    int HeadInput { get; }
    Sampling.Sampler? Sampler { get; }
    /// <summary>Every token so far (the sampler's penalties read them).</summary>
    ReadOnlySpan<int> TokenHistory { get; }
    /// <summary>Set by <see cref="ScreenedCandidates.Choose"/>: how many candidate rows (their ids and exact logits in
    /// the state's slot for the sequence), or −1 when its input had no bounds.</summary>
    int CandidateCount { get; set; }
}

/// <summary>
/// The screened sequences of a step after the bounds pass: each one's candidate rows (its sampler's
/// <see cref="Sampling.Sampler.SelectCandidates"/> over its own bounds) and their exact F16 logits, one
/// sequence per index of the worker pool. A sequence's sampler, bounds and candidate buffers are its own,
/// and the head rows are read through each thread's own staging, so sequences run side by side; the
/// tokens are then drawn in order on the scheduler's thread.
/// </summary>
public sealed class ScreenedCandidates(BitNetModel model) : IRangeJob
{
    private IReadOnlyList<IScreenedSequence>? _runs;
    private InferenceState? _state;
    private int _firstInput;

    /// <summary>Fills the <see cref="IScreenedSequence.CandidateCount"/> of runs[0 … count − 1].</summary>
    /// <param name="firstInput">The head input of bounds slot 0 (<see cref="BitNetModel.HeadBounds(InferenceState, int, int)"/>).</param>
    public void Choose(InferenceState state, IReadOnlyList<IScreenedSequence> runs, int count, int firstInput)
    {
        if (count == 0) return;
        _state = state; _runs = runs; _firstInput = firstInput;
        try
        {
            model.Pool.ForPieces(count, this, 1);
        }
        finally
        {
            _state = null; _runs = null;
        }
    }

    public void Run(int start, int end)
    {
        InferenceState state = _state!;
        for (int i = start; i < end; i++)
        {
            IScreenedSequence s = _runs![i];
            int slot = s.HeadInput - _firstInput;
            if (!state.HasBounds(slot)) { s.CandidateCount = -1; continue; }
            ReadOnlySpan<int> history = s.TokenHistory;
            int count = s.Sampler!.SelectCandidates(state.ScreenLowerOf(slot), state.ScreenUpperOf(slot), history, state.CandidateIdsOf(slot));
            model.ExactLogits(state, s.HeadInput, state.CandidateIdsOf(slot)[..count], state.CandidateLogitsOf(slot)[..count]);
            s.CandidateCount = count;
        }
    }
}
