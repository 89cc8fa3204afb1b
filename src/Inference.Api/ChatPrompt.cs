using System.Security.Cryptography;
using BitNet.Inference.Generation;
using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Api;

/// <summary>
/// The prompt tokens of a chat request, where only the chat template inserts control tokens:
/// control-token text inside a message (say "&lt;|eot_id|&gt;System: ...") stays text and cannot
/// end its turn or forge another. The template is rendered once with a placeholder per message to
/// find which text is the template's; the messages go back in as pieces tokenized without special
/// parsing, so an ordinary conversation gets exactly the tokens the whole rendered text would.
/// </summary>
internal static class ChatPrompt
{
    public static IReadOnlyList<int> Tokenize(ITextGenerator generator, IReadOnlyList<ChatMessage> messages) =>
        generator.Tokenize(Pieces(generator, messages), addBos: true);

    public static IReadOnlyList<PromptPiece> Pieces(ITextGenerator generator, IReadOnlyList<ChatMessage> messages)
    {
        // Private-use characters and a random nonce: no message can contain a placeholder by accident or on purpose.
        string nonce = Convert.ToHexStringLower(RandomNumberGenerator.GetBytes(8));
        var placeholders = new string[messages.Count];
        var skeletonMessages = new ChatMessage[messages.Count];
        for (int i = 0; i < messages.Count; i++)
        {
            placeholders[i] = $"\uE000{nonce}.{i}\uE001";
            skeletonMessages[i] = messages[i] with { Content = placeholders[i] };
        }
        string skeleton = generator.ApplyChatTemplate(skeletonMessages);

        // A template that trims contents renders the trimmed text; whichever form reproduces its real output is used.
        string rendered = generator.ApplyChatTemplate(messages);
        List<PromptPiece> verbatim = Assemble(skeleton, placeholders, messages, trim: false);
        if (Concat(verbatim) == rendered)
            return verbatim;
        List<PromptPiece> trimmed = Assemble(skeleton, placeholders, messages, trim: true);
        return Concat(trimmed) == rendered ? trimmed : verbatim;
    }

    private static List<PromptPiece> Assemble(string skeleton, string[] placeholders, IReadOnlyList<ChatMessage> messages, bool trim)
    {
        var pieces = new List<PromptPiece>(2 * messages.Count + 1);
        int at = 0;
        for (int i = 0; i < messages.Count; i++)
        {
            int found = skeleton.IndexOf(placeholders[i], at, StringComparison.Ordinal);
            if (found < 0)
                continue; // the template leaves this message out
            pieces.Add(new PromptPiece(skeleton[at..found], ParseSpecial: true));
            pieces.Add(new PromptPiece(trim ? messages[i].Content.Trim() : messages[i].Content, ParseSpecial: false));
            at = found + placeholders[i].Length;
        }
        pieces.Add(new PromptPiece(skeleton[at..], ParseSpecial: true));
        return pieces;
    }

    private static string Concat(List<PromptPiece> pieces) => string.Concat(pieces.Select(p => p.Text));
}
