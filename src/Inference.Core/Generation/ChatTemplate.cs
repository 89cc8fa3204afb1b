using System.Text;

namespace BitNet.Inference.Generation;

/// <summary>
/// bitnet.cpp's built-in "bitnet" chat format (spec §6.5), which llama.cpp picks for the 2B4T
/// file's placeholder template:
/// <list type="bullet">
/// <item>system: <c>System: </c> + content (nothing after it);</item>
/// <item>user: <c>User: </c> + content + <c>&lt;|eot_id|&gt;Assistant: </c> (the generation prompt comes from here);</item>
/// <item>assistant: content (nothing after it).</item>
/// </list>
/// BOS is not part of the text; tokenization adds it.
/// </summary>
public static class ChatTemplate
{
    public const string EndOfTurn = "<|eot_id|>";

    public static string Render(IReadOnlyList<ChatMessage> messages)
    {
        ArgumentNullException.ThrowIfNull(messages);
        var text = new StringBuilder();
        foreach (var message in messages)
            AppendMessage(text, message);
        return text.ToString();
    }

    /// <summary>One message's text, for building a conversation turn by turn (what llama-cli's -cnv evaluates).</summary>
    public static string RenderMessage(ChatMessage message) => AppendMessage(new StringBuilder(), message).ToString();

    private static StringBuilder AppendMessage(StringBuilder text, ChatMessage message) => message.Role switch
    {
        ChatRole.System => text.Append("System: ").Append(message.Content),
        ChatRole.User => text.Append("User: ").Append(message.Content).Append(EndOfTurn).Append("Assistant: "),
        ChatRole.Assistant => text.Append(message.Content),
        _ => throw new ArgumentOutOfRangeException(nameof(message), message.Role, "unknown chat role"),
    };
}
