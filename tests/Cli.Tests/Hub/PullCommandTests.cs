using System.CommandLine;
using System.Text;
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

    private DictionaryEnvironment Env(string? endpoint = null, params (string Name, string Value)[] more) => new(
        new Dictionary<string, string?>(more.Select(v => KeyValuePair.Create(v.Name, (string?)v.Value)))
        {
            ["HF_ENDPOINT"] = endpoint ?? _hub.BaseUrl,
            ["HF_HOME"] = _temp.Combine("hf"),
        },
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

    [Fact]
    public async Task A_hub_cache_on_the_kernels_pseudo_file_systems_is_one_line_naming_it_and_the_variables()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "/proc is Linux's");
        _hub.Add("org/m", "x.gguf", [1, 2, 3]);
        Assert.Equal(1, await Run(Env(null, ("HF_HUB_CACHE", "/proc/bitnet-hub")), "org/m:x.gguf"));
        Assert.Equal("error: cannot write the Hugging Face cache '/proc/bitnet-hub': it is on the kernel's proc file system, whose files are settings and reports, " +
            "not storage; set HF_HUB_CACHE or HF_HOME to a folder on a disk", _err.ToString().Trim());
        Assert.DoesNotContain(_hub.Requests, r => r.Method == "GET");
    }

    [Fact]
    public async Task A_hub_cache_that_is_a_file_is_one_line_naming_it_and_the_variables()
    {
        string file = _temp.Combine("not-a-folder");
        File.WriteAllText(file, "x");
        _hub.Add("org/m", "x.gguf", [1, 2, 3]);
        Assert.Equal(1, await Run(Env(null, ("HF_HUB_CACHE", file)), "org/m:x.gguf"));
        Assert.Equal($"error: cannot write the Hugging Face cache '{file}': '{file}' is a file, not a folder; set HF_HUB_CACHE or HF_HOME to a folder this user may write",
            _err.ToString().Trim());
        Assert.Equal("x", File.ReadAllText(file));
    }

    [Theory]
    [InlineData("not a url")]
    [InlineData("ftp://127.0.0.1/")]
    [InlineData("http://127.0.0.1:99999")]
    public async Task An_HF_ENDPOINT_that_is_not_an_http_url_is_one_line_naming_it(string endpoint)
    {
        foreach (string[] args in new[] { new[] { "org/m:x.gguf" }, ["org/m:x.gguf", "--dry-run"] })
        {
            _err.GetStringBuilder().Clear();
            Assert.Equal(1, await Run(Env(endpoint), args));
            Assert.Equal($"error: HF_ENDPOINT='{endpoint}' is not an http(s) URL; unset it for https://huggingface.co, or give a mirror's address such as https://hf-mirror.com",
                _err.ToString().Trim());
        }
    }

    [Fact]
    public async Task A_hub_that_accepts_the_connection_and_never_answers_is_an_error_after_HF_HUB_ETAG_TIMEOUT()
    {
        using var silent = SilentHub(bodyBytesBeforeStalling: null);
        var env = Env(silent.BaseUrl, ("HF_HUB_ETAG_TIMEOUT", "0.5"));
        int exit = await Run(env, "org/m:x.gguf", "--dry-run").WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(1, exit);
        Assert.Equal($"error: {silent.BaseUrl.TrimEnd('/')} did not answer within 0.5 s (HF_HUB_ETAG_TIMEOUT) to fetch org/m:x.gguf; " +
            "check the network, or raise HF_HUB_ETAG_TIMEOUT", _err.ToString().Trim());
    }

    [Fact]
    public async Task A_download_that_stops_sending_is_interrupted_after_HF_HUB_DOWNLOAD_TIMEOUT_and_resumable()
    {
        using var stalling = SilentHub(bodyBytesBeforeStalling: 10);
        var env = Env(stalling.BaseUrl, ("HF_HUB_DOWNLOAD_TIMEOUT", "0.5"));
        int exit = await Run(env, "org/m:x.gguf").WaitAsync(TimeSpan.FromSeconds(60), TestContext.Current.CancellationToken);
        Assert.Equal(1, exit);
        Assert.Equal("error: download of org/m:x.gguf stopped at 10 of 100 bytes (no data for 0.5 s, HF_HUB_DOWNLOAD_TIMEOUT); run the same pull again to resume",
            _err.ToString().Trim().Split('\n')[^1]);
    }

    /// <summary>
    /// A hub that reads requests but answers nothing, or (with <paramref name="bodyBytesBeforeStalling"/>)
    /// answers HEAD with a 100-byte file and GET with that many bytes of it, then nothing more.
    /// </summary>
    private static StallingServer SilentHub(int? bodyBytesBeforeStalling) => new(head =>
        bodyBytesBeforeStalling is not { } n ? null
        : head.StartsWith("HEAD", StringComparison.Ordinal)
            ? Encoding.ASCII.GetBytes($"HTTP/1.1 200 OK\r\nETag: \"{new string('a', 64)}\"\r\nContent-Length: 100\r\n\r\n")
            : [.. Encoding.ASCII.GetBytes("HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n"), .. new byte[n]]);
}
