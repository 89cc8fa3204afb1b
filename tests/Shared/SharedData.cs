using System.Runtime.CompilerServices;

namespace BitNet.Tests.Shared;

/// <summary>
/// Finds the project's shared reference data (`../shared` beside the repository: the oracle model,
/// its logits, the tokenizer vectors). BITNET_SHARED_DIR overrides the search. Compiled into each
/// test project as a linked file.
/// </summary>
internal static class SharedData
{
    private static readonly Lazy<string> Root = new(() => Locate());

    public static string Directory => Root.Value;
    public static string OracleDirectory => Path.Combine(Directory, "oracle");
    public static string OracleModelPath => Path.Combine(OracleDirectory, "bitnet-small-i2_s.gguf");
    public static string OracleFile(string name) => Path.Combine(OracleDirectory, name);
    public static string TokenizerVectors(string name) => Path.Combine(OracleDirectory, "tokenizer", name);

    private static string Locate([CallerFilePath] string sourceFile = "")
    {
        string? fromEnv = Environment.GetEnvironmentVariable("BITNET_SHARED_DIR");
        if (!string.IsNullOrEmpty(fromEnv) && System.IO.Directory.Exists(Path.Combine(fromEnv, "oracle")))
            return fromEnv;
        foreach (string start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory, Path.GetDirectoryName(sourceFile) ?? "" })
        {
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "shared");
                if (File.Exists(Path.Combine(candidate, "oracle", "bitnet-small-i2_s.gguf")))
                    return candidate;
            }
        }
        throw new DirectoryNotFoundException(
            "could not find the shared data folder (shared/oracle beside the repository); set BITNET_SHARED_DIR");
    }
}
