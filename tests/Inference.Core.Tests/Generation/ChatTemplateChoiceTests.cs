using BitNet.Inference.Generation;
using BitNet.Inference.Gguf;
using BitNet.Inference.Tests.Oracle;
using BitNet.Inference.Tokenization;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Generation;

/// <summary>
/// The chat formats of llama.cpp (bitnet.cpp's tree) and how a model's is chosen: exact text and token
/// ids against the oracles' chat prompts, the markers of tokenizer.chat_template, and the refusals.
/// </summary>
public class ChatTemplateChoiceTests
{
    private static readonly ChatMessage[] OracleChat =
    [
        new(ChatRole.System, "You are a helpful assistant."),
        new(ChatRole.User, "What is 1.58-bit quantization?"),
    ];

    [Fact]
    public void Llama3_renders_the_oracle_chat_prompt_to_bitnet_cpp_ids()
    {
        using var file = GgufFile.Open(ArchModels.PathOf(ArchModels.LlamaSmall));
        var tokenizer = Tokenizer.FromGguf(file);
        string text = ChatTemplate.Llama3.Render(OracleChat);
        Assert.Equal(CompactOracle.Load(ArchModels.LlamaSmall + "-i2_s.chat").PromptIds, tokenizer.Encode(text, addBos: true, parseSpecial: true));
    }

    [Fact]
    public void Bitnet_renders_the_oracle_chat_prompt_to_bitnet_cpp_ids()
    {
        using var file = GgufFile.Open(ArchModels.PathOf(ArchModels.Bitnet25));
        var tokenizer = Tokenizer.FromGguf(file);
        string text = ChatTemplate.Bitnet.Render(OracleChat);
        Assert.Equal(CompactOracle.Load(ArchModels.Bitnet25 + "-i2_s.chat").PromptIds, tokenizer.Encode(text, addBos: true, parseSpecial: true));
    }

    [Fact]
    public void Llama3_trims_content_and_ends_with_the_assistant_header()
    {
        string text = ChatTemplate.Llama3.Render([new(ChatRole.User, "  Hi \n"), new(ChatRole.Assistant, "Hello"), new(ChatRole.User, "Bye")]);
        Assert.Equal("<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\nHello<|eot_id|>" +
                     "<|start_header_id|>user<|end_header_id|>\n\nBye<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n", text);
    }

    [Fact]
    public void Falcon3_puts_each_role_in_its_marker_with_untrimmed_content()
    {
        string text = ChatTemplate.Falcon3.Render([new(ChatRole.System, "Be brief."), new(ChatRole.User, " 2+2? ")]);
        Assert.Equal("<|system|>\nBe brief.\n<|user|>\n 2+2? \n<|assistant|>\n", text);
    }

    [Fact]
    public void Falcon_e_writes_the_role_name_straight_before_the_content()
    {
        string text = ChatTemplate.FalconE.Render([new(ChatRole.User, "Hi"), new(ChatRole.Assistant, "Hello"), new(ChatRole.User, "More")]);
        Assert.Equal("userHi\nassistantHello\nuserMore\nassistant\n", text);
    }

    [Fact]
    public void A_conversation_turn_carries_the_generation_prompt_only_after_a_user_message()
    {
        Assert.Equal("<|start_header_id|>system<|end_header_id|>\n\nS<|eot_id|>", ChatTemplate.Llama3.RenderTurn(new(ChatRole.System, "S")));
        Assert.Equal("<|user|>\nU\n<|assistant|>\n", ChatTemplate.Falcon3.RenderTurn(new(ChatRole.User, "U")));
        Assert.Equal("System: S", ChatTemplate.Bitnet.RenderTurn(new(ChatRole.System, "S")));
        Assert.Equal("User: U<|eot_id|>Assistant: ", ChatTemplate.Bitnet.RenderTurn(new(ChatRole.User, "U")));
    }

    [Theory]
    [InlineData("{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n' + message['content'] | trim + '<|eot_id|>' }}{% endfor %}", "llama3")]
    [InlineData("{% for message in messages %}{% if message['role'] == 'user' %}{{ '<|user|>\\n' + message['content'] + '\\n' }}{% elif message['role'] == 'assistant' %}{{ '<|assistant|>\\n' + message['content'] + '\\n' }}{% endif %}{% endfor %}", "falcon3")]
    [InlineData("{% for message in messages %}{{ message['role'] + ': ' + message['content'] }}{% endfor %}BITNET", "bitnet")]
    [InlineData("falcon_e", "falcon_e")]
    [InlineData("llama3", "llama3")]
    public void A_file_template_is_recognised_by_llama_cpp_markers_or_name(string template, string expected) =>
        Assert.Equal(expected, ChatTemplate.Detect(template)?.Name);

    [Theory]
    [InlineData("{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\\n' + m['content'] + '<|im_end|>\\n' }}{% endfor %}")]   // ChatML
    [InlineData("[INST] {{ messages[0]['content'] }} [/INST]")]                                                            // Llama 2
    [InlineData("<|user|>{{ content }}<|endoftext|>")]                                                                     // Zephyr
    [InlineData("{{ messages }}")]
    public void A_template_in_a_format_we_do_not_render_is_unknown(string template) => Assert.Null(ChatTemplate.Detect(template));

    [Fact]
    public void An_unknown_template_refuses_to_render_and_names_the_way_out()
    {
        ChatTemplate unknown = ChatTemplate.Unknown("not a format we know; choose one with --chat-template NAME");
        Assert.False(unknown.IsKnown);
        var error = Assert.Throws<ChatTemplateException>(() => unknown.Render(OracleChat));
        Assert.Contains("--chat-template", error.Message);
    }

    [Fact]
    public void Files_without_a_template_get_the_format_their_architecture_and_vocabulary_imply()
    {
        using var llama = GgufFile.Open(ArchModels.PathOf(ArchModels.LlamaUntied));
        var tokenizer = Tokenizer.FromGguf(llama);
        Assert.Same(ChatTemplate.Llama3, ChatTemplate.Choose(llama, t => tokenizer.TryGetId(t, out _)));
        using var bitnet = GgufFile.Open(ArchModels.PathOf(ArchModels.BitnetArch));
        Assert.Same(ChatTemplate.Bitnet, ChatTemplate.Choose(bitnet, _ => false));
        // A llama file whose vocabulary has no Llama 3 headers implies nothing: unknown, not a guess.
        Assert.False(ChatTemplate.Choose(llama, _ => false).IsKnown);
    }

    [Fact]
    public void A_requested_template_wins_and_a_wrong_name_is_an_error()
    {
        using var llama = GgufFile.Open(ArchModels.PathOf(ArchModels.LlamaSmall));
        Assert.Same(ChatTemplate.Falcon3, ChatTemplate.Choose(llama, _ => true, "falcon3"));
        Assert.Same(ChatTemplate.FalconE, ChatTemplate.Choose(llama, _ => true, "Falcon-E"));
        var error = Assert.Throws<ChatTemplateException>(() => ChatTemplate.Choose(llama, _ => true, "chatml"));
        Assert.Contains("unknown chat template 'chatml' (known: bitnet, llama3, falcon3, falcon_e)", error.Message);
    }

    [Fact]
    public void The_engine_serves_a_llama_model_in_the_llama3_format()
    {
        using var engine = BitNetEngine.Load(new EngineOptions { ModelPath = ArchModels.PathOf(ArchModels.LlamaSmall), ContextLength = 64 });
        Assert.Equal("llama3", engine.ChatTemplate.Name);
        Assert.StartsWith("<|start_header_id|>user", engine.ApplyChatTemplate([new(ChatRole.User, "Hi")]));
    }
}
