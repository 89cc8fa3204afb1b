using BitNet.Inference.Gguf;
using BitNet.Inference.Tokenization;
using Names = BitNet.Inference.Model.GgufTensorNames;

namespace BitNet.Inference.Generation;

/// <summary>A chat template could not be chosen or used: the file's template is unknown, or a name is wrong.</summary>
public sealed class ChatTemplateException(string message) : Exception(message);

/// <summary>
/// The chat formats of the models this engine runs, as bitnet.cpp's llama.cpp writes them
/// (llama_chat_apply_template_internal; BOS is not part of the text, tokenization adds it):
/// <list type="bullet">
/// <item><c>bitnet</c> (2B4T, spec §6.5): <c>System: </c>S · <c>User: </c>U<c>&lt;|eot_id|&gt;Assistant: </c> · A;
/// the format has no tool turn, so a tool's result T is a user turn: <c>User: </c>T<c>&lt;|eot_id|&gt;Assistant: </c>;</item>
/// <item><c>llama3</c>: <c>&lt;|start_header_id|&gt;role&lt;|end_header_id|&gt;\n\n</c>trimmed content<c>&lt;|eot_id|&gt;</c>;</item>
/// <item><c>falcon3</c>: <c>&lt;|role|&gt;\n</c>content<c>\n</c>;</item>
/// <item><c>falcon_e</c> (Falcon-E): role, content, <c>\n</c>.</item>
/// </list>
/// The last three name a tool's result by its role, <c>tool</c>, as llama.cpp writes any role it is given.
/// Each model's template is chosen by <see cref="Choose"/>; an unrecognised one is <see cref="IsKnown"/> false
/// and refuses to render, so a chat never runs in a wrong format.
/// </summary>
public sealed class ChatTemplate
{
    public const string EndOfTurn = "<|eot_id|>";

    /// <summary>The template's text before and after one message's content.</summary>
    private readonly Func<ChatRole, (string Before, string After)>? _wrap;
    private readonly bool _trimContent;
    private readonly string _generationPrompt;
    private readonly string? _problem;

    private ChatTemplate(string name, Func<ChatRole, (string Before, string After)>? wrap, string generationPrompt,
        bool trimContent = false, string? problem = null)
    {
        Name = name;
        _wrap = wrap;
        _trimContent = trimContent;
        _generationPrompt = generationPrompt;
        _problem = problem;
    }

    /// <summary>llama.cpp's name for the format ("bitnet", "llama3", "falcon3", "falcon_e"), or "unknown".</summary>
    public string Name { get; }
    public bool IsKnown => _problem is null;
    /// <summary>Why the template is unknown (null when it is known).</summary>
    public string? Problem => _problem;

    public static ChatTemplate Bitnet { get; } = new("bitnet", role => role switch
    {
        ChatRole.System => ("System: ", ""),
        // The assistant prompt follows every user message; the format has no separate generation prompt.
        ChatRole.User or ChatRole.Tool => ("User: ", EndOfTurn + "Assistant: "),
        _ => ("", ""),
    }, "");

    public static ChatTemplate Llama3 { get; } = new("llama3",
        role => ("<|start_header_id|>" + RoleName(role) + "<|end_header_id|>\n\n", EndOfTurn),
        "<|start_header_id|>assistant<|end_header_id|>\n\n", trimContent: true);

    public static ChatTemplate Falcon3 { get; } = new("falcon3", role => ("<|" + RoleName(role) + "|>\n", "\n"), "<|assistant|>\n");

    public static ChatTemplate FalconE { get; } = new("falcon_e", role => (RoleName(role), "\n"), "assistant\n");

    public static IReadOnlyList<ChatTemplate> Known { get; } = [Bitnet, Llama3, Falcon3, FalconE];

    public static ChatTemplate Unknown(string problem) => new("unknown", null, "", problem: problem);

    /// <summary>The messages as one prompt, ending with the assistant's generation prompt.</summary>
    public string Render(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true) =>
        string.Concat(Pieces(messages, addGenerationPrompt).Select(p => p.Text));

    /// <summary>
    /// The messages as prompt pieces: the template's own text may hold control tokens
    /// (<see cref="PromptPiece.ParseSpecial"/>), the messages' contents may not, so control-token
    /// text a user writes stays text. Concatenated, the pieces are <see cref="Render"/>'s text.
    /// </summary>
    public IReadOnlyList<PromptPiece> Pieces(IReadOnlyList<ChatMessage> messages, bool addGenerationPrompt = true)
    {
        ArgumentNullException.ThrowIfNull(messages);
        if (_wrap is null) throw new ChatTemplateException(_problem!);
        var pieces = new List<PromptPiece>(3 * messages.Count + 1);
        foreach (var message in messages)
        {
            if (message.Role is not (ChatRole.System or ChatRole.User or ChatRole.Assistant or ChatRole.Tool))
                throw new ArgumentOutOfRangeException(nameof(messages), message.Role, "unknown chat role");
            var (before, after) = _wrap(message.Role);
            Add(pieces, before, parseSpecial: true);
            Add(pieces, _trimContent ? TrimAsciiSpace(message.Content) : message.Content, parseSpecial: false);
            Add(pieces, after, parseSpecial: true);
        }
        if (addGenerationPrompt) Add(pieces, _generationPrompt, parseSpecial: true);
        return pieces;
    }

    /// <summary>
    /// One message of a conversation built turn by turn (what llama-cli's -cnv evaluates): a user message
    /// with the assistant prompt after it, a system or assistant message without.
    /// </summary>
    public string RenderTurn(ChatMessage message) => Render([message], addGenerationPrompt: message.Role is ChatRole.User or ChatRole.Tool);

    /// <summary><see cref="RenderTurn"/> as prompt pieces (see <see cref="Pieces"/>).</summary>
    public IReadOnlyList<PromptPiece> TurnPieces(ChatMessage message) => Pieces([message], addGenerationPrompt: message.Role is ChatRole.User or ChatRole.Tool);

    private static void Add(List<PromptPiece> pieces, string text, bool parseSpecial)
    {
        if (text.Length > 0) pieces.Add(new PromptPiece(text, parseSpecial));
    }

    /// <summary>A known template by llama.cpp's name (case-insensitive; "falcon-e" too), or null.</summary>
    public static ChatTemplate? Named(string name)
    {
        string key = name.Trim().ToLowerInvariant().Replace('-', '_');
        return Known.FirstOrDefault(t => t.Name == key);
    }

    /// <summary>
    /// The template a <c>tokenizer.chat_template</c> text means, by llama.cpp's rules: its name, or the
    /// markers llama_chat_apply_template_internal tests in its order. Null when the text is a format this
    /// engine does not render (ChatML, Llama 2, Phi-3, Zephyr, …) or none that llama.cpp knows.
    /// </summary>
    public static ChatTemplate? Detect(string template)
    {
        if (Known.FirstOrDefault(t => t.Name == template) is { } named) return named;
        bool Has(string marker) => template.Contains(marker, StringComparison.Ordinal);
        if (Has("<|im_start|>") || Has("[INST]")) return null;              // chatml, llama2 / mistral
        if (Has("<|assistant|>") && Has("<|end|>")) return null;            // phi3
        if (Has("<|assistant|>") && Has("<|user|>")) return Falcon3;
        if (Has("<|user|>")) return null;                                   // zephyr
        if (Has("<|start_header_id|>") && Has("<|end_header_id|>")) return Llama3;
        if (Has("BITNET")) return Bitnet;
        return null;
    }

    /// <summary>
    /// The template for a model: <paramref name="requested"/> when given (a wrong name throws
    /// <see cref="ChatTemplateException"/>); else the one the file's <c>tokenizer.chat_template</c> names
    /// or marks; else, for a file without one, what its architecture and vocabulary imply (the bitnet
    /// family: bitnet; a Llama 3 vocabulary: llama3; the falcon3 / falcon_e pre-tokenizers: theirs).
    /// Otherwise an unknown template, which names the way out.
    /// </summary>
    public static ChatTemplate Choose(GgufFile file, Func<string, bool> hasToken, string? requested = null)
    {
        if (!string.IsNullOrWhiteSpace(requested))
            return Named(requested) ?? throw new ChatTemplateException(
                $"unknown chat template '{requested}' (known: {string.Join(", ", Known.Select(t => t.Name))})");
        const string remedy = "choose one of " + "bitnet, llama3, falcon3, falcon_e" + " with --chat-template NAME (or BITNET_CHAT_TEMPLATE)";
        if (file.TryGetString(Names.ChatTemplate, out string template))
            return Detect(template) ?? Unknown($"the model's chat template ({Names.ChatTemplate}) is not a format this server renders; {remedy}");
        string arch = file.TryGetString(Names.Architecture, out string a) ? a : "";
        string pre = file.TryGetString(Names.TokenizerPre, out string p) ? p : "";
        if (arch is "bitnet-b1.58" or "bitnet-25" or "bitnet") return Bitnet;
        if (pre == "falcon3") return Falcon3;
        if (pre == "falcon_e") return FalconE;
        if (hasToken("<|start_header_id|>") && hasToken("<|end_header_id|>") && hasToken(EndOfTurn)) return Llama3;
        return Unknown($"the model has no chat template ({Names.ChatTemplate}) and its vocabulary implies none; {remedy}");
    }

    private static string RoleName(ChatRole role) => role switch
    {
        ChatRole.System => "system",
        ChatRole.User => "user",
        ChatRole.Tool => "tool",
        _ => "assistant",
    };

    /// <summary>llama.cpp's trim: the C locale's isspace characters at both ends.</summary>
    private static string TrimAsciiSpace(string text) => text.Trim(' ', '\t', '\n', '\v', '\f', '\r');
}
