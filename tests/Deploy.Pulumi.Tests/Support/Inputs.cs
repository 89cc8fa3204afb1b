using System.Collections.Immutable;

namespace BitNet.Deploy.Pulumi.Tests.Support;

/// <summary>
/// A resource's (or a nested object's) inputs as the engine received them: numbers arrive as doubles,
/// lists as arrays, objects as maps. Each accessor fails with the property's path when it is missing
/// or has another type.
/// </summary>
public sealed class Inputs(string path, ImmutableDictionary<string, object> values)
{
    public ImmutableDictionary<string, object> Values { get; } = values;

    public bool Has(string key) => Values.ContainsKey(key);

    public string Text(string key) => Get<string>(key);

    public bool Flag(string key) => Get<bool>(key);

    public int Number(string key)
    {
        double value = Get<double>(key);
        Assert.True(value == Math.Floor(value), $"{path}.{key} = {value} is not a whole number");
        return (int)value;
    }

    public Inputs Object(string key) => new($"{path}.{key}", Get<ImmutableDictionary<string, object>>(key));

    public IReadOnlyList<string> Texts(string key) => [.. List(key).Select(item => Assert.IsType<string>(item, exactMatch: false))];

    public IReadOnlyList<Inputs> Objects(string key) =>
        [.. List(key).Select((item, i) => new Inputs($"{path}.{key}[{i}]", Assert.IsType<ImmutableDictionary<string, object>>(item, exactMatch: false)))];

    public IReadOnlyDictionary<string, string> TextMap(string key) =>
        Get<ImmutableDictionary<string, object>>(key).ToDictionary(kv => kv.Key, kv => Assert.IsType<string>(kv.Value, exactMatch: false));

    private ImmutableArray<object> List(string key) => Get<ImmutableArray<object>>(key);

    private T Get<T>(string key)
    {
        Assert.True(Values.TryGetValue(key, out object? value), $"{path} has no input '{key}' (has: {string.Join(", ", Values.Keys.Order())})");
        return Assert.IsType<T>(value, exactMatch: false);
    }
}
