using System.Diagnostics;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;

namespace BitNet.Hosts.Tests;

/// <summary>
/// The official `openai` npm client, unchanged, against the real server and engine with
/// "model": "bitnet". The client, one exact version (it has no dependencies), is installed from the npm
/// registry into a temp folder named by that version on first use. The test is skipped, saying so, only
/// when node or npm is not installed or the registry cannot be reached; any other install failure fails it.
/// </summary>
public sealed class NpmOpenAiClientTests(OracleServer fixture) : IClassFixture<OracleServer>
{
    private const string ClientVersion = "7.60.0";

    private static string? Which(string tool) =>
        (Environment.GetEnvironmentVariable("PATH") ?? "").Split(Path.PathSeparator)
            .Select(dir => Path.Combine(dir, tool))
            .FirstOrDefault(File.Exists);

    private static async Task<(int Exit, string Stdout, string Stderr)> RunAsync(string file, IEnumerable<string> args, Dictionary<string, string>? env = null)
    {
        var info = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (string arg in args)
            info.ArgumentList.Add(arg);
        foreach (var (name, value) in env ?? [])
            info.Environment[name] = value;
        using Process process = Process.Start(info)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync().WaitAsync(TimeSpan.FromMinutes(5));
        return (process.ExitCode, await stdout, await stderr);
    }

    private static async Task<string> InstallClientAsync(string npm)
    {
        string prefix = Path.Combine(Path.GetTempPath(), $"bitnet-tests-npm-openai-{ClientVersion}");
        string module = Path.Combine(prefix, "node_modules", "openai");
        if (File.Exists(Path.Combine(module, "package.json")))
            return module;
        // Installed beside the cache and moved in whole: a run stopped half-way leaves no broken cache.
        string staging = $"{prefix}.{Guid.NewGuid():N}";
        Directory.CreateDirectory(staging);
        try
        {
            var (exit, stdout, stderr) = await RunAsync(npm,
                ["install", "--no-save", "--no-package-lock", "--no-audit", "--no-fund", "--ignore-scripts", "--loglevel=error",
                 "--fetch-retries=1", "--fetch-timeout=60000", "--prefix", staging, $"openai@{ClientVersion}"]);
            if (exit != 0)
            {
                var (pingExit, _, pingError) = await RunAsync(npm, ["ping", "--fetch-retries=0", "--fetch-timeout=20000", "--loglevel=error"]);
                if (pingExit != 0)
                    Assert.Skip($"the npm registry cannot be reached, so the openai npm client cannot be installed: {pingError.Trim()}");
                Assert.Fail($"npm install openai@{ClientVersion} failed though the registry answers:\n{stdout}\n{stderr}");
            }
            try
            {
                Directory.Move(staging, prefix);
            }
            catch (IOException) when (File.Exists(Path.Combine(module, "package.json")))
            {
                // another run installed it meanwhile
            }
            return module;
        }
        finally
        {
            if (Directory.Exists(staging))
                Directory.Delete(staging, recursive: true);
        }
    }

    [Fact]
    public async Task The_openai_npm_client_works_unchanged_with_model_bitnet()
    {
        string? node = Which("node"), npm = Which("npm");
        if (node is null || npm is null)
            Assert.Skip("node and npm are not installed: the official openai npm client cannot run here");

        string module = await InstallClientAsync(npm);
        var (exit, stdout, stderr) = await RunAsync(node, [Path.Combine(AppContext.BaseDirectory, "Npm", "openai-client-check.mjs")],
            new() { ["OPENAI_MODULE"] = module, ["BASE_URL"] = fixture.Server.BaseUrl + "/v1" });
        Assert.True(exit == 0, $"the npm client failed:\n{stdout}\n{stderr}");

        JsonElement result = JsonDocument.Parse(stdout.Trim().Split('\n')[^1]).RootElement;
        Assert.Equal([OracleServer.ModelId], result.GetProperty("models").EnumerateArray().Select(m => m.GetString()));
        Assert.Equal(OracleServer.ModelId, result.GetProperty("chat").GetProperty("model").GetString());
        Assert.False(string.IsNullOrEmpty(result.GetProperty("chat").GetProperty("text").GetString()));
        Assert.Equal(OracleServer.ModelId, result.GetProperty("stream").GetProperty("model").GetString());
        Assert.Equal(await RealEngine.GreedyChatAsync([new(BitNet.Inference.Generation.ChatRole.User, "Say hi.")], 3),
            result.GetProperty("stream").GetProperty("text").GetString());
        Assert.Equal(OracleServer.ModelId, result.GetProperty("completion").GetProperty("model").GetString());
        Assert.Equal(await RealEngine.GreedyCompletionAsync("The capital of France is", 3), result.GetProperty("completion").GetProperty("text").GetString());
        JsonElement error = result.GetProperty("error");
        Assert.Equal(400, error.GetProperty("status").GetInt32());
        Assert.Equal("temperature", error.GetProperty("param").GetString());
    }
}
