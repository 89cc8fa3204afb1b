using System.Runtime.CompilerServices;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;

namespace BitNet.Hosts.Tests;

// GC.GetTotalAllocatedBytes counts every thread of the process, so this measurement must not
// share the process with other tests running in parallel.
[CollectionDefinition(nameof(GenerationSessionAllocationTests), DisableParallelization = true)]
public sealed class GenerationSessionAllocationCollection;

[Collection(nameof(GenerationSessionAllocationTests))]
public sealed class GenerationSessionAllocationTests(ITestOutputHelper output)
{
    /// <summary>A generator that allocates nothing per token: each generation repeats one update, every one after a hop to the
    /// thread pool (as the engine's tokens come from its own thread), then ends with a final update made once.</summary>
    private sealed class RepeatingGenerator : ITextGenerator
    {
        private static readonly GenerationUpdate Token = new("w ", 100);
        private readonly FakeTextGenerator _fake = new(contextLength: 100_000);

        public ModelInfo Model => _fake.Model;
        public IReadOnlyList<int> Tokenize(string text, bool addBos = true, bool parseSpecial = true) => _fake.Tokenize(text, addBos, parseSpecial);
        public string Detokenize(IReadOnlyList<int> tokens, bool renderSpecial = false) => _fake.Detokenize(tokens, renderSpecial);
        public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages) => _fake.ApplyChatTemplate(messages);
        public long TouchWeights() => 0;

        public async IAsyncEnumerable<GenerationUpdate> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
        {
            var final = new GenerationUpdate("", -1, new GenerationStats(request.PromptTokens.Count, request.MaxTokens, FinishReason.Length,
                TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero));
            for (int i = 0; i < request.MaxTokens; i++)
            {
                await Task.Yield();
                yield return Token;
            }
            yield return final;
        }
    }

    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    [InlineData(4)]
    public async Task Reading_the_choices_of_a_session_allocates_nothing_per_token(int n)
    {
        var generator = new RepeatingGenerator();
        var queue = new RequestQueue(maxWaiting: 0);
        async Task ReadAsync(int tokens)
        {
            var request = new GenerationRequest { PromptTokens = [1, 2, 3], MaxTokens = tokens, Sampling = SamplingOptions.Greedy };
            GenerationSession session = await GenerationSession.StartAsync(generator, queue, request, DateTimeOffset.UtcNow.AddMinutes(5), "prompt", n,
                TestContext.Current.CancellationToken);
            await using (session)
            {
                int updates = 0;
                await foreach ((int _, GenerationUpdate _) in session.ReadChoicesAsync())
                    updates++;
                Assert.Equal(n * (tokens + 1), updates);
            }
        }
        // The least of three runs, after a warm one: a thread the pool starts meanwhile is not the session's.
        async Task<long> Allocated(int tokens)
        {
            await ReadAsync(tokens);
            long least = long.MaxValue;
            for (int run = 0; run < 3; run++)
            {
                long before = GC.GetTotalAllocatedBytes(precise: true);
                await ReadAsync(tokens);
                least = Math.Min(least, GC.GetTotalAllocatedBytes(precise: true) - before);
            }
            return least;
        }

        long few = await Allocated(100), many = await Allocated(4100);
        double perToken = (many - few) / (4000.0 * n);
        output.WriteLine($"n = {n}: allocated per token read: {perToken:F1} bytes (100 tokens: {few} B, 4100 tokens: {many} B)");
        // The generator repeats one update, so only the session's reading is counted: a task per read and Task.WhenAny
        // over the choices cost 120 bytes a token at n = 1 and 360 to 430 at n = 2 to 4.
        Assert.True(perToken < 16, $"{perToken:F1} bytes per token");
    }
}
