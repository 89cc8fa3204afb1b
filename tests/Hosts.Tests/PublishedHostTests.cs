using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Generation;
using BitNet.Tests.Shared;

namespace BitNet.Hosts.Tests;

/// <summary>
/// The hosts as the container images ship them: bitnet-server and the Lambda bootstrap published with
/// Native AOT by containers/publish-native.sh (on x86-64 the launcher script and its two builds). Each
/// must load the model with the best kernel set this CPU has (a binary built for the default
/// instruction-set baseline runs the scalar kernels: ILC folds the SIMD checks away) and answer as the
/// engine does. scripts/test-aot.sh publishes them into one folder and names it in
/// BITNET_PUBLISHED_HOSTS; without it these tests are skipped. For binaries of another architecture
/// (linux-arm64 under qemu, through wrapper scripts of the same names) BITNET_PUBLISHED_KERNELS names
/// the set they must report instead of the one this process picks.
/// </summary>
[Trait("Category", TestCategories.Aot)]
public sealed class PublishedHostTests(ITestOutputHelper output)
{
    public const string FolderVariable = "BITNET_PUBLISHED_HOSTS";
    public const string KernelsVariable = "BITNET_PUBLISHED_KERNELS";

    /// <summary>Generous: under qemu a published arm64 host runs 10–50× slower.</summary>
    private static readonly TimeSpan Patience = TimeSpan.FromMinutes(5);
    private const string Prompt = "The capital of France is";
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;
    private static readonly ChatMessage[] Chat = [new(ChatRole.User, "Say hi.")];

    private static string Published(string name)
    {
        string? folder = Environment.GetEnvironmentVariable(FolderVariable);
        if (string.IsNullOrWhiteSpace(folder))
            Assert.Skip($"{FolderVariable} is not set (scripts/test-aot.sh sets it)");
        string path = Path.Combine(folder, name);
        Assert.True(File.Exists(path), $"{path} was not published");
        return path;
    }

    /// <summary>The set the engine in this process (JIT, which checks the CPU at run time) chose: what a published
    /// binary of this architecture must report too.</summary>
    private static string BestKernels => Environment.GetEnvironmentVariable(KernelsVariable) is { Length: > 0 } named
        ? named : RealEngine.Instance.Model.KernelName;

    [Fact]
    public async Task The_published_server_uses_the_fastest_kernels_it_may_and_answers_as_the_engine()
    {
        await using var server = ServerProcess.StartExecutable(Published("bitnet-server"), null,
            "-m", SharedData.OracleModelPath, "--host", "127.0.0.1", "--port", "0");
        string url = await server.ListeningAsync(Patience);
        await server.ReadyAsync(Patience);
        output.WriteLine(server.Stdout);
        Assert.Contains($" ({BestKernels}, ", server.Stdout);

        using var http = new HttpClient { BaseAddress = new Uri(url), Timeout = Patience };
        using HttpResponseMessage chat = await http.PostAsJsonAsync("/v1/chat/completions",
            new { messages = new[] { new { role = "user", content = Chat[0].Content } }, max_tokens = 8, temperature = 0 }, Ct);
        JsonElement chatBody = await ReadJsonAsync(chat);
        Assert.Equal(await RealEngine.GreedyChatAsync(Chat, 8), chatBody.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());

        using HttpResponseMessage plain = await http.PostAsJsonAsync("/completion", new { prompt = Prompt, n_predict = 8, temperature = 0 }, Ct);
        JsonElement plainBody = await ReadJsonAsync(plain);
        Assert.Equal(await RealEngine.GreedyCompletionAsync(Prompt, 8), plainBody.GetProperty("content").GetString());
    }

    [Fact]
    public async Task The_published_lambda_bootstrap_uses_the_fastest_kernels_it_may_and_answers_as_the_engine()
    {
        await using FakeRuntimeApi runtime = await FakeRuntimeApi.StartAsync();
        await using var bootstrap = ServerProcess.StartExecutable(Published("bootstrap"), new Dictionary<string, string>
        {
            ["AWS_LAMBDA_RUNTIME_API"] = runtime.HostPort,
            ["_HANDLER"] = "bitnet.handler",
            ["BITNET_MODEL"] = SharedData.OracleModelPath,
        });
        // The first invocation waits for the init (the model load) to finish.
        FakeRuntimeApi.Posted direct = await runtime.Invoke(JsonSerializer.Serialize(new { prompt = Prompt, n_predict = 8, temperature = 0 }), wait: Patience);
        Assert.True(direct.Kind == "response", $"{direct.Kind}: {Encoding.UTF8.GetString(direct.Body)}\n{bootstrap.Stderr}");
        Assert.Equal(await RealEngine.GreedyCompletionAsync(Prompt, 8), JsonDocument.Parse(direct.Body).RootElement.GetProperty("content").GetString());

        FakeRuntimeApi.Posted url = await runtime.Invoke(LambdaHostTests.FunctionUrlEvent("POST", "/v1/chat/completions",
            JsonSerializer.Serialize(new { messages = new[] { new { role = "user", content = Chat[0].Content } }, max_tokens = 8, temperature = 0 })),
            wait: Patience);
        JsonElement response = JsonDocument.Parse(url.Body).RootElement;
        Assert.Equal(200, response.GetProperty("statusCode").GetInt32());
        JsonElement body = JsonDocument.Parse(response.GetProperty("body").GetString()!).RootElement;
        Assert.Equal(await RealEngine.GreedyChatAsync(Chat, 8), body.GetProperty("choices")[0].GetProperty("message").GetProperty("content").GetString());

        output.WriteLine(bootstrap.Stdout);
        Assert.Contains($" ({BestKernels}, ", bootstrap.Stdout);
    }

    private static async Task<JsonElement> ReadJsonAsync(HttpResponseMessage response)
    {
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(response.IsSuccessStatusCode, $"{(int)response.StatusCode}: {text}");
        return JsonDocument.Parse(text).RootElement;
    }
}
