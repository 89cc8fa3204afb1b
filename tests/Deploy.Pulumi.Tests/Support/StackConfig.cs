using System.Globalization;
using System.Runtime.CompilerServices;
using System.Text.Json;
using System.Text.Json.Nodes;
using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace BitNet.Deploy.Pulumi.Tests.Support;

/// <summary>
/// A stack's configuration as the Pulumi CLI hands it to a .NET program: the <c>PULUMI_CONFIG</c>
/// environment variable, a JSON object of <c>namespace:key</c> → string, where structured values
/// (objects, lists) arrive as JSON text. Built from a stack file plus the project's config defaults,
/// or from settings a test generates.
/// </summary>
public sealed class StackConfig
{
    public string Project { get; }
    public string Stack { get; }
    public IReadOnlyDictionary<string, string> Values { get; }

    public StackConfig(string project, string stack, IReadOnlyDictionary<string, string> values)
    {
        Project = project;
        Stack = stack;
        Values = values;
    }

    public static string PulumiDir([CallerFilePath] string file = "") =>
        Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", "..", "..", "deploy", "pulumi"));

    public static string RepositoryRoot => Path.GetFullPath(Path.Combine(PulumiDir(), "..", ".."));

    /// <summary>Every <c>Pulumi.STACK.yaml</c> shipped beside the program.</summary>
    public static IReadOnlyList<string> ShippedStackFiles() =>
        [.. Directory.GetFiles(PulumiDir(), "Pulumi.*.yaml").Select(Path.GetFileName).OfType<string>().Order(StringComparer.Ordinal)];

    /// <summary>The stack file's <c>config:</c> over the project file's defaults, as <c>pulumi up</c> would pass them.</summary>
    public static StackConfig FromStackFile(string fileName)
    {
        string stack = fileName["Pulumi.".Length..^".yaml".Length];
        YamlMappingNode project = Load(Path.Combine(PulumiDir(), "Pulumi.yaml"));
        string projectName = ((YamlScalarNode)project.Children[new YamlScalarNode("name")]).Value!;

        var values = new Dictionary<string, string>(StringComparer.Ordinal);
        if (project.Children.TryGetValue(new YamlScalarNode("config"), out var declared))
            foreach (var (key, declaration) in ((YamlMappingNode)declared).Children)
                if (declaration is YamlMappingNode d && d.Children.TryGetValue(new YamlScalarNode("default"), out var value))
                    values[((YamlScalarNode)key).Value!] = ConfigValue(value);

        YamlMappingNode file = Load(Path.Combine(PulumiDir(), fileName));
        foreach (var (key, value) in ((YamlMappingNode)file.Children[new YamlScalarNode("config")]).Children)
            values[((YamlScalarNode)key).Value!] = ConfigValue(value);
        return new StackConfig(projectName, stack, values);
    }

    /// <summary>A generated stack: <c>bitnet:*</c> settings given as JSON nodes (objects become JSON text).</summary>
    public static StackConfig Generated(string stack, IReadOnlyDictionary<string, JsonNode> bitnet, string project = "bitnet") =>
        new(project, stack, bitnet.ToDictionary(kv => $"bitnet:{kv.Key}",
            kv => kv.Value.GetValueKind() == JsonValueKind.String ? kv.Value.GetValue<string>() : kv.Value.ToJsonString()));

    /// <summary>The <c>bitnet</c> namespace, keyed without its prefix (what <c>new Config("bitnet").Get</c> reads).</summary>
    public string? Bitnet(string key) => Values.GetValueOrDefault($"bitnet:{key}");

    public string ToEnvironmentJson() => JsonSerializer.Serialize(Values);

    private static YamlMappingNode Load(string path)
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(path);
        stream.Load(reader);
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static string ConfigValue(YamlNode node) =>
        node is YamlScalarNode scalar ? scalar.Value ?? "" : ToJson(node)!.ToJsonString();

    /// <summary>YAML → JSON with YAML's core schema for plain scalars (numbers, booleans, null), as the CLI does.</summary>
    private static JsonNode? ToJson(YamlNode node) => node switch
    {
        YamlMappingNode map => new JsonObject(map.Children.Select(kv =>
            KeyValuePair.Create(((YamlScalarNode)kv.Key).Value!, ToJson(kv.Value)))),
        YamlSequenceNode list => new JsonArray([.. list.Children.Select(ToJson)]),
        YamlScalarNode { Style: ScalarStyle.Plain, Value: var v } => v switch
        {
            null or "null" or "~" or "" => null,
            "true" => JsonValue.Create(true),
            "false" => JsonValue.Create(false),
            _ when long.TryParse(v, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out long n) => JsonValue.Create(n),
            _ when double.TryParse(v, NumberStyles.Float, CultureInfo.InvariantCulture, out double d) => JsonValue.Create(d),
            _ => JsonValue.Create(v),
        },
        YamlScalarNode scalar => JsonValue.Create(scalar.Value),
        _ => throw new NotSupportedException($"YAML node {node.NodeType}"),
    };
}
