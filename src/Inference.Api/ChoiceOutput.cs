using System.Text;
using BitNet.Inference.Generation;
using BitNet.Inference.Sampling;

namespace BitNet.Inference.Api;

/// <summary>
/// What one choice of a chat or /v1/completions response has gathered from the updates
/// <see cref="GenerationSession.ReadChoicesAsync"/> yields for it: its text (kept only for a buffered response),
/// the log-probabilities not yet written, and the stats of its last update. Each endpoint writes it in its own form.
/// </summary>
internal sealed class ChoiceOutput
{
    private readonly StringBuilder? _text;

    private ChoiceOutput(int index, StringBuilder? text, LogprobsWriter? writer)
    {
        Index = index;
        _text = text;
        Writer = writer;
    }

    public int Index { get; }

    /// <summary>Writes this choice's log-probabilities; null when the request asked for none.</summary>
    public LogprobsWriter? Writer { get; }

    /// <summary>The tokens whose log-probabilities no chunk has carried yet (a buffered response writes them all at the end).</summary>
    public List<TokenLogprobs> PendingLogprobs { get; } = [];

    /// <summary>The stats of the choice's last update; null until it has come.</summary>
    public GenerationStats? Final { get; private set; }

    /// <summary>The text so far, after the text it started with; only a buffered response keeps it.</summary>
    public string Text => _text?.ToString() ?? throw new InvalidOperationException("a streamed choice keeps no text");

    /// <summary>One output per choice of <paramref name="session"/>. <paramref name="text"/>: the text a buffered choice
    /// starts with, or null for a streamed one, which keeps none. <paramref name="writer"/> gives a choice its writer.</summary>
    public static ChoiceOutput[] Of(GenerationSession session, string? text, Func<LogprobsWriter>? writer)
    {
        var choices = new ChoiceOutput[session.Choices];
        for (int i = 0; i < choices.Length; i++)
            choices[i] = new ChoiceOutput(i, text is null ? null : new StringBuilder(text), writer?.Invoke());
        return choices;
    }

    /// <summary>Reads the whole session into its outputs, for a buffered response.</summary>
    public static async Task<ChoiceOutput[]> ReadAllAsync(GenerationSession session, string text, Func<LogprobsWriter>? writer)
    {
        ChoiceOutput[] choices = Of(session, text, writer);
        await foreach ((int i, GenerationUpdate update) in session.ReadChoicesAsync().ConfigureAwait(false))
            choices[i].Add(update);
        return choices;
    }

    public void Add(GenerationUpdate update)
    {
        _text?.Append(update.Text);
        if (update.Logprobs is { } tokens) PendingLogprobs.AddRange(tokens);
        if (update.Final is { } final) Final = final;
    }
}
