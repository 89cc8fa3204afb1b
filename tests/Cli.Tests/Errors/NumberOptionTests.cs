using BitNet.Cli.Commands;

namespace BitNet.Cli.Tests.Errors;

/// <summary>
/// Every numeric option of every command, parsed as `bitnet` parses it: a value that is not a number
/// names the option and what it expects, never a .NET type; a number outside the option's range is
/// refused while parsing, naming the range.
/// </summary>
public sealed class NumberOptionTests
{
    private static string ParseError(params string[] args)
    {
        var errors = CommandCatalog.Parse(args).Errors;
        Assert.NotEmpty(errors);
        return string.Join("\n", errors.Select(e => e.Message));
    }

    [Theory]
    [InlineData("--array-items expects an integer; got 'abc'", "inspect", "--array-items", "abc")]
    [InlineData("--prompt-length expects an integer; got '2147483648'", "logits", "--tokens", "1", "-o", "x", "--prompt-length", "2147483648")]
    [InlineData("--prompt-tokens expects an integer; got ''", "bench", "-p", "")]
    [InlineData("--gen-tokens expects an integer; got '1e400'", "bench", "-n", "1e400")]
    [InlineData("--repetitions expects an integer; got 'NaN'", "bench", "-r", "NaN")]
    [InlineData("--concurrency expects an integer; got 'abc'", "bench-cost", "--url", "http://x", "--hardware", "local", "-c", "abc")]
    [InlineData("--requests expects an integer; got '1.5'", "bench-cost", "--url", "http://x", "--hardware", "local", "-n", "1.5")]
    [InlineData("--max-tokens expects an integer; got 'x'", "bench-cost", "--url", "http://x", "--hardware", "local", "--max-tokens", "x")]
    [InlineData("--warmup expects an integer; got ''", "bench-cost", "--url", "http://x", "--hardware", "local", "--warmup", "")]
    [InlineData("--price-per-hour expects a number; got 'abc'", "bench-cost", "--url", "http://x", "--hardware", "local", "--price-per-hour", "abc")]
    [InlineData("--pid expects an integer; got 'self'", "bench-cost", "--url", "http://x", "--hardware", "local", "--pid", "self")]
    [InlineData("--cold-n-predict expects an integer; got 'ten'", "tiers", "--cold-n-predict", "ten")]
    [InlineData("--target-seconds expects a number; got ''", "tiers", "--target-seconds", "")]
    [InlineData("--cores expects an integer; got 'all'", "tiers", "--cores", "all")]
    [InlineData("--idle-timeout expects a number; got '5s'", "bench-cost", "--url", "http://x", "--hardware", "local", "--idle-timeout", "5s")]
    public void A_number_option_that_does_not_parse_names_the_option_not_a_dotnet_type(string message, params string[] args)
    {
        string error = ParseError(args);
        Assert.Equal(message, error);
        Assert.DoesNotContain("System.", error);
    }

    [Theory]
    [InlineData("--array-items must be 0 or more; got -1", "inspect", "--array-items", "-1")]
    [InlineData("--prompt-length must be 0 (all of them) or more; got -1", "logits", "--tokens", "1", "-o", "x", "--prompt-length", "-1")]
    [InlineData("--price-per-hour must be a price of 0 or more; got NaN", "bench-cost", "--url", "http://x", "--hardware", "x", "--price-per-hour", "NaN")]
    [InlineData("--price-per-hour must be a price of 0 or more; got 1e400", "bench-cost", "--url", "http://x", "--hardware", "x", "--price-per-hour", "1e400")]
    [InlineData("--price-per-hour must be a price of 0 or more; got -Infinity", "bench-cost", "--url", "http://x", "--hardware", "x", "--price-per-hour", "-Infinity")]
    [InlineData("--pid must be a process id (1 or more); got 0", "bench-cost", "--url", "http://x", "--hardware", "local", "--pid", "0")]
    [InlineData("--target-seconds must be a number of seconds above 0; got 0", "tiers", "--target-seconds", "0")]
    [InlineData("--target-seconds must be a number of seconds above 0; got Infinity", "tiers", "--target-seconds", "Infinity")]
    [InlineData("--target-seconds must be a number of seconds above 0; got NaN", "tiers", "--target-seconds", "NaN")]
    [InlineData("--cores must be 1 or more; got 0", "tiers", "--cores", "0")]
    [InlineData("--idle-timeout must be a number of seconds above 0, at most 86400; got 0", "bench-cost", "--url", "http://x", "--hardware", "local", "--idle-timeout", "0")]
    [InlineData("--idle-timeout must be a number of seconds above 0, at most 86400; got 1e9", "tiers", "--idle-timeout", "1e9")]
    public void A_number_outside_an_options_range_is_refused_while_parsing(string message, params string[] args) =>
        Assert.Equal(message, ParseError(args));

    [Theory]
    [InlineData("inspect", "--array-items", "0")]
    [InlineData("logits", "--tokens", "1", "-o", "x", "--prompt-length", "0")]
    [InlineData("bench-cost", "--url", "http://x", "--hardware", "x", "--price-per-hour", "0")]
    [InlineData("tiers", "--target-seconds", "0.5", "--cores", "1")]
    public void A_number_at_the_edge_of_its_range_parses(params string[] args) =>
        Assert.Empty(CommandCatalog.Parse(args).Errors);
}
