using BitNet.Inference.Generation;

namespace BitNet.Inference.Tests.Generation;

public class ChatTemplateTests
{
    [Fact]
    public void System_and_user_render_as_bitnet_cpp_does_with_the_assistant_prompt_last()
    {
        string text = ChatTemplate.Bitnet.Render([
            new ChatMessage(ChatRole.System, "You are a helpful assistant."),
            new ChatMessage(ChatRole.User, "What is 1.58-bit quantization?"),
        ]);
        Assert.Equal("System: You are a helpful assistant.User: What is 1.58-bit quantization?<|eot_id|>Assistant: ", text);
    }

    [Fact]
    public void Assistant_turns_have_no_terminator_so_the_next_user_turn_follows_directly()
    {
        string text = ChatTemplate.Bitnet.Render([
            new ChatMessage(ChatRole.User, "Hi"),
            new ChatMessage(ChatRole.Assistant, "Hello!"),
            new ChatMessage(ChatRole.User, "Bye"),
        ]);
        Assert.Equal("User: Hi<|eot_id|>Assistant: Hello!User: Bye<|eot_id|>Assistant: ", text);
    }
}
