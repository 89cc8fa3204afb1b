using BitNet.Inference.Generation;
using BitNet.Inference.Model;

namespace BitNet.Inference.Tests.Model;

public class InferenceStateTests
{
    [Fact]
    public void Overflowing_the_context_throws_and_leaves_the_state_unchanged()
    {
        using var model = BitNetModel.Load(TinyModels.Tiny);
        var state = model.CreateState(4);
        model.Forward(state, [1, 2, 3]);
        var error = Assert.Throws<ContextLengthExceededException>(() => model.Forward(state, [4, 5]));
        Assert.Equal(4, error.ContextLength);
        Assert.Equal(3, state.Position);
        model.Forward(state, [4]); // the last free position still works
        Assert.Equal(4, state.Position);
    }

    [Fact]
    public void Token_outside_the_vocabulary_is_rejected_before_any_work()
    {
        using var model = BitNetModel.Load(TinyModels.Tiny);
        var state = model.CreateState(8);
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(state, [1, 300]));
        Assert.Throws<ArgumentOutOfRangeException>(() => model.Forward(state, [-1]));
        Assert.Equal(0, state.Position);
    }

    [Fact]
    public void Rewind_and_reset_replay_the_same_logits()
    {
        using var model = BitNetModel.Load(TinyModels.Tiny);
        var state = model.CreateState(16);
        model.Forward(state, [297, 10, 20]);
        float[] first = model.Forward(state, [30]).ToArray();

        state.Rewind(3);
        Assert.Equal(3, state.Position);
        Assert.Equal(first, model.Forward(state, [30]).ToArray());

        state.Reset();
        model.Forward(state, [297, 10, 20]);
        Assert.Equal(first, model.Forward(state, [30]).ToArray());
        Assert.Throws<ArgumentOutOfRangeException>(() => state.Rewind(5));
    }

    [Fact]
    public void Context_zero_means_the_trained_context()
    {
        using var model = BitNetModel.Load(TinyModels.Tiny);
        Assert.Equal(model.Config.ContextLength, model.CreateState(0).ContextLength);
        Assert.Equal(10, model.CreateState(10).ContextLength);
    }

    [Fact]
    public void ForwardAll_checks_the_output_size()
    {
        using var model = BitNetModel.Load(TinyModels.Tiny);
        var state = model.CreateState(8);
        Assert.Throws<ArgumentException>(() => model.ForwardAll(state, [1, 2], new float[300]));
        Assert.Equal(0, state.Position);
    }
}
