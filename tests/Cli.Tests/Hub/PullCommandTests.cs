using System.CommandLine;
using BitNet.Cli.Commands;
using BitNet.Inference.Hub;

namespace BitNet.Cli.Tests.Hub;

public sealed class PullCommandTests : IDisposable
{
    private readonly TempDirectory _temp = new();
    private readonly FakeHubServer _hub = new();
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();

    public void Dispose()
    {
        _hub.Dispose();
        _temp.Dispose();
    }

    private DictionaryEnvironment Env(string? endpoint = null) => new(
        new Dictionary<string, string?> { ["HF_ENDPOINT"] = endpoint ?? _hub.BaseUrl, ["HF_HOME"] = _temp.Combine("hf") },
        _temp.Combine("home"));

    private Task<int> Run(IEnvironment env, params string[] args)
    {
        var root = new RootCommand { PullCommand.Create(env, _out, _err, interactive: false) };
        return root.Parse(["pull", .. args]).InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);
    }

    [Fact]
    public async Task Pull_without_arguments_fetches_the_default_model_and_prints_its_path()
    {
        byte[] content = new byte[4096];
        Random.Shared.NextBytes(content);
        _hub.Add(ModelReference.DefaultRepo, ModelReference.DefaultFile, content);
        var env = Env();

        Assert.Equal(0, await Run(env));

        string path = _out.ToString().Trim();
        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.Equal(path, ModelLocator.DefaultModelPath(env));
        Assert.Contains("ggml-model-i2_s.gguf:", _err.ToString()); // plain progress when not a terminal
    }

    [Fact]
    public async Task Print_path_reports_presence_through_the_exit_code()
    {
        var env = Env();
        Assert.Equal(1, await Run(env, "org/m:x.gguf", "--print-path"));
        Assert.Contains(Path.Combine("models--org--m", "snapshots"), _out.ToString());
        _hub.Add("org/m", "x.gguf", [1, 2, 3]);
        Assert.Equal(0, await Run(env, "org/m:x.gguf"));
        Assert.Equal(0, await Run(env, "org/m:x.gguf", "--print-path"));
    }

    [Fact]
    public async Task Dry_run_shows_size_hash_and_commit_without_downloading()
    {
        byte[] content = [9, 8, 7, 6];
        _hub.Add("org/m", "x.gguf", content, commit: new string('d', 40));
        Assert.Equal(0, await Run(Env(), "org/m:x.gguf", "--dry-run"));
        string text = _out.ToString();
        Assert.Contains(FakeHubServer.Sha256(content), text);
        Assert.Contains(new string('d', 40), text);
        Assert.Contains("4 bytes", text);
        Assert.DoesNotContain(_hub.Requests, r => r.Method == "GET");
    }

    [Fact]
    public async Task Failures_exit_non_zero_with_the_reason_on_stderr()
    {
        Assert.Equal(1, await Run(Env(), "org/missing:x.gguf"));
        Assert.Contains("404", _err.ToString());
        Assert.Equal(1, await Run(Env($"http://127.0.0.1:{FakeHubServer.FreePort()}/"), "org/m:x.gguf"));
        Assert.Contains("cannot reach", _err.ToString());
        // pull has no -m: the advice names the other commands' way to use a file fetched some other way.
        Assert.DoesNotContain("pass -m", _err.ToString());
        Assert.Contains("give the other commands its path", _err.ToString());
        Assert.Equal(2, await Run(Env(), "not-a-repo"));
        Assert.Contains("org/name", _err.ToString());
    }
}
