using System.CommandLine;

namespace BitNet.Cli.Commands;

/// <summary>Every `bitnet` sub-command, in the order `bitnet --help` lists them.</summary>
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
}
