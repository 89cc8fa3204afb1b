using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;

namespace BitNet.Hosts.Tests;

/// <summary>The line every host logs once the model is ready names the kernel set and the thread count.</summary>
public sealed class ReadyLineTests
{
    [Fact]
    public void One_thread_is_written_in_the_singular()
    {
        var provider = GeneratorProvider.Ready(new FakeTextGenerator());   // the fake reports 1 thread

        Assert.Equal("model 'fake-model' ready in 0.00 s (fake, 1 thread)", provider.ReadySummary);
    }

    [Fact]
    public void A_context_the_memory_shrank_is_said_on_the_ready_line()
    {
        var model = new FakeTextGenerator(992).Model with { KvCacheNote = "the context is 992 tokens, not 4096: …" };
        var provider = GeneratorProvider.Ready(new FakeTextGenerator(992) { Model = model });

        Assert.Equal("model 'fake-model' ready in 0.00 s (fake, 1 thread); the context is 992 tokens, not 4096: …", provider.ReadySummary);
    }

    [Theory]
    [InlineData(1, "thread")]
    [InlineData(2, "threads")]
    [InlineData(16, "threads")]
    public void The_thread_noun_follows_the_count(int threads, string noun) =>
        Assert.Equal(noun, GeneratorProvider.ThreadNoun(threads));

    [Fact]
    public void A_provider_without_a_model_has_no_ready_line() =>
        Assert.Throws<InvalidOperationException>(() => new GeneratorProvider().ReadySummary);
}
