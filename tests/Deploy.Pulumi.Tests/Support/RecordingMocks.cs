using System.Collections.Concurrent;
using System.Collections.Immutable;
using System.Security.Cryptography;
using System.Text;
using Pulumi.Testing;

namespace BitNet.Deploy.Pulumi.Tests.Support;

/// <summary>
/// Pulumi mocks that record every registered resource and every invoke, and answer with the outputs
/// the real providers would compute (ARNs, URLs, login servers, digests), derived from the inputs so
/// a test can tell which resource an output came from.
/// </summary>
public sealed class RecordingMocks : IMocks
{
    public const string Account = "123456789012";
    public const string AcrPassword = "acr-password";
    public const string StorageKey = "storage-key";
    public const string EcrPassword = "ecr-password";

    public ConcurrentQueue<MockResourceArgs> Resources { get; } = new();
    public ConcurrentQueue<MockCallArgs> Calls { get; } = new();

    public Task<(string? id, object state)> NewResourceAsync(MockResourceArgs args)
    {
        Resources.Enqueue(args);
        var inputs = args.Inputs;
        var state = inputs.ToBuilder();
        string name = Text(inputs, "name") ?? args.Name!;
        string region = Text(inputs, "region") ?? "us-east-1";
        switch (args.Type)
        {
            case "aws:ecr/repository:Repository":
                state["repositoryUrl"] = $"{Account}.dkr.ecr.{region}.amazonaws.com/{name}";
                state["registryId"] = Account;
                state["arn"] = $"arn:aws:ecr:{region}:{Account}:repository/{name}";
                break;
            case "aws:iam/role:Role":
                state["arn"] = $"arn:aws:iam::{Account}:role/{name}";
                break;
            case "aws:lambda/function:Function":
                state["arn"] = FunctionArn(region, name);
                state["version"] = "1";
                break;
            case "aws:lambda/alias:Alias":
                state["arn"] = $"{FunctionArn(region, Text(inputs, "functionName")!)}:{name}";
                break;
            case "aws:lambda/functionUrl:FunctionUrl":
                state["functionUrl"] = FunctionUrl(region, Text(inputs, "functionName")!);
                break;
            case "aws:cloudwatch/eventRule:EventRule":
                state["arn"] = RuleArn(region, name);
                break;
            case "docker-build:index:Image":
                string digest = Digest(args.Inputs);
                state["digest"] = digest;
                state["ref"] = $"{((ImmutableArray<object>)inputs["tags"])[0]}@{digest}";
                break;
            case "azure-native:resources:ResourceGroup":
                state["name"] = Text(inputs, "resourceGroupName")!;
                break;
            case "azure-native:containerregistry:Registry":
                state["name"] = Text(inputs, "registryName")!;
                state["loginServer"] = LoginServer(Text(inputs, "registryName")!);
                break;
            case "azure-native:storage:StorageAccount":
                state["name"] = Text(inputs, "accountName")!;
                break;
            case "azure-native:web:AppServicePlan":
                state["name"] = name;
                break;
            case "azure-native:web:WebApp":
                state["name"] = name;
                state["defaultHostName"] = $"{name}.azurewebsites.net";
                break;
        }
        if (!state.ContainsKey("name"))
            state["name"] = name;
        return Task.FromResult<(string?, object)>(($"{args.Name}-id", state.ToImmutable()));
    }

    public Task<object> CallAsync(MockCallArgs args)
    {
        Calls.Enqueue(args);
        object result = args.Token switch
        {
            "aws:ecr/getAuthorizationToken:getAuthorizationToken" => new Dictionary<string, object>
            {
                ["authorizationToken"] = Convert.ToBase64String(Encoding.UTF8.GetBytes($"AWS:{EcrPassword}")),
                ["userName"] = "AWS",
                ["password"] = EcrPassword,
                ["proxyEndpoint"] = EcrEndpoint(Text(args.Args, "region") ?? "us-east-1"),
                ["expiresAt"] = "2030-01-01T00:00:00Z",
                ["id"] = Text(args.Args, "region") ?? "us-east-1",
                ["region"] = Text(args.Args, "region") ?? "us-east-1",
                ["registryId"] = Text(args.Args, "registryId") ?? Account,
            },
            "azure-native:containerregistry:listRegistryCredentials" => new Dictionary<string, object>
            {
                ["username"] = Text(args.Args, "registryName")!,
                ["passwords"] = new object[]
                {
                    new Dictionary<string, object> { ["name"] = "password", ["value"] = AcrPassword },
                    new Dictionary<string, object> { ["name"] = "password2", ["value"] = "acr-password-2" },
                },
            },
            "azure-native:storage:listStorageAccountKeys" => new Dictionary<string, object>
            {
                ["keys"] = new object[]
                {
                    new Dictionary<string, object> { ["keyName"] = "key1", ["value"] = StorageKey, ["permissions"] = "FULL", ["creationTime"] = "2030-01-01T00:00:00Z" },
                    new Dictionary<string, object> { ["keyName"] = "key2", ["value"] = "storage-key-2", ["permissions"] = "FULL", ["creationTime"] = "2030-01-01T00:00:00Z" },
                },
            },
            _ => throw new InvalidOperationException($"no mock for invoke {args.Token}"),
        };
        return Task.FromResult(result);
    }

    public static string FunctionArn(string region, string function) => $"arn:aws:lambda:{region}:{Account}:function:{function}";
    public static string FunctionUrl(string region, string function) => $"https://{function}.lambda-url.{region}.on.aws/";
    public static string RuleArn(string region, string rule) => $"arn:aws:events:{region}:{Account}:rule/{rule}";
    public static string EcrEndpoint(string region) => $"https://{Account}.dkr.ecr.{region}.amazonaws.com";
    public static string LoginServer(string registry) => $"{registry}.azurecr.io";

    /// <summary>A digest that changes with what is built (tags, platforms, build args), as a real one would.</summary>
    public static string Digest(ImmutableDictionary<string, object> imageInputs)
    {
        string what = string.Join("|", imageInputs.OrderBy(kv => kv.Key, StringComparer.Ordinal)
            .Where(kv => kv.Key is "tags" or "platforms" or "buildArgs").Select(kv => $"{kv.Key}={Describe(kv.Value)}"));
        return "sha256:" + Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(what)));
    }

    private static string Describe(object value) => value switch
    {
        ImmutableArray<object> list => "[" + string.Join(",", list.Select(Describe)) + "]",
        ImmutableDictionary<string, object> map => "{" + string.Join(",", map.OrderBy(kv => kv.Key, StringComparer.Ordinal).Select(kv => $"{kv.Key}:{Describe(kv.Value)}")) + "}",
        _ => value.ToString() ?? "",
    };

    private static string? Text(ImmutableDictionary<string, object> inputs, string key) =>
        inputs.TryGetValue(key, out var value) ? value as string : null;
}
