using System.Text;
using BitNet.Inference.Generation;
using BitNet.Tests.Shared;

namespace BitNet.Hosts.Tests.Support;

/// <summary>
/// The real engine on the small oracle model (74 MB), loaded once for the whole test run.
/// Prompt-prefix reuse is on, as the hosts run it: a cached prompt still evaluates its last tokens
/// as a batch, so the same request gives the same text whatever ran before it.
/// </summary>
internal static class RealEngine
{
    private static readonly Lazy<BitNetEngine> Engine = new(() => BitNetEngine.Load(new EngineOptions
    {
        ModelPath = SharedData.OracleModelPath,
        Threads = 2,
        ContextLength = 512,
    }));

    public static BitNetEngine Instance => Engine.Value;

    /// <summary>What the engine itself produces, greedily, for a chat (same prompt construction as the API: template, BOS, special tokens).</summary>
    public static Task<string> GreedyChatAsync(IReadOnlyList<ChatMessage> messages, int maxTokens) =>
        GreedyAsync(Instance.Tokenize(Instance.ApplyChatTemplate(messages), addBos: true, parseSpecial: true), maxTokens);

    public static Task<string> GreedyCompletionAsync(string prompt, int maxTokens) =>
        GreedyAsync(Instance.Tokenize(prompt, addBos: true, parseSpecial: true), maxTokens);

    private static async Task<string> GreedyAsync(IReadOnlyList<int> prompt, int maxTokens)
    {
        var text = new StringBuilder();
        await foreach (GenerationUpdate update in Instance.GenerateAsync(new GenerationRequest
        {
            PromptTokens = prompt,
            MaxTokens = maxTokens,
            Sampling = SamplingOptions.Greedy,
        }))
        {
            text.Append(update.Text);
        }
        return text.ToString();
    }
}
