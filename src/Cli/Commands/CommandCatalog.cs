using System.CommandLine;

namespace BitNet.Cli.Commands;

/// <summary>Every `bitnet` sub-command, in the order `bitnet --help` lists them, and how arguments are parsed.</summary>
internal static class CommandCatalog
{
    public static IEnumerable<Command> All()
    {
        // Add one line per command (keep one command per file).
        yield return GenerateCommand.Create();
        yield return ChatCommand.Create();
        yield return TokenizeCommand.Create();
        yield return InspectCommand.Create();
        yield return LogitsCommand.Create();
        yield return DummyCommand.Create();
        yield return PullCommand.Create();
        yield return BenchCommand.Create();
        yield return BenchCostCommand.Create();
        yield return ConvertCommand.Create();
        yield return TiersCommand.Create();
        yield return ServeCommand.Create();
    }

    /// <summary>Response files are off: a prompt such as "@#$%" or "@home" is text, not a file to read arguments from.</summary>
    public static ParserConfiguration Parsing { get; } = new() { ResponseFileTokenReplacer = null };

    /// <summary>Parses a command line the way `bitnet` does, for the given commands (all of them by default).</summary>
    public static ParseResult Parse(IReadOnlyList<string> args, IEnumerable<Command>? commands = null)
    {
        var root = new RootCommand("bitnet: serve and run BitNet b1.58 (1.58-bit) GGUF models on the CPU, in pure C#.");
        foreach (Command command in commands ?? All())
            root.Subcommands.Add(command);
        return root.Parse(args, Parsing);
    }
}
