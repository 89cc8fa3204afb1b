using BitNet.Cli.Commands;

namespace BitNet.Cli.Tests.Errors;

/// <summary>
/// Every option of every command that takes one of a set of words, parsed as `bitnet` parses it: any other
/// value is one line naming the option, the choices and the value, like the numeric options' errors.
/// </summary>
public sealed class ChoiceOptionTests
{
    private static string ParseError(params string[] args)
    {
        var errors = CommandCatalog.Parse(args).Errors;
        Assert.NotEmpty(errors);
        return string.Join("\n", errors.Select(e => e.Message));
    }

    [Theory]
    [InlineData("--lm-head must be one of f16, q8, screened; got 'bogus'", "generate", "-p", "hi", "--lm-head", "bogus")]
    [InlineData("--lm-head must be one of f16, q8, screened; got 'F16'", "chat", "--lm-head", "F16")]
    [InlineData("--lm-head must be one of f16, q8, screened; got ''", "bench", "--lm-head", "")]
    [InlineData("--weights must be one of auto, memory, mapped, move; got 'disk'", "generate", "-p", "hi", "--weights", "disk")]
    [InlineData("--weights must be one of auto, memory, mapped, move; got 'x'", "bench", "--weights", "x")]
    [InlineData("--pre must be one of llama3, default, falcon3; got 'gpt2'", "tokenize", "-p", "hi", "--pre", "gpt2")]
    [InlineData("--chat-template must be one of bitnet, llama3, falcon3, falcon_e; got 'chatml'", "chat", "--chat-template", "chatml")]
    [InlineData("--chat-template must be one of bitnet, llama3, falcon3, falcon_e; got 'chatml'", "serve", "--chat-template", "chatml")]
    [InlineData("--endpoint must be one of completions, chat; got 'embeddings'", "bench-cost", "--url", "http://x", "--hardware", "local", "--endpoint", "embeddings")]
    [InlineData("--arch must be one of arm64, x86_64; got 'amd64'", "tiers", "--arch", "amd64")]
    public void A_value_outside_an_options_choices_is_one_line_naming_them(string message, params string[] args)
    {
        string error = ParseError(args);
        Assert.Equal(message, error);
        Assert.DoesNotContain('\n', error);
    }

    [Fact]
    public void A_dummy_shape_outside_the_shapes_names_every_shape_on_one_line()
    {
        string error = ParseError("dummy", "-o", "x.gguf", "--shape", "huge");
        Assert.Equal($"--shape must be one of {string.Join(", ", BitNet.Inference.Dummy.DummyShape.All.Select(s => s.Name))}; got 'huge'", error);
    }

    [Theory]
    [InlineData("generate", "-p", "hi", "--lm-head", "q8", "--weights", "mapped", "--pre", "default", "--chat-template", "falcon_e")]
    [InlineData("dummy", "-o", "x.gguf", "--shape", "tiny")]
    [InlineData("bench-cost", "--url", "http://x", "--hardware", "local", "--endpoint", "chat")]
    [InlineData("tiers", "--arch", "x86_64")]
    public void Each_choice_parses(params string[] args) =>
        Assert.Empty(CommandCatalog.Parse(args).Errors);

    [Fact]
    public async Task Help_still_lists_the_choices_and_the_error_is_one_line_after_the_usage()
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(null, "generate", "-p", "hi", "--lm-head", "bogus");
        Assert.NotEqual(0, exit);
        Assert.Equal("--lm-head must be one of f16, q8, screened; got 'bogus'", stderr.Trim());
        var (_, help, _) = await CliProcess.RunAsync(null, "generate", "--help");
        Assert.Contains("--lm-head <f16|q8|screened>", help);
    }
}
