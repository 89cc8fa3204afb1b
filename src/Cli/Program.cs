using BitNet.Cli.Commands;

// `bitnet`: one executable for running, serving, benchmarking and preparing BitNet b1.58 models.
// Each command lives in its own file under Commands/ and exposes `static Command Create()`.
return await CommandCatalog.Parse(args).InvokeAsync();
