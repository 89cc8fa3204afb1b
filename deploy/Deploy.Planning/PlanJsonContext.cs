using System.Text.Json.Serialization;

namespace BitNet.Deploy.Planning;

/// <summary>Source-generated JSON for the policy documents (keeps the library trim- and AOT-safe).</summary>
[JsonSerializable(typeof(Dictionary<string, object>))]
[JsonSerializable(typeof(object[]))]
[JsonSerializable(typeof(string))]
[JsonSerializable(typeof(int))]
internal sealed partial class PlanJsonContext : JsonSerializerContext;
