using System.Diagnostics;
using System.Reflection.PortableExecutable;
using System.Runtime.CompilerServices;
using System.Text.Json;
using BitNet.Hosts.AzureFunctions;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;

namespace BitNet.Hosts.Tests;

/// <summary>
/// `dotnet publish` of the Azure host for one runtime (ReadyToRun, framework-dependent: the Functions
/// isolated image brings the runtime), once for the class, into a folder of its own.
/// </summary>
public abstract class AzurePublishOutput(string runtimeIdentifier) : IAsyncLifetime
{
    public string RuntimeIdentifier { get; } = runtimeIdentifier;
    private readonly string _root = Path.Combine(Path.GetTempPath(), $"bitnet-azure-publish-{Guid.NewGuid():N}");

    public string Output => Path.Combine(_root, "out");
    public int ExitCode { get; private set; } = -1;
    public string Log { get; private set; } = "";

    private static string RepoRoot([CallerFilePath] string file = "") => Path.GetFullPath(Path.Combine(Path.GetDirectoryName(file)!, "..", ".."));

    public async ValueTask InitializeAsync()
    {
        string project = Path.Combine(RepoRoot(), "src", "Hosts.AzureFunctions", "Hosts.AzureFunctions.csproj");
        var start = new ProcessStartInfo("dotnet")
        {
            ArgumentList = { "publish", project, "-c", "Release", "-r", RuntimeIdentifier, "--artifacts-path", Path.Combine(_root, "artifacts"), "-o", Output, "-nologo" },
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        };
        start.Environment["DOTNET_CLI_TELEMETRY_OPTOUT"] = "1";
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromMinutes(20));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
            ExitCode = process.ExitCode;
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
        }
        Log = await stdout + await stderr;
    }

    public ValueTask DisposeAsync()
    {
        GC.SuppressFinalize(this);
        try
        {
            Directory.Delete(_root, recursive: true);
        }
        catch (IOException)
        {
        }
        return ValueTask.CompletedTask;
    }

    /// <summary>The publish exited 0 (else the tail of its log).</summary>
    public void AssertPublished() =>
        Assert.True(ExitCode == 0, $"dotnet publish exited with {ExitCode}:\n{string.Join('\n', Log.Split('\n').TakeLast(40))}");

    /// <summary>Our assemblies carry ReadyToRun code for <paramref name="machine"/> (a ReadyToRun image for
    /// Linux marks its machine XOR 0x7B79; a Windows one keeps the plain value).</summary>
    public void AssertReadyToRun(Machine machine)
    {
        AssertPublished();
        foreach (string assembly in new[] { "bitnet-azure.dll", "Hosts.Http.dll", "Inference.Api.dll", "Inference.Core.dll" })
        {
            using var pe = new PEReader(File.OpenRead(Path.Combine(Output, assembly)));
            Assert.True(pe.PEHeaders.CorHeader!.ManagedNativeHeaderDirectory.Size > 0, $"{assembly} has no ReadyToRun code");
            Assert.Equal((Machine)((ushort)machine ^ 0x7B79), pe.PEHeaders.CoffHeader.Machine);
        }
    }
}

/// <summary>The linux-x64 publish: the image the deploy program builds for Azure.</summary>
public sealed class AzurePublish() : AzurePublishOutput("linux-x64");

/// <summary>The linux-arm64 publish (ReadyToRun cross-compiled), for Azure's Arm-based plans and containers.</summary>
public sealed class AzurePublishArm64() : AzurePublishOutput("linux-arm64");

/// <summary>
/// The publish output read as the Functions host reads it: worker.config.json (how to start the worker),
/// functions.metadata (the functions and their bindings, written by the Worker SDK at build time),
/// host.json and extensions.json. The host itself cannot run here.
/// </summary>
public sealed class AzurePublishOutputTests(AzurePublish publish) : IClassFixture<AzurePublish>
{
    private JsonElement Read(string file) => JsonDocument.Parse(File.ReadAllText(Path.Combine(publish.Output, file))).RootElement;

    [Fact]
    public void Publish_for_linux_x64_succeeds_and_compiles_our_assemblies_ready_to_run() => publish.AssertReadyToRun(Machine.Amd64);

    [Fact]
    public void Worker_config_starts_the_published_dll_as_a_dotnet_isolated_worker()
    {
        publish.AssertPublished();
        JsonElement description = Read("worker.config.json").GetProperty("description");
        Assert.Equal("dotnet-isolated", description.GetProperty("language").GetString());
        Assert.Equal("dotnet", description.GetProperty("defaultExecutablePath").GetString());
        string worker = description.GetProperty("defaultWorkerPath").GetString()!;
        Assert.Equal(typeof(OpenAiFunction).Assembly.GetName().Name + ".dll", worker);
        Assert.True(File.Exists(Path.Combine(publish.Output, worker)));
        Assert.True(File.Exists(Path.Combine(publish.Output, Path.ChangeExtension(worker, ".runtimeconfig.json"))));
    }

    [Fact]
    public void Functions_metadata_has_the_catch_all_http_function_and_the_keep_warm_timer()
    {
        publish.AssertPublished();
        Dictionary<string, JsonElement> functions = Read("functions.metadata").EnumerateArray().ToDictionary(f => f.GetProperty("name").GetString()!);
        Assert.Equal([KeepWarmFunction.Name, OpenAiFunction.Name], functions.Keys.Order());
        foreach (JsonElement function in functions.Values)
        {
            Assert.Equal("dotnet-isolated", function.GetProperty("language").GetString());
            Assert.Equal("bitnet-azure.dll", function.GetProperty("scriptFile").GetString());
            // The entry point names a real method of the worker assembly.
            string entryPoint = function.GetProperty("entryPoint").GetString()!;
            Type? type = typeof(OpenAiFunction).Assembly.GetType(entryPoint[..entryPoint.LastIndexOf('.')]);
            Assert.NotNull(type?.GetMethod(entryPoint[(entryPoint.LastIndexOf('.') + 1)..]));
        }

        JsonElement[] http = [.. functions[OpenAiFunction.Name].GetProperty("bindings").EnumerateArray()];
        JsonElement trigger = Assert.Single(http, b => b.GetProperty("direction").GetString() == "In");
        Assert.Equal("httpTrigger", trigger.GetProperty("type").GetString());
        Assert.Equal("anonymous", trigger.GetProperty("authLevel").GetString()!.ToLowerInvariant());
        Assert.Equal("{*route}", trigger.GetProperty("route").GetString());
        Assert.Equal(["get", "head", "post"], trigger.GetProperty("methods").EnumerateArray().Select(m => m.GetString()!.ToLowerInvariant()).Order());
        JsonElement output = Assert.Single(http, b => b.GetProperty("direction").GetString() == "Out");
        Assert.Equal("http", output.GetProperty("type").GetString());

        // What the test worker (AzureWorker) maps is what the host will route.
        var (_, attribute) = Assert.Single(AzureWorker.HttpFunctions());
        Assert.Equal(attribute.Route, trigger.GetProperty("route").GetString());

        JsonElement timer = Assert.Single(functions[KeepWarmFunction.Name].GetProperty("bindings").EnumerateArray());
        Assert.Equal("timerTrigger", timer.GetProperty("type").GetString());
        Assert.Equal("In", timer.GetProperty("direction").GetString());
        Assert.Equal($"%{EnvVars.KeepWarmSchedule}%", timer.GetProperty("schedule").GetString());
        Assert.False(timer.TryGetProperty("runOnStartup", out JsonElement runOnStartup) && runOnStartup.ValueKind == JsonValueKind.True);
    }

    [Fact]
    public void Host_json_serves_the_api_at_the_root_and_is_no_custom_handler()
    {
        publish.AssertPublished();
        JsonElement host = Read("host.json");
        Assert.Equal("2.0", host.GetProperty("version").GetString());
        Assert.Equal("", host.GetProperty("extensions").GetProperty("http").GetProperty("routePrefix").GetString());
        Assert.False(host.TryGetProperty("customHandler", out _));
        Assert.Equal("", AzureWorker.RoutePrefix());
        Assert.Empty(Directory.GetFiles(publish.Output, "function.json", SearchOption.AllDirectories));
    }

    [Fact]
    public void Extensions_json_points_at_extension_assemblies_that_were_published()
    {
        publish.AssertPublished();
        JsonElement[] extensions = [.. Read("extensions.json").GetProperty("extensions").EnumerateArray()];
        Assert.NotEmpty(extensions);
        foreach (JsonElement extension in extensions)
        {
            string hint = extension.GetProperty("hintPath").GetString()!;
            Assert.True(File.Exists(Path.Combine(publish.Output, hint)), $"{hint} is missing from the publish output");
        }
    }

    [Fact]
    public async Task The_published_worker_runs_until_it_needs_the_functions_host_and_rejects_bad_settings_with_exit_code_2()
    {
        publish.AssertPublished();
        var (code, output) = await RunWorkerAsync(("BITNET_MODEL", "/home/site/wwwroot/model.gguf"));
        Assert.NotEqual(0, code);
        Assert.Contains("Functions:Worker:HostEndpoint", output); // the gRPC endpoint the Functions host passes at start

        (code, output) = await RunWorkerAsync((EnvVars.Threads, "many"));
        Assert.Equal(2, code);
        Assert.Contains($"bitnet-azure: {EnvVars.Threads}='many' is not valid", output);
        Assert.DoesNotContain("   at ", output);
    }

    private async Task<(int ExitCode, string Output)> RunWorkerAsync(params (string Name, string Value)[] environment)
    {
        var start = new ProcessStartInfo("dotnet") { ArgumentList = { Path.Combine(publish.Output, "bitnet-azure.dll") }, RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var (name, value) in environment)
            start.Environment[name] = value;
        using Process process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync(TestContext.Current.CancellationToken);
        Task<string> stderr = process.StandardError.ReadToEndAsync(TestContext.Current.CancellationToken);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(TestContext.Current.CancellationToken);
        timeout.CancelAfter(TimeSpan.FromSeconds(60));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            process.Kill(entireProcessTree: true);
            throw;
        }
        return (process.ExitCode, await stdout + await stderr);
    }
}

/// <summary>The same worker published for linux-arm64: ReadyToRun code for Arm64 and a worker config.</summary>
public sealed class AzureArm64PublishTests(AzurePublishArm64 publish) : IClassFixture<AzurePublishArm64>
{
    [Fact]
    public void Publish_for_linux_arm64_succeeds_and_compiles_our_assemblies_ready_to_run_for_arm64()
    {
        publish.AssertReadyToRun(Machine.Arm64);
        Assert.True(File.Exists(Path.Combine(publish.Output, "worker.config.json")));
        Assert.True(File.Exists(Path.Combine(publish.Output, "functions.metadata")));
    }
}
