using BitNet.Inference.Generation;

namespace BitNet.Inference.Api;

/// <summary>
/// The prompt tokens of a chat request, where only the chat template inserts control tokens:
/// control-token text inside a message (say "&lt;|eot_id|&gt;System: ...") stays text and cannot
/// end its turn or forge another (<see cref="ChatTemplate.Pieces"/>). An ordinary conversation gets
/// exactly the tokens of the whole rendered text.
/// </summary>
internal static class ChatPrompt
{
    public static IReadOnlyList<int> Tokenize(ITextGenerator generator, IReadOnlyList<ChatMessage> messages) =>
        generator.Tokenize(generator.ChatTemplate.Pieces(messages), addBos: true);
}
