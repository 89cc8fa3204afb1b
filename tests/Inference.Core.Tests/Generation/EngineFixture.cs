using BitNet.Inference.Generation;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Generation;

/// <summary>One engine on the oracle model shared by the engine tests (loading is the slow part).</summary>
public sealed class EngineFixture : IDisposable
{
    public EngineFixture() =>
        Engine = BitNetEngine.Load(new EngineOptions { ModelPath = SharedData.OracleModelPath, ContextLength = 128, Threads = 1 });

    public BitNetEngine Engine { get; }

    public void Dispose() => Engine.Dispose();

    public static async Task<(List<GenerationUpdate> Updates, GenerationStats Stats)> Collect(
        ITextGenerator engine, GenerationRequest request)
    {
        var updates = new List<GenerationUpdate>();
        await foreach (var update in engine.GenerateAsync(request, TestContext.Current.CancellationToken))
            updates.Add(update);
        Assert.True(updates[^1].IsFinal);
        Assert.Single(updates, u => u.IsFinal);
        return (updates, updates[^1].Final!);
    }

    public static int[] TokenIds(IEnumerable<GenerationUpdate> updates) =>
        updates.Where(u => u.TokenId >= 0).Select(u => u.TokenId).ToArray();
}
