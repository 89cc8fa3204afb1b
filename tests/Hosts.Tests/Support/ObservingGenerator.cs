using System.Runtime.CompilerServices;
using System.Threading.Channels;
using BitNet.Inference.Generation;

namespace BitNet.Hosts.Tests.Support;

/// <summary>
/// Wraps a real generator and watches its streams from the inside: it drains the engine eagerly (so
/// it knows how many tokens the engine had produced when the cancellation token fired) and keeps
/// reading after the host has stopped, to see the engine's own final "cancelled" stats.
/// </summary>
internal sealed class ObservingGenerator(ITextGenerator inner) : ITextGenerator
{
    public ModelInfo Model => inner.Model;
    public IReadOnlyList<int> Tokenize(string text, bool addBos = true, bool parseSpecial = true) => inner.Tokenize(text, addBos, parseSpecial);
    public IReadOnlyList<int> Tokenize(IReadOnlyList<BitNet.Inference.Tokenization.PromptPiece> pieces, bool addBos = true) => inner.Tokenize(pieces, addBos);
    public string Detokenize(IReadOnlyList<int> tokens, bool renderSpecial = false) => inner.Detokenize(tokens, renderSpecial);
    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages) => inner.ApplyChatTemplate(messages);
    public ChatTemplate ChatTemplate => inner.ChatTemplate;
    public long TouchWeights() => inner.TouchWeights();

    /// <summary>Completed when a generation ends cancelled: tokens produced when the token fired, and the engine's final stats.</summary>
    public TaskCompletionSource<(int ProducedAtCancel, GenerationStats Final)> Cancelled { get; } =
        new(TaskCreationOptions.RunContinuationsAsynchronously);

    public async IAsyncEnumerable<GenerationUpdate> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        var channel = Channel.CreateUnbounded<GenerationUpdate>();
        _ = Task.Run(async () =>
        {
            int produced = 0, atCancel = -1;
            try
            {
                await using var registration = cancellationToken.Register(() => Volatile.Write(ref atCancel, Volatile.Read(ref produced)));
                await foreach (GenerationUpdate update in inner.GenerateAsync(request, cancellationToken))
                {
                    if (update.Final is { FinishReason: FinishReason.Cancelled } stats)
                        Cancelled.TrySetResult((Volatile.Read(ref atCancel), stats));
                    else if (!update.IsFinal)
                        Interlocked.Increment(ref produced);
                    channel.Writer.TryWrite(update);
                }
                channel.Writer.TryComplete();
            }
            catch (Exception ex)
            {
                channel.Writer.TryComplete(ex);
            }
        }, CancellationToken.None);

        await foreach (GenerationUpdate update in channel.Reader.ReadAllAsync(CancellationToken.None))
            yield return update;
    }
}
