using BitNet.Tests.Shared;

namespace BitNet.Cli.Tests.Errors;

/// <summary>
/// Every comma-separated list of numbers (logits --tokens, bench --parallel, bench-cost --sweep,
/// tiers --tiers and --n-predict) is read by one rule, before any work: an empty item, an empty
/// list or a number too large for an int is one line naming the option, not a skipped item, a
/// misleading message or a stack trace.
/// </summary>
public sealed class NumberListTests : IDisposable
{
    private readonly string _dir = Directory.CreateTempSubdirectory("bitnet-cli-lists-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    public static TheoryData<string, string[]> BadLists => new()
    {
        { "error: --tokens '1,,2' has an empty item between commas", ["logits", "-m", SharedData.OracleModelPath, "--tokens", "1,,2", "-o", "OUT", "-t", "1"] },
        { "error: --parallel '1,,2' has an empty item between commas (e.g. 4 or 1,2,4,8)", ["bench", "-m", SharedData.OracleModelPath, "-p", "2", "-n", "1", "-r", "1", "-t", "1", "--no-probe", "-np", "1,,2"] },
        { "error: --sweep '1,,2' has an empty item between commas", ["bench-cost", "--url", "http://127.0.0.1:1", "--hardware", "local", "--results", "OUT", "--warmup", "0", "--sweep", "1,,2"] },
        { "error: --tiers '2048,,4096' has an empty item between commas", ["tiers", "-m", "/nonexistent.gguf", "--tiers", "2048,,4096"] },
        { "error: --n-predict '1,,2' has an empty item between commas", ["tiers", "-m", "/nonexistent.gguf", "--n-predict", "1,,2"] },
        { "error: --n-predict needs at least one n_predict value", ["tiers", "-m", "/nonexistent.gguf", "--n-predict", ""] },
        { "error: --tiers needs at least one Lambda memory size in MB", ["tiers", "-m", "/nonexistent.gguf", "--tiers", ","] },
        { "error: --tiers: '2147483648' is not a Lambda memory size in MB (a whole number, 128-10240)", ["tiers", "-m", "/nonexistent.gguf", "--tiers", "2147483648"] },
        { "error: --n-predict: '99999999999' is not an n_predict value (a whole number, 1 or more)", ["tiers", "-m", "/nonexistent.gguf", "--n-predict", "99999999999"] },
    };

    [Theory]
    [MemberData(nameof(BadLists))]
    public async Task A_bad_number_list_is_one_line_naming_the_option_before_any_work(string message, string[] args)
    {
        string[] resolved = [.. args.Select(a => a == "OUT" ? Path.Combine(_dir, "out") : a)];
        var (exit, stdout, stderr) = await CliProcess.RunAsync(null, resolved);
        Assert.NotEqual(0, exit);
        Assert.Equal(message, stderr.Trim());
        Assert.Equal("", stdout);
        Assert.False(File.Exists(Path.Combine(_dir, "out")));
    }
}
