using System.Runtime.CompilerServices;

namespace BitNet.Inference.Generation;

/// <summary>
/// A multi-turn conversation built the way bitnet.cpp's `llama-cli -cnv` (run_inference.py -cnv)
/// builds it (spec §6.5 steps 1-7), in the model's <see cref="ITextGenerator.ChatTemplate"/>. For the 2B4T format the token stream is
/// <c>&lt;BOS&gt;System: S</c> · <c>User: U1&lt;|eot_id|&gt;Assistant: </c> reply1 <c>&lt;|eot_id|&gt;</c> · <c>User: U2…</c>:
/// the system message and each user turn are tokenized on their own (BOS only on the first piece),
/// control-token text typed in a message stays text (<see cref="ChatTemplate.Pieces"/>), and every generated token, the closing end-of-turn token included, stays in the stream. Each
/// turn sends the whole stream; BitNetEngine reuses the cached prefix, so only the
/// new turn is evaluated. When a turn no longer fits the context, the conversation restarts from
/// the system message.
/// </summary>
public sealed class ChatConversation
{
    private readonly ITextGenerator _generator;
    private readonly string? _systemPrompt;
    private readonly List<int> _tokens = [];
    private int _systemLength;   // BOS and the system message: where a restart begins

    public ChatConversation(ITextGenerator generator, string? systemPrompt = null)
    {
        ArgumentNullException.ThrowIfNull(generator);
        _generator = generator;
        _systemPrompt = string.IsNullOrEmpty(systemPrompt) ? null : systemPrompt;
        Restart();
    }

    /// <summary>Every token of the conversation so far.</summary>
    public IReadOnlyList<int> Tokens => _tokens;

    /// <summary>Tokens the conversation always begins with: BOS and the system message.</summary>
    public int SystemTokens => _systemLength;

    /// <summary>
    /// True when <paramref name="userMessage"/> as the first turn, and one token of reply, fit the context;
    /// false for every message when the system message leaves no room for a turn.
    /// </summary>
    public bool Fits(string userMessage)
    {
        ArgumentNullException.ThrowIfNull(userMessage);
        var turn = _generator.Tokenize(_generator.ChatTemplate.TurnPieces(new ChatMessage(ChatRole.User, userMessage)), addBos: false);
        return _systemLength + turn.Count + 1 <= _generator.Model.ContextLength;
    }

    /// <summary>True when the last turn did not fit and the conversation restarted from the system message.</summary>
    public bool LastTurnRestarted { get; private set; }

    /// <summary>
    /// Add a user message and stream the assistant's reply. Throws
    /// <see cref="ContextLengthExceededException"/> when the message does not fit even after a restart.
    /// </summary>
    public async IAsyncEnumerable<GenerationUpdate> SendAsync(
        string userMessage, int maxTokens, SamplingOptions sampling,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(userMessage);
        var turn = _generator.Tokenize(_generator.ChatTemplate.TurnPieces(new ChatMessage(ChatRole.User, userMessage)), addBos: false);
        int context = _generator.Model.ContextLength;
        LastTurnRestarted = false;
        if (_tokens.Count + turn.Count + 1 > context)
        {
            Restart();
            LastTurnRestarted = true;
            if (_tokens.Count + turn.Count + 1 > context)
                throw new ContextLengthExceededException(_tokens.Count + turn.Count, 1, context);
        }
        _tokens.AddRange(turn);

        var request = new GenerationRequest { PromptTokens = _tokens.ToArray(), MaxTokens = maxTokens, Sampling = sampling };
        await foreach (var update in _generator.GenerateAsync(request, cancellationToken).ConfigureAwait(false))
        {
            if (update.TokenId >= 0)
                _tokens.Add(update.TokenId);   // the reply, and the end-of-turn token that closed it
            yield return update;
        }
    }

    private void Restart()
    {
        _tokens.Clear();
        _tokens.AddRange(_generator.Tokenize("", addBos: true));
        if (_systemPrompt is not null)
            _tokens.AddRange(_generator.Tokenize(_generator.ChatTemplate.TurnPieces(new ChatMessage(ChatRole.System, _systemPrompt)), addBos: false));
        _systemLength = _tokens.Count;
    }
}
