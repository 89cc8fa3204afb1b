using BitNet.Inference.Generation;

namespace BitNet.Inference.Tests.Generation;

// GC.GetTotalAllocatedBytes counts every thread of the process, so this measurement must not
// share the process with other tests running in parallel.
[CollectionDefinition(nameof(EngineAllocationTests), DisableParallelization = true)]
public sealed class EngineAllocationCollection;

[Collection(nameof(EngineAllocationTests))]
public class EngineAllocationTests(EngineFixture fixture, ITestOutputHelper output) : IClassFixture<EngineFixture>
{
    private BitNetEngine Engine => fixture.Engine;

    [Fact]
    public async Task The_per_token_loop_allocates_little_beyond_the_updates()
    {
        var prompt = Engine.Tokenize("Once upon a time");
        async Task<long> Allocated(int tokens)
        {
            await EngineFixture.Collect(Engine, BitNetEngineTests.Greedy(prompt, tokens));   // same prompt: warm, cached prefix
            long before = GC.GetTotalAllocatedBytes(precise: true);
            await EngineFixture.Collect(Engine, BitNetEngineTests.Greedy(prompt, tokens));
            return GC.GetTotalAllocatedBytes(precise: true) - before;
        }
        long few = await Allocated(4), many = await Allocated(36);
        double perToken = (many - few) / 32.0;
        output.WriteLine($"allocated per generated token: {perToken:F0} bytes (4 tokens: {few} B, 36 tokens: {many} B)");
        // An update record, its text, and the channel's share; nothing proportional to the vocabulary.
        Assert.True(perToken < 4096, $"{perToken:F0} bytes per token");
    }
}

[Collection(nameof(EngineAllocationTests))]
public class BatchedEngineAllocationTests(ITestOutputHelper output)
{
    [Theory]
    [InlineData(BitNet.Inference.Model.LmHeadMode.F16)]
    [InlineData(BitNet.Inference.Model.LmHeadMode.Screened)]   // every sequence's bounds from one pass, then its candidate rows
    public async Task Steps_of_four_generations_together_allocate_little_beyond_the_updates(BitNet.Inference.Model.LmHeadMode head)
    {
        using var engine = BitNetEngine.Load(new EngineOptions
        {
            ModelPath = BitNet.Tests.Shared.SharedData.OracleModelPath, ContextLength = 128, Threads = 2, Parallel = 4, LmHead = head,
        });
        string[] texts = ["Once upon a time", "The capital of France is", "def add(a, b):", "Hello there, how"];
        async Task<long> Allocated(int tokens)
        {
            var requests = texts.Select(t => BitNetEngineTests.Greedy(engine.Tokenize(t), tokens)).ToArray();
            await Task.WhenAll(requests.Select(r => EngineFixture.Collect(engine, r)));   // warm: the same prompts
            long before = GC.GetTotalAllocatedBytes(precise: true);
            await Task.WhenAll(requests.Select(r => EngineFixture.Collect(engine, r)));
            return GC.GetTotalAllocatedBytes(precise: true) - before;
        }
        long few = await Allocated(4), many = await Allocated(36);
        double perToken = (many - few) / (32.0 * texts.Length);
        output.WriteLine($"{head}: allocated per generated token with 4 together: {perToken:F0} bytes (4 tokens: {few} B, 36 tokens: {many} B)");
        Assert.True(perToken < 4096, $"{perToken:F0} bytes per token");
    }
}
