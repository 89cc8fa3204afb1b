using System.Text.Json;
using BitNet.Inference.Generation;
using BitNet.Tests.Shared;

namespace BitNet.Hosts.Tests.Support;

/// <summary>
/// A generated model of shared/oracle/archs (scripts/arch-models.sh) loaded in the real engine, with what
/// bitnet.cpp generated for it: hosts serving it must answer a greedy request with bitnet.cpp's tokens.
/// Reusable by every host's end-to-end test (server, Lambda, Azure).
/// </summary>
internal sealed class ArchModelHost
{
    private static readonly Dictionary<string, ArchModelHost> Loaded = [];

    private ArchModelHost(string model)
    {
        Engine = BitNetEngine.Load(new EngineOptions { ModelPath = ArchModels.PathOf(model), Threads = 2, ContextLength = 256 });
        Model = model;
    }

    public string Model { get; }
    public BitNetEngine Engine { get; }

    /// <summary>The engine for <paramref name="model"/>, loaded once per test run (skips the test when the model is missing).</summary>
    public static ArchModelHost For(string model)
    {
        lock (Loaded)
        {
            if (!Loaded.TryGetValue(model, out var host))
                Loaded[model] = host = new ArchModelHost(model);
            return host;
        }
    }

    /// <summary>A case's prompt ids and bitnet.cpp's greedy ids (tokens.json of the oracle).</summary>
    public (int[] PromptIds, int[] GeneratedIds) Case(string kind)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(ArchModels.OracleFile($"{Model}-i2_s{kind}.bitnetcpp.t1.tokens.json")));
        int[] Ids(string name) => json.RootElement.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        return (Ids("prompt_ids"), Ids("generated_ids"));
    }

    /// <summary>The text of bitnet.cpp's first <paramref name="count"/> greedy tokens, as the server streams it.</summary>
    public string GreedyText(string kind, int count) => Engine.Detokenize(Case(kind).GeneratedIds[..count]);
}
