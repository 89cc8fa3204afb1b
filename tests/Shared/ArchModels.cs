using System.Security.Cryptography;

namespace BitNet.Tests.Shared;

/// <summary>
/// The four small models of shared/oracle/archs (llama tied and untied, bitnet, bitnet-25), which
/// scripts/arch-models.sh regenerates into artifacts/arch-models (or BITNET_ARCH_MODELS_DIR) with the
/// generator there, checking each file's sha256. Compiled into each test project that uses them.
/// </summary>
internal static class ArchModels
{
    public const string LlamaSmall = "llama-small";
    public const string LlamaUntied = "llama-untied-h128";
    public const string BitnetArch = "bitnet-arch-small";
    public const string Bitnet25 = "bitnet25-small";

    /// <summary>The sha256 the oracle README gives for each generated file.</summary>
    public static readonly IReadOnlyDictionary<string, string> Sha256 = new Dictionary<string, string>
    {
        [LlamaSmall] = "d6ad79a72548c61e2bec9903ed6f54c1323eb51c4939131e19c38a244f67c237",
        [LlamaUntied] = "101d9e3f09d69811276f4c8ea26f6dba830dda333c4462b88b97bd0481af167e",
        [BitnetArch] = "58daab46f940550291808cd2145cf30458a3ade168c9ef2253aca7a62dfa8759",
        [Bitnet25] = "26e423d1b37e4b777b26bfdf558fa502af7f5745c6426d4dce1042bd76d17a91",
    };

    private static readonly Lazy<(string? Directory, string Problem)> Located = new(Locate);
    private static readonly Dictionary<string, string?> Checked = [];

    public static string OracleDirectory => Path.Combine(SharedData.OracleDirectory, "archs");
    public static string OracleFile(string name) => Path.Combine(OracleDirectory, name);

    /// <summary>
    /// The path of <paramref name="model"/>'s generated file once its sha256 is checked; otherwise the
    /// test is skipped with the reason (the models are made by scripts/arch-models.sh, which
    /// scripts/test.sh runs first and whose outcome it prints).
    /// </summary>
    public static string PathOf(string model)
    {
        string? problem = Problem(model);
        if (problem is not null) Assert.Skip($"arch model '{model}' unavailable: {problem}");
        return Path.Combine(Located.Value.Directory!, model + "-i2_s.gguf");
    }

    /// <summary>Null when the model is there with the right sha256, else why not.</summary>
    public static string? Problem(string model)
    {
        lock (Checked)
        {
            if (Checked.TryGetValue(model, out string? known)) return known;
            var (directory, problem) = Located.Value;
            string? result = directory is null ? problem : null;
            if (result is null)
            {
                string path = Path.Combine(directory!, model + "-i2_s.gguf");
                if (!File.Exists(path))
                    result = $"{path} is missing; run scripts/arch-models.sh";
                else
                {
                    using var stream = File.OpenRead(path);
                    string sum = Convert.ToHexStringLower(SHA256.HashData(stream));
                    if (sum != Sha256[model]) result = $"{path} has sha256 {sum}, expected {Sha256[model]}; rerun scripts/arch-models.sh";
                }
            }
            Checked[model] = result;
            return result;
        }
    }

    private static (string?, string) Locate()
    {
        string? fromEnv = Environment.GetEnvironmentVariable("BITNET_ARCH_MODELS_DIR");
        if (!string.IsNullOrEmpty(fromEnv))
            return Directory.Exists(fromEnv) ? (fromEnv, "") : (null, $"BITNET_ARCH_MODELS_DIR={fromEnv} does not exist");
        foreach (string start in new[] { AppContext.BaseDirectory, Environment.CurrentDirectory })
            for (var dir = new DirectoryInfo(start); dir is not null; dir = dir.Parent)
            {
                string candidate = Path.Combine(dir.FullName, "artifacts", "arch-models");
                if (Directory.Exists(candidate)) return (candidate, "");
            }
        return (null, "no artifacts/arch-models folder above the test binaries; run scripts/arch-models.sh (or set BITNET_ARCH_MODELS_DIR)");
    }
}
