using System.Text.Json;
using BitNet.Cli.Commands;
using BitNet.Inference.Api;
using BitNet.Tests.Shared;

namespace BitNet.Cli.Tests.Errors;

/// <summary>
/// What a user mistypes gets one clear line on stderr and a non-zero exit, never a .NET type name,
/// a parameter name or a raw runtime message; values are checked with the API's rules and messages.
/// </summary>
public sealed class CliInputErrorTests : IDisposable
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;
    private static string Model => SharedData.OracleModelPath;
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();
    private readonly string _dir = Directory.CreateTempSubdirectory("bitnet-cli-errors-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static Task<int> Run(System.CommandLine.Command command, params string[] args) =>
        CommandCatalog.Parse([command.Name, .. args], [command]).InvokeAsync(cancellationToken: Ct);

    private static void AssertNoDotNetNoise(string text)
    {
        Assert.DoesNotContain("System.", text);
        Assert.DoesNotContain("(Parameter", text);
        Assert.DoesNotContain("Actual value was", text);
        Assert.DoesNotContain("Could not find a part of the path", text);
        Assert.DoesNotContain("   at ", text);
    }

    [Theory]
    [InlineData("@#$%^&*")]
    [InlineData("@home")]
    public async Task A_prompt_starting_with_at_is_text_not_a_response_file(string prompt)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(null, "tokenize", "-m", Model, "-p", prompt, "--no-bos");
        Assert.True(exit == 0, stderr);
        string file = Path.Combine(_dir, "prompt.txt");
        await File.WriteAllTextAsync(file, prompt, Ct);
        Assert.Equal(0, await Run(TokenizeCommand.Create(_out, _err), "-m", Model, "-f", file, "--no-bos"));
        Assert.Equal(JsonSerializer.Deserialize<int[]>(_out.ToString()), JsonSerializer.Deserialize<int[]>(stdout));
    }

    [Fact]
    public async Task A_prompt_file_with_a_utf8_byte_order_mark_reads_as_its_text()
    {
        string plain = Path.Combine(_dir, "plain.txt"), marked = Path.Combine(_dir, "marked.txt");
        File.WriteAllBytes(plain, "caf\u00e9 \n"u8.ToArray());
        File.WriteAllBytes(marked, [0xEF, 0xBB, 0xBF, .. "caf\u00e9 \n"u8]);
        Assert.Equal(0, await Run(TokenizeCommand.Create(_out, _err), "-m", Model, "-f", plain, "--no-bos"));
        string expected = _out.ToString();
        _out.GetStringBuilder().Clear();
        Assert.Equal(0, await Run(TokenizeCommand.Create(_out, _err), "-m", Model, "-f", marked, "--no-bos"));
        Assert.Equal(expected, _out.ToString());
    }

    [Fact]
    public async Task Inspect_bench_and_logits_fall_back_to_BITNET_MODEL()
    {
        var env = new Dictionary<string, string?> { ["BITNET_MODEL"] = Model };
        var inspect = await CliProcess.RunAsync(env, "inspect");
        Assert.True(inspect.ExitCode == 0, inspect.Stderr);
        Assert.Contains("bitnet-small", inspect.Stdout);

        var bench = await CliProcess.RunAsync(env, "bench", "-p", "2", "-n", "1", "-r", "1", "-t", "1", "--json", "--no-probe");
        Assert.True(bench.ExitCode == 0, bench.Stderr);

        string output = Path.Combine(_dir, "logits.f32");
        var logits = await CliProcess.RunAsync(env, "logits", "--tokens", "128000,791", "-o", output, "-t", "1");
        Assert.True(logits.ExitCode == 0, logits.Stderr);
        Assert.Equal(2L * 128256 * sizeof(float), new FileInfo(output).Length);
    }

    [Fact]
    public async Task A_context_too_small_puts_the_error_on_its_own_line()
    {
        const string prompt = "one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen sixteen seventeen";
        Assert.Equal(1, await Run(GenerateCommand.Create(_out, _err), "-m", Model, "-p", prompt, "-c", "16", "-n", "1", "-t", "1"));
        Assert.Equal(prompt + Environment.NewLine, _out.ToString());
        Assert.StartsWith("error: ", _err.ToString());
    }

    /// <summary>Every command that takes -c checks it by one rule, serve's: 16 to 1048576 when given.</summary>
    [Theory]
    [InlineData("generate", "5")]
    [InlineData("chat", "5")]
    [InlineData("serve", "5")]
    [InlineData("generate", "0")]
    [InlineData("chat", "-1")]
    [InlineData("generate", "1048577")]
    public async Task A_context_size_out_of_range_is_one_line_and_a_nonzero_exit_for_every_command(string command, string size)
    {
        string[] args = command == "generate" ? ["-p", "hi", "-n", "1"] : [];
        var (exit, stdout, stderr) = await CliProcess.RunAsync(null, [command, "-m", Model, "-t", "1", "-c", size, .. args]);
        Assert.NotEqual(0, exit);
        Assert.Equal($"error: --ctx-size must be from 16 to 1048576; got {size}", stderr.Trim());
        AssertNoDotNetNoise(stderr);
        Assert.DoesNotContain("listening", stdout);
        Assert.DoesNotContain("chat with", stderr);
    }

    [Fact]
    public async Task A_directory_given_as_the_model_is_named_as_a_directory()
    {
        Assert.Equal(1, await Run(TokenizeCommand.Create(_out, _err), "-m", _dir, "-p", "x"));
        Assert.Equal($"error: '{_dir}' is a directory; -m takes a GGUF model file", _err.ToString().Trim());
    }

    [Theory]
    [InlineData("dir", "is a directory; -f takes a UTF-8 text file")]
    [InlineData("missing", "not found")]
    [InlineData("latin1", "is not valid UTF-8")]
    [InlineData("utf16", "is not valid UTF-8")]
    public async Task A_prompt_file_that_cannot_be_read_as_text_is_named_in_one_line(string kind, string message)
    {
        string path = kind switch
        {
            "dir" => _dir,
            "missing" => Path.Combine(_dir, "nope", "prompt.txt"),
            _ => Path.Combine(_dir, kind + ".txt"),
        };
        if (kind == "latin1") File.WriteAllBytes(path, [(byte)'c', 0xE9, (byte)'t', (byte)'e']);
        if (kind == "utf16") File.WriteAllBytes(path, [0xFF, 0xFE, (byte)'h', 0, (byte)'i', 0]);
        Assert.Equal(1, await Run(TokenizeCommand.Create(_out, _err), "-m", Model, "-f", path));
        Assert.Equal($"error: {(kind == "dir" ? $"'{path}'" : $"prompt file '{path}'")} {message}", _err.ToString().Trim());
    }

    [Theory]
    [InlineData("-5", "--seed: seed must be -1 (random) or a non-negative integer; got -5")]
    [InlineData("abc", "--seed expects an integer; got 'abc'")]
    [InlineData("1.5", "--seed expects an integer; got '1.5'")]
    public async Task A_bad_seed_is_one_clear_line(string seed, string message)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(null, "generate", "-m", Model, "-p", "x", "-n", "1", "--seed", seed);
        Assert.NotEqual(0, exit);
        Assert.Contains(message, stderr + stdout);
        AssertNoDotNetNoise(stderr + stdout);
    }

    [Fact]
    public async Task A_token_id_outside_the_vocabulary_names_the_vocabulary()
    {
        Assert.Equal(1, await Run(LogitsCommand.Create(_err), "-m", Model, "--tokens", "128000,999999", "-o", Path.Combine(_dir, "x.f32"), "-t", "1"));
        Assert.Equal("error: --tokens: token id 999999 is outside the vocabulary (0 to 128255)", _err.ToString().Trim());
        AssertNoDotNetNoise(_err.ToString());
    }

    [Fact]
    public async Task Dummy_into_a_missing_folder_names_the_folder()
    {
        Assert.Equal(1, await Run(DummyCommand.Create(_out, _err), "-o", "/nonexistent/dir/x.gguf", "--shape", "tiny"));
        Assert.Equal("error: cannot write '/nonexistent/dir/x.gguf': the folder '/nonexistent/dir' does not exist", _err.ToString().Trim());
    }

    [Fact]
    public async Task Logits_into_a_directory_or_a_missing_folder_says_so_before_loading_the_model()
    {
        Assert.Equal(1, await Run(LogitsCommand.Create(_err), "-m", Model, "--tokens", "128000", "-o", _dir, "-t", "1"));
        Assert.Equal($"error: cannot write '{_dir}': it is a directory; give a file name such as {Path.Combine(_dir, "logits.f32")}", _err.ToString().Trim());
        _err.GetStringBuilder().Clear();
        Assert.Equal(1, await Run(LogitsCommand.Create(_err), "-m", Model, "--tokens", "128000", "-o", "/nonexistent/dir/x.f32", "-t", "1"));
        Assert.Equal("error: cannot write '/nonexistent/dir/x.f32': the folder '/nonexistent/dir' does not exist", _err.ToString().Trim());
    }

    [Theory]
    [InlineData("--min-p", "9")]
    [InlineData("--top-p", "7")]
    [InlineData("--temp", "-1")]
    [InlineData("--temp", "NaN")]
    [InlineData("--repeat-penalty", "0")]
    [InlineData("--repeat-last-n", "-2")]
    [InlineData("--top-p", "1.5")]
    public async Task Sampling_values_the_api_refuses_are_refused_with_the_apis_message(string flag, string value)
    {
        Assert.Equal(1, await Run(GenerateCommand.Create(_out, _err), "-m", Model, "-p", "x", "-n", "1", flag, value));
        float number = float.Parse(value, System.Globalization.CultureInfo.InvariantCulture);
        string? apiMessage = flag switch
        {
            "--min-p" => SamplingRules.MinP(number),
            "--top-p" => SamplingRules.TopP(number),
            "--temp" => SamplingRules.Temperature(number),
            "--repeat-penalty" => SamplingRules.RepeatPenalty(number),
            _ => SamplingRules.RepeatLastN((int)number),
        };
        Assert.NotNull(apiMessage);
        Assert.Equal($"error: {flag}: {apiMessage}", _err.ToString().Trim());
        Assert.Equal("", _out.ToString()); // refused before the model is loaded or the prompt echoed
    }

    [Fact]
    public async Task Every_bad_sampling_value_is_named_at_once()
    {
        Assert.Equal(1, await Run(GenerateCommand.Create(_out, _err), "-m", Model, "-p", "x", "-n", "1", "--temp", "-1", "--top-p", "7"));
        Assert.Equal($"error: --temp: {SamplingRules.Temperature(-1)}; --top-p: {SamplingRules.TopP(7)}", _err.ToString().Trim());
    }

    /// <summary>One more thread than this machine's processors, and a negative count.</summary>
    public static TheoryData<string> BadThreadCounts => [(Environment.ProcessorCount + 1).ToString(System.Globalization.CultureInfo.InvariantCulture), "-1"];

    [Theory]
    [MemberData(nameof(BadThreadCounts))]
    public async Task Threads_beyond_the_processors_are_refused(string threads)
    {
        Assert.Equal(1, await Run(GenerateCommand.Create(_out, _err), "-m", Model, "-p", "x", "-n", "1", "-t", threads));
        Assert.Equal($"error: --threads must be from 1 to {Environment.ProcessorCount} (the processors of this machine), or 0 for the default; got {threads}",
            _err.ToString().Trim());
    }

    public static TheoryData<string, string, string> BadServeSettings
    {
        get
        {
            string beyond = (Environment.ProcessorCount + 1).ToString(System.Globalization.CultureInfo.InvariantCulture);
            string threads = $"--threads must be from 1 to {Environment.ProcessorCount} (the processors of this machine); got ";
            return new()
            {
                { "--port", "99999", "the port 99999 is out of range" },
                { "--host", "999.1.1.1", "the host '999.1.1.1' is not a valid IP address" },
                { "-t", beyond, threads + beyond },
                { "-t", "0", threads + "0" },
                { "--ctx-size", "15", "--ctx-size must be from 16 to 1048576; got 15" },
                // The flags that size the batch take the BITNET_* variables' ranges (beyond them: a .NET overflow at load, or a cache that holds nothing).
                { "-np", "100000", "--parallel must be from 1 to 256 (0: the default, 4); got 100000" },
                { "--kv-cache-tokens", "8", "--kv-cache-tokens must be from 16 to 268435456 (0: parallel × context within the memory limit); got 8" },
                { "--kv-cache-tokens", "9000000000000", "--kv-cache-tokens must be from 16 to 268435456 (0: parallel × context within the memory limit); got 9000000000000" },
                { "--kv-cache-tokens", "2147483647", "--kv-cache-tokens must be from 16 to 268435456 (0: parallel × context within the memory limit); got 2147483647" },
                { "--kv-cache-tokens", "2147483000", "--kv-cache-tokens must be from 16 to 268435456 (0: parallel × context within the memory limit); got 2147483000" },
                { "--prompt-tokens-per-step", "2000000000", "--prompt-tokens-per-step must be from 3 to 4096; got 2000000000" },
            };
        }
    }

    [Theory]
    [MemberData(nameof(BadServeSettings))]
    public async Task Serve_refuses_a_bad_address_thread_count_or_context_in_one_line(string flag, string value, string message)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(null, "serve", "-m", Model, flag, value);
        Assert.Equal(2, exit);
        Assert.Contains(message, stderr);
        Assert.DoesNotContain("or 0 for the default", stderr);
        Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.DoesNotContain("listening", stdout);
        AssertNoDotNetNoise(stderr);
    }

    [Theory]
    [InlineData("2147483647")]
    [InlineData("2147483000")]
    public async Task Serve_refuses_a_kv_cache_variable_beyond_its_range_in_one_line(string value)
    {
        var (exit, stdout, stderr) = await CliProcess.RunAsync(new Dictionary<string, string?> { [EnvVars.KvCacheTokens] = value }, "serve", "-m", Model, "--port", "0");
        Assert.Equal(2, exit);
        Assert.Equal($"error: {EnvVars.KvCacheTokens}='{value}' is not valid: expected an integer from 16 to {ApiOptions.MaxKvCacheTokens}", stderr.Trim());
        Assert.DoesNotContain("listening", stdout);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Serve_with_a_kv_cache_beyond_what_the_model_holds_exits_with_one_line_saying_how_many_it_holds(bool asFlag)
    {
        string tokens = ApiOptions.MaxKvCacheTokens.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var (exit, _, stderr) = asFlag
            ? await CliProcess.RunAsync(null, "serve", "-m", Model, "--port", "0", "--kv-cache-tokens", tokens)
            : await CliProcess.RunAsync(new Dictionary<string, string?> { [EnvVars.KvCacheTokens] = tokens }, "serve", "-m", Model, "--port", "0");
        Assert.Equal(1, exit);
        long max;
        using (var file = BitNet.Inference.Gguf.GgufFile.Open(Model))
            max = BitNet.Inference.Model.KvCachePool.MaxTokens(BitNet.Inference.Model.ModelConfig.FromGguf(file));
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.StartsWith($"bitnet: the model failed to load: a KV cache of {tokens} tokens is more than this model allows: at most {max} (", line);
        AssertNoDotNetNoise(stderr);
    }

    [Theory]
    [InlineData(true)]
    [InlineData(false)]
    public async Task Serve_with_a_kv_cache_beyond_the_memory_limit_exits_with_one_line_saying_how_many_tokens_fit(bool asFlag)
    {
        // The limit the engine sizes the cache by, set here so the test does not depend on this machine's memory.
        var environment = new Dictionary<string, string?> { ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = "128" };
        if (!asFlag)
            environment[EnvVars.KvCacheTokens] = "1000000";
        string[] args = asFlag ? ["serve", "-m", Model, "--port", "0", "--kv-cache-tokens", "1000000"] : ["serve", "-m", Model, "--port", "0"];
        var (exit, _, stderr) = await CliProcess.RunAsync(environment, args);
        Assert.Equal(1, exit);
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Matches(@"^bitnet: the model failed to load: a KV cache of 1000000 tokens needs 1\.9 GiB beside 70\.7 MiB of weights, " +
            @"more than the 128\.0 MiB of memory this process may use; at most \d+ tokens fit$", line);
        AssertNoDotNetNoise(stderr);
    }

    [Theory]
    [InlineData("1048576", "1")]     // one position past serve's largest context
    [InlineData("100000000", "1")]   // past a layer's largest array (an overflow before)
    [InlineData("1", "2147483646")]
    public async Task A_bench_longer_than_a_cache_can_hold_is_one_line(string promptTokens, string genTokens)
    {
        var (exit, _, stderr) = await CliProcess.RunAsync(null, "bench", "-m", Model, "-p", promptTokens, "-n", genTokens, "-r", "1", "-t", "1", "--no-probe");
        Assert.Equal(2, exit);
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Matches($@"^error: -p {promptTokens} and -n {genTokens} need \d+ positions of KV cache; at most 1048576 fit this model$", line);
        AssertNoDotNetNoise(stderr);
    }

    [Fact]
    public async Task A_bench_whose_kv_caches_exceed_the_memory_limit_is_one_line_before_the_model_loads()
    {
        // The limit the engine's load check uses, set here so the test does not depend on this machine's memory:
        // 17 × 63 blocks of 32 positions (the single stream's cache, then 1 and 16 streams' pools held together)
        // need 66.9 MiB beside the 70.7 MiB of weights.
        var environment = new Dictionary<string, string?> { ["AWS_LAMBDA_FUNCTION_MEMORY_SIZE"] = "128" };
        var (exit, stdout, stderr) = await CliProcess.RunAsync(environment,
            "bench", "-m", Model, "-p", "2000", "-n", "1", "-r", "1", "-t", "1", "--no-probe", "--parallel", "16");
        Assert.Equal(2, exit);
        string line = Assert.Single(stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries));
        Assert.Equal("error: -p 2000 and -n 1 with --parallel 1,16 need 34272 positions of KV cache, 66.9 MiB beside 70.7 MiB of weights, " +
            "more than the 128.0 MiB of memory this process may use; at most 29344 positions fit", line);
        Assert.Equal("", stdout);
        AssertNoDotNetNoise(stderr);
    }

    [Fact]
    public void A_bench_counts_the_kv_caches_it_holds_together_against_the_weights_as_stored()
    {
        using var file = BitNet.Inference.Gguf.GgufFile.Open(Model);
        var config = BitNet.Inference.Model.ModelConfig.FromGguf(file);
        var memory = new BitNet.Inference.Model.ModelLoadOptions { Storage = BitNet.Inference.Model.WeightStorage.Memory };
        var mapped = memory with { Storage = BitNet.Inference.Model.WeightStorage.Mapped };
        long perToken = BitNet.Inference.Model.KvCachePool.BytesPerToken(config);
        long weights = BitNet.Inference.Generation.KvBudget.WeightBytes(file, config, memory.Storage, memory.LmHead);
        long privateWeights = BitNet.Inference.Generation.KvBudget.WeightBytes(file, config, mapped.Storage, mapped.LmHead);
        // -p 30 -n 1: one block; --parallel 1,4: five blocks held together.
        Assert.Null(BenchCommand.KvCacheProblem(file, memory, 30, 1, [], weights + 32 * perToken));
        Assert.StartsWith("-p 31 and -n 1 need 64 positions of KV cache, ", BenchCommand.KvCacheProblem(file, memory, 31, 1, [], weights + 32 * perToken));
        Assert.Null(BenchCommand.KvCacheProblem(file, memory, 30, 1, [1, 4], weights + 5 * 32 * perToken));
        Assert.EndsWith("with --parallel 1,4 need 160 positions of KV cache, 0.3 MiB beside 70.7 MiB of weights, more than the 70.9 MiB of memory this process may use; at most 128 positions fit",
            BenchCommand.KvCacheProblem(file, memory, 30, 1, [1, 4], weights + 4 * 32 * perToken));
        // Mapped weights count only what the process holds of them, as at the engine's load.
        Assert.Null(BenchCommand.KvCacheProblem(file, mapped, 30, 1, [1, 4], privateWeights + 5 * 32 * perToken));
        Assert.NotNull(BenchCommand.KvCacheProblem(file, memory, 30, 1, [1, 4], privateWeights + 5 * 32 * perToken));
    }

    /// <summary>Opening a named pipe for reading waits for a writer: its type is checked first, so each command answers at once.</summary>
    [Theory]
    [InlineData("generate", "-p", "hi", "-n", "1", "-t", "1")]
    [InlineData("bench", "-p", "2", "-n", "1", "-r", "1", "-t", "1", "--no-probe")]
    [InlineData("inspect")]
    [InlineData("serve", "--port", "0", "-t", "1")]
    public async Task A_named_pipe_given_as_the_model_is_named_as_not_a_regular_file(params string[] args)
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "mkfifo and statx are Linux's");
        string fifo = Path.Combine(_dir, "model.gguf");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo]))
            await mkfifo.WaitForExitAsync(Ct);
        var (exit, stdout, stderr) = await CliProcess.RunAsync(null, [args[0], "-m", fifo, .. args[1..]]);
        Assert.NotEqual(0, exit);
        Assert.Equal($"error: '{fifo}' is not a regular file but a named pipe; -m takes a GGUF model file", stderr.Trim());
        Assert.DoesNotContain("listening", stdout);
    }

    [Fact]
    public void A_named_pipe_or_a_directory_is_refused_by_every_host_before_the_prefetch_reads_it()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "mkfifo and statx are Linux's");
        string fifo = Path.Combine(_dir, "model.gguf");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo]))
            mkfifo.WaitForExit();
        var pipe = Assert.Throws<IOException>(() => ModelLoading.ResolvePath(new ApiOptions { ModelPath = fifo }));
        Assert.Equal($"the model path '{fifo}' is not a regular file but a named pipe; give a GGUF model file", pipe.Message);
        var directory = Assert.Throws<IOException>(() => ModelLoading.ResolvePath(new ApiOptions { ModelPath = _dir }));
        Assert.Equal($"the model path '{_dir}' is a directory; give a GGUF model file", directory.Message);
    }

    [Theory]
    [InlineData("bench", "-p", "2", "-n", "1", "-r", "1", "--no-probe")]
    [InlineData("logits", "--tokens", "1", "-o", "OUT")]
    public async Task An_unknown_kernel_is_named_without_a_dotnet_parameter_name(params string[] args)
    {
        string[] resolved = [.. args.Select(a => a == "OUT" ? Path.Combine(_dir, "x.f32") : a)];
        var (exit, _, stderr) = await CliProcess.RunAsync(null, [.. resolved, "-m", Model, "-t", "1", "--kernel", "zz"]);
        Assert.NotEqual(0, exit);
        Assert.Equal("error: unknown kernel 'zz'; choose one of avx512vnni, avx512gfni, avx512, avx2, dotprod, neon, scalar", stderr.Trim());
    }

    [Fact]
    public async Task Logits_into_a_full_disk_is_an_error_without_a_wrote_line()
    {
        Assert.SkipUnless(File.Exists("/dev/full"), "needs /dev/full");
        Assert.Equal(1, await Run(LogitsCommand.Create(_err), "-m", Model, "--tokens", "128000", "-o", "/dev/full", "-t", "1"));
        Assert.DoesNotContain("wrote", _err.ToString());
        Assert.StartsWith("error: ", _err.ToString());
        Assert.Single(_err.ToString().Split('\n', StringSplitOptions.RemoveEmptyEntries));
    }

    [Fact]
    public async Task Chat_refuses_a_system_prompt_that_leaves_no_room_for_a_turn_before_the_first_prompt()
    {
        string system = string.Join(' ', Enumerable.Repeat("word", 40));
        Assert.Equal(1, await Run(ChatCommand.Create(new StringReader("Hello\nAgain\n"), _out, _err), "-m", Model, "-sys", system, "-c", "32", "-n", "1", "-t", "1"));
        Assert.Matches(@"^error: the system prompt \(-sys\) takes \d+ of the 32 tokens of context, leaving no room for a turn; shorten it or raise --ctx-size$",
            _err.ToString().Trim());
        Assert.Equal("", _out.ToString());
    }

    [Fact]
    public async Task Chat_takes_s_as_the_seed_and_sys_as_the_system_prompt_like_llama_cpp()
    {
        var first = new StringWriter();
        var second = new StringWriter();
        string[] args = ["-m", Model, "-s", "11", "-sys", "Be terse.", "-n", "4", "--temp", "1", "-t", "1", "-c", "128"];
        Assert.Equal(0, await Run(ChatCommand.Create(new StringReader("Hello\n"), first, _err), args));
        Assert.Equal(0, await Run(ChatCommand.Create(new StringReader("Hello\n"), second, _err), args));
        Assert.Equal(first.ToString(), second.ToString()); // same seed, same sampled answer
        Assert.Equal(0, await Run(ChatCommand.Create(new StringReader("Hello\n"), _out, _err), "-m", Model, "--system", "Be terse.", "-n", "1", "--temp", "0.7", "-t", "1", "-c", "128"));
    }
}
