using System.Runtime.CompilerServices;
using System.Text;
using System.Threading.Channels;
using BitNet.Inference.Generation;

namespace BitNet.Hosts.Tests.Support;

/// <summary>
/// A deterministic stand-in for the engine: "tokens" are the prompt's UTF-8 bytes (BOS = 1), and
/// the output is a fixed function of the prompt ("w17 w3 ..."), so tests know the exact text.
/// It follows the ITextGenerator contract (max tokens, stop strings, deadline, cancellation with a
/// final "cancelled" update, context check before any work) and records what it saw.
/// </summary>
internal sealed class FakeTextGenerator(int contextLength = 512) : ITextGenerator
{
    private int _running;

    public ModelInfo Model { get; init; } = new("fake-model", "/models/fake-model.gguf", "bitnet-b1.58", contextLength, 256, 64, 2, 1234, "fake", 1);

    /// <summary>Pause before each token (simulates a slow model).</summary>
    public TimeSpan TokenDelay { get; set; }
    /// <summary>Throw from GenerateAsync before the first token.</summary>
    public bool FailAtStart { get; set; }
    /// <summary>Throw after this many tokens.</summary>
    public int? FailAfterTokens { get; set; }
    /// <summary>When set, each generation waits for it before its first token (a long prompt, or a wait to be admitted),
    /// having reported <see cref="PhaseBeforeFirstToken"/>; cancellation ends the wait.</summary>
    public Task? FirstTokenGate { get; set; }
    /// <summary>What a generation held by <see cref="FirstTokenGate"/> reports (nothing when Unknown).</summary>
    public GenerationPhase PhaseBeforeFirstToken { get; set; }

    public int TouchCount;
    public int Generations;
    public int MaxConcurrent;
    /// <summary>Tokens produced after the cancellation token fired, per generation (the last one).</summary>
    public int TokensAfterCancel = -1;
    public readonly TaskCompletionSource CancellationObserved = new(TaskCreationOptions.RunContinuationsAsynchronously);
    public GenerationRequest? LastRequest;

    public IReadOnlyList<int> Tokenize(string text, bool addBos = true, bool parseSpecial = true)
    {
        var ids = new List<int>();
        if (addBos)
            ids.Add(1);
        ids.AddRange(Encoding.UTF8.GetBytes(text).Select(b => (int)b));
        return ids;
    }

    public string Detokenize(IReadOnlyList<int> tokens, bool renderSpecial = false) =>
        Encoding.UTF8.GetString(tokens.Where(t => t != 1).Select(t => (byte)t).ToArray());

    public string ApplyChatTemplate(IReadOnlyList<ChatMessage> messages) => ChatTemplate.Render(messages);

    public ChatTemplate ChatTemplate => ChatTemplate.Bitnet;

    public long TouchWeights()
    {
        Interlocked.Increment(ref TouchCount);
        return 4096;
    }

    /// <summary>The text the fake produces for a prompt, token by token (what a test expects).</summary>
    public static IEnumerable<string> Pieces(IReadOnlyList<int> prompt)
    {
        int seed = prompt.Sum();
        for (int i = 0; ; i++)
            yield return $"w{(seed * 31 + i * 7) % 97} ";
    }

    /// <summary>
    /// Like the real engine, the work runs on its own task and streams through a channel, so the
    /// only thing that stops it is the cancellation token (disposing the consumer does not).
    /// </summary>
    public async IAsyncEnumerable<GenerationUpdate> GenerateAsync(GenerationRequest request, [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (request.PromptTokens.Count + request.MaxTokens > Model.ContextLength)
            throw new ContextLengthExceededException(request.PromptTokens.Count, request.MaxTokens, Model.ContextLength);
        if (FailAtStart)
            throw new InvalidOperationException("the fake engine failed at start");
        LastRequest = request;
        Interlocked.Increment(ref Generations);
        var channel = Channel.CreateUnbounded<GenerationUpdate>();
        Task producer = Task.Run(() => Produce(request, channel.Writer, cancellationToken), CancellationToken.None);
        await foreach (GenerationUpdate update in channel.Reader.ReadAllAsync(CancellationToken.None))
            yield return update;
        await producer;
    }

    private async Task Produce(GenerationRequest request, ChannelWriter<GenerationUpdate> output, CancellationToken cancellationToken)
    {
        int running = Interlocked.Increment(ref _running);
        InterlockedMax(ref MaxConcurrent, running);
        int produced = 0, afterCancel = 0;
        bool ended = false;
        // Leaves the running count before the last update goes out: its reader may start the next generation at once,
        // which must not be counted as running beside this one.
        void End(FinishReason reason)
        {
            ended = true;
            Interlocked.Decrement(ref _running);
            output.TryWrite(new GenerationUpdate("", -1, new GenerationStats(request.PromptTokens.Count, produced, reason,
                TimeSpan.FromMilliseconds(2), TimeSpan.FromMilliseconds(produced), TimeSpan.FromMilliseconds(3))));
        }
        try
        {
            if (FirstTokenGate is { } gate)
            {
                request.Progress?.Reach(PhaseBeforeFirstToken);
                await gate.WaitAsync(cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            }
            var text = new StringBuilder();
            using IEnumerator<string> pieces = Pieces(request.PromptTokens).GetEnumerator();
            while (true)
            {
                if (cancellationToken.IsCancellationRequested)
                {
                    TokensAfterCancel = afterCancel;
                    CancellationObserved.TrySetResult();
                    End(FinishReason.Cancelled);
                    return;
                }
                if (produced >= request.MaxTokens || request.Deadline is { } d && DateTimeOffset.UtcNow >= d)
                {
                    End(FinishReason.Length);
                    return;
                }
                if (TokenDelay > TimeSpan.Zero)
                    await Task.Delay(TokenDelay, CancellationToken.None);
                if (FailAfterTokens is { } n && produced >= n)
                    throw new InvalidOperationException("the fake engine failed mid-stream");
                pieces.MoveNext();
                string piece = pieces.Current;
                produced++;
                if (cancellationToken.IsCancellationRequested)
                    afterCancel++;
                text.Append(piece);
                if (request.Stop.Any(s => text.ToString().Contains(s, StringComparison.Ordinal)))
                {
                    End(FinishReason.Stop);
                    return;
                }
                output.TryWrite(new GenerationUpdate(piece, 100 + produced));
            }
        }
        catch (Exception ex)
        {
            output.TryComplete(ex);
        }
        finally
        {
            if (!ended) Interlocked.Decrement(ref _running);
            output.TryComplete();
        }
    }

    private static void InterlockedMax(ref int target, int value)
    {
        int current;
        while ((current = Volatile.Read(ref target)) < value && Interlocked.CompareExchange(ref target, value, current) != current)
        {
        }
    }

    /// <summary>The complete text for a prompt and a token budget (no stop strings).</summary>
    public static string Expected(IReadOnlyList<int> prompt, int maxTokens) => string.Concat(Pieces(prompt).Take(maxTokens));
}
