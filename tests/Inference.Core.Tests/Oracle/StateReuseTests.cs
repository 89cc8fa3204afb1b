using BitNet.Inference.Model;

namespace BitNet.Inference.Tests.Oracle;

/// <summary>
/// A state that has already generated past the prompt, rewound to the prompt, must give the same
/// logits as a fresh state: the engine's prompt-prefix reuse depends on it.
/// </summary>
public class StateReuseTests(OracleModelFixture fixture) : IClassFixture<OracleModelFixture>
{
    private static readonly int[] Prompt = [128000, 791, 6864, 315, 9822, 374];

    private static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    [Fact]
    public void Rewinding_after_generation_and_replaying_the_last_prompt_token_gives_the_fresh_logits()
    {
        var model = fixture.Model;
        var fresh = model.CreateState(64);
        float[] expected = model.Forward(fresh, Prompt).ToArray();

        var used = model.CreateState(64);
        var logits = model.Forward(used, Prompt);
        for (int i = 0; i < 12; i++)
            logits = model.Forward(used, [ArgMax(logits)]);

        // Replay the last two prompt tokens: a multi-token batch, like the fresh prompt (a lone token
        // would take bitnet.cpp's single-row path, which rounds differently; see Model/Precision).
        used.Rewind(Prompt.Length - 2);
        float[] replayed = model.Forward(used, Prompt.AsSpan(Prompt.Length - 2)).ToArray();
        Assert.Equal(expected, replayed);
    }

    [Fact]
    public void A_prompt_split_into_multi_token_batches_gives_the_one_batch_logits()
    {
        var model = fixture.Model;
        float[] whole = model.Forward(model.CreateState(64), Prompt).ToArray();
        var state = model.CreateState(64);
        model.Forward(state, Prompt.AsSpan(0, 2));
        model.Forward(state, Prompt.AsSpan(2, 2));
        Assert.Equal(whole, model.Forward(state, Prompt.AsSpan(4, 2)).ToArray());
    }

    [Fact]
    public void A_prompt_one_token_longer_than_the_batch_capacity_gives_the_one_batch_logits()
    {
        // Capacity 5 for a 6-token prompt: cut 5 + 1 the last token would take the single-token
        // path; the state cuts it 4 + 2 instead.
        var model = fixture.Model;
        float[] whole = model.Forward(model.CreateState(64), Prompt).ToArray();
        var small = new InferenceState(model.Config, 64, batchCapacity: 5);
        Assert.Equal(4, small.NextChunkLength(6));
        Assert.Equal(whole, model.Forward(small, Prompt).ToArray());
    }
}
