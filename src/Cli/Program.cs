using System.CommandLine;
using BitNet.Cli.Commands;

// `bitnet`: one executable for running, serving, benchmarking and preparing BitNet b1.58 models.
// Each command lives in its own file under Commands/ and exposes `static Command Create()`.
var root = new RootCommand("bitnet: serve and run BitNet b1.58 (1.58-bit) GGUF models on the CPU, in pure C#.");
foreach (var command in CommandCatalog.All())
    root.Subcommands.Add(command);

return await root.Parse(args).InvokeAsync();
