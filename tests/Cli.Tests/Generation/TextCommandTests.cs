using System.CommandLine;
using System.Text.Json;
using BitNet.Cli.Commands;
using BitNet.Tests.Shared;

namespace BitNet.Cli.Tests.Generation;

/// <summary>`bitnet generate`, `chat` and `tokenize`, run in-process on the oracle model.</summary>
public sealed class TextCommandTests : IDisposable
{
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public void Dispose()
    {
        _out.Dispose();
        _err.Dispose();
    }

    private static Task<int> Run(Command command, params string[] args) =>
        CommandCatalog.Parse([command.Name, .. args], [command]).InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);

    private static string Model => SharedData.OracleModelPath;

    [Fact]
    public async Task Tokenize_prints_the_ids_as_a_json_array_with_bos()
    {
        Assert.Equal(0, await Run(TokenizeCommand.Create(_out, _err), "-m", Model, "-p", "The capital of France is"));
        Assert.Equal([128000, 791, 6864, 315, 9822, 374], JsonSerializer.Deserialize<int[]>(_out.ToString())!);
    }

    [Fact]
    public async Task Tokenize_honours_no_bos_and_the_pre_tokenizer_choice()
    {
        Assert.Equal(0, await Run(TokenizeCommand.Create(_out, _err), "-m", Model, "-p", "I'm", "--no-bos"));
        Assert.Equal(0, await Run(TokenizeCommand.Create(_out, _err), "-m", Model, "-p", "I'm", "--no-bos", "--pre", "default"));
        string[] lines = _out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.Equal([40, 2846], JsonSerializer.Deserialize<int[]>(lines[0])!);
        Assert.Equal([40, 6, 76], JsonSerializer.Deserialize<int[]>(lines[1])!);
    }

    [Fact]
    public async Task Tokenize_reads_a_prompt_file_byte_for_byte_like_llama_tokenize_f()
    {
        string path = Path.Combine(Path.GetTempPath(), $"bitnet-tokenize-{Guid.NewGuid():N}.txt");
        File.WriteAllText(path, "col1\tcol2\n  x \r\n");
        try
        {
            Assert.Equal(0, await Run(TokenizeCommand.Create(_out, _err), "-m", Model, "-f", path, "--no-bos"));
            Assert.Equal(0, await Run(TokenizeCommand.Create(_out, _err), "-m", Model, "-p", "col1\tcol2\n  x \r\n", "--no-bos"));
            string[] lines = _out.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries);
            // The tab, the newlines and the CR survive: the same ids as the literal text, and no BOS.
            Assert.Equal(JsonSerializer.Deserialize<int[]>(lines[1])!, JsonSerializer.Deserialize<int[]>(lines[0])!);
            Assert.DoesNotContain(128000, JsonSerializer.Deserialize<int[]>(lines[0])!);
        }
        finally
        {
            File.Delete(path);
        }
        Assert.Equal(1, await Run(TokenizeCommand.Create(_out, _err), "-m", Model));
        Assert.Contains("--prompt (-p) or --file (-f) is required", _err.ToString());
    }

    [Fact]
    public async Task Tokenize_with_a_missing_model_file_is_a_one_line_error()
    {
        Assert.Equal(1, await Run(TokenizeCommand.Create(_out, _err), "-m", "/nonexistent/model.gguf", "-p", "x"));
        Assert.StartsWith("error: model file '/nonexistent/model.gguf' not found", _err.ToString());
    }

    [Fact]
    public async Task Generate_greedy_streams_the_prompt_and_continuation_and_times_to_stderr()
    {
        Assert.Equal(0, await Run(GenerateCommand.Create(_out, _err), "-m", Model, "-p", "The capital of France is", "-n", "4", "--temp", "0", "-t", "1", "-c", "64"));
        string text = _out.ToString();
        Assert.StartsWith("The capital of France is", text);
        Assert.True(text.TrimEnd('\n').Length > "The capital of France is".Length);
        Assert.Contains("generation: 4 tokens", _err.ToString());
        Assert.Contains("finish: length", _err.ToString());

        // Same flags, same output: greedy is deterministic.
        var again = new StringWriter();
        Assert.Equal(0, await Run(GenerateCommand.Create(again, _err), "-m", Model, "-p", "The capital of France is", "-n", "4", "--temp", "0", "-t", "1", "-c", "64"));
        Assert.Equal(text, again.ToString());
    }

    [Fact]
    public async Task Generate_with_a_seed_is_reproducible_and_no_display_prompt_prints_only_new_text()
    {
        string[] args = ["-m", Model, "-p", "Hello", "-n", "5", "--temp", "1.0", "--seed", "7", "-t", "1", "-c", "64", "--no-display-prompt", "--ignore-eos"];
        Assert.Equal(0, await Run(GenerateCommand.Create(_out, _err), args));
        var again = new StringWriter();
        Assert.Equal(0, await Run(GenerateCommand.Create(again, _err), args));
        Assert.Equal(_out.ToString(), again.ToString());
        Assert.False(_out.ToString().StartsWith("Hello", StringComparison.Ordinal));
    }

    [Fact]
    public async Task Generate_rejects_a_prompt_longer_than_the_context()
    {
        string prompt = string.Join(" ", Enumerable.Repeat("word", 100));
        Assert.Equal(1, await Run(GenerateCommand.Create(_out, _err), "-m", Model, "-p", prompt, "-n", "4", "-c", "32", "-t", "1"));
        Assert.Contains("but the context holds 32", _err.ToString());
    }

    [Fact]
    public async Task Chat_reads_turns_from_piped_input_and_ends_at_exit()
    {
        var input = new StringReader("Hi there\n\nWhat is 2+2?\n/exit\nnever read\n");
        var command = ChatCommand.Create(input, _out, _err);
        Assert.Equal(0, await Run(command, "-m", Model, "-sys", "You are a helpful assistant.", "-n", "3", "--temp", "0", "-t", "1", "-c", "128"));
        string output = _out.ToString();
        // Four prompts: two answered turns, the skipped empty line, and the one that read /exit.
        Assert.Equal(4, output.Split("> ").Length - 1);
        Assert.Contains("chat with bitnet-small-i2_s", _err.ToString());
    }

    [Fact]
    public async Task Chat_ends_at_end_of_input()
    {
        var command = ChatCommand.Create(new StringReader("Hello"), _out, _err);
        Assert.Equal(0, await Run(command, "-m", Model, "-n", "2", "--temp", "0", "-t", "1", "-c", "64"));
        Assert.Equal(2, _out.ToString().Split("> ").Length - 1);
    }
}
