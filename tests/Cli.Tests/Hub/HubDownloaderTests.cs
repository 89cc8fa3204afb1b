using BitNet.Inference.Hub;

namespace BitNet.Cli.Tests.Hub;

public sealed class HubDownloaderTests : IDisposable
{
    private const string Repo = "org/tiny-model";
    private readonly TempDirectory _temp = new();
    private readonly FakeHubServer _hub = new();

    public void Dispose()
    {
        _hub.Dispose();
        _temp.Dispose();
    }

    private DictionaryEnvironment Env(string? token = null, string? endpoint = null) => new(
        new Dictionary<string, string?>
        {
            ["HF_ENDPOINT"] = endpoint ?? _hub.BaseUrl,
            ["HF_HOME"] = _temp.Combine("hf"),
            ["HF_TOKEN"] = token,
        }, _temp.Combine("home"));

    private static byte[] Content(int length, int seed = 1)
    {
        var bytes = new byte[length];
        new Random(seed).NextBytes(bytes);
        return bytes;
    }

    private static ModelReference Ref(string file) => new(Repo, file);

    [Fact]
    public async Task Lfs_file_is_downloaded_verified_and_laid_out_like_the_hub_cache()
    {
        byte[] content = Content(300_000);
        string commit = new('e', 40);
        _hub.Add(Repo, "model.gguf", content, lfs: true, commit: commit);
        var env = Env();
        using var downloader = new HubDownloader(env);
        var reports = new List<DownloadProgress>();

        string path = await downloader.PullAsync(Ref("model.gguf"), new SynchronousProgress(reports.Add), TestContext.Current.CancellationToken);

        string repoDir = _temp.Combine("hf", "hub", "models--org--tiny-model");
        Assert.Equal(Path.Combine(repoDir, "snapshots", commit, "model.gguf"), path);
        Assert.Equal(content, await File.ReadAllBytesAsync(path, TestContext.Current.CancellationToken));
        Assert.Equal(commit, File.ReadAllText(Path.Combine(repoDir, "refs", "main")));
        string blob = Path.Combine(repoDir, "blobs", FakeHubServer.Sha256(content));
        Assert.True(File.Exists(blob));
        Assert.Equal(Path.GetFullPath(blob), Path.GetFullPath(Path.Combine(Path.GetDirectoryName(path)!, new FileInfo(path).LinkTarget!)));
        Assert.Equal(content.Length, reports[^1].BytesDone);
        Assert.Equal(content.Length, reports[^1].TotalBytes);
        Assert.True(ModelLocator.TryFindLocal(Ref("model.gguf"), out string found, env));
        Assert.Equal(path, found);
    }

    [Fact]
    public async Task Small_non_lfs_file_is_verified_against_its_git_blob_hash()
    {
        byte[] content = System.Text.Encoding.UTF8.GetBytes("{\"hidden_size\": 64}");
        _hub.Add(Repo, "config.json", content, lfs: false);
        using var downloader = new HubDownloader(Env());
        string path = await downloader.PullAsync(Ref("config.json"), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(content, File.ReadAllBytes(path));
    }

    [Fact]
    public async Task Interrupted_transfer_keeps_the_partial_file_and_the_next_pull_resumes_with_range()
    {
        byte[] content = Content(2_000_000, seed: 7);
        _hub.Add(Repo, "model.gguf", content);
        _hub.CutAfterBytes = 700_000;
        _hub.CutTransfers = 1;
        var env = Env();
        using var downloader = new HubDownloader(env);

        var error = await Assert.ThrowsAsync<HubTransferInterruptedException>(
            () => downloader.PullAsync(Ref("model.gguf"), cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("resume", error.Message);
        string incomplete = _temp.Combine("hf", "hub", "models--org--tiny-model", "blobs", FakeHubServer.Sha256(content) + ".incomplete");
        long partial = new FileInfo(incomplete).Length;
        Assert.InRange(partial, 1, content.Length - 1);

        string path = await downloader.PullAsync(Ref("model.gguf"), cancellationToken: TestContext.Current.CancellationToken);

        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.False(File.Exists(incomplete));
        Assert.Contains(_hub.Requests, r => r.Method == "GET" && r.Range == $"bytes={partial}-");
    }

    [Fact]
    public async Task Server_that_ignores_range_restarts_the_download_from_zero()
    {
        byte[] content = Content(500_000, seed: 3);
        _hub.Add(Repo, "model.gguf", content);
        string blobs = _temp.Combine("hf", "hub", "models--org--tiny-model", "blobs");
        Directory.CreateDirectory(blobs);
        File.WriteAllBytes(Path.Combine(blobs, FakeHubServer.Sha256(content) + ".incomplete"), content[..1000]);
        _hub.IgnoreRange = true;
        using var downloader = new HubDownloader(Env());
        string path = await downloader.PullAsync(Ref("model.gguf"), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(content, File.ReadAllBytes(path));
    }

    [Fact]
    public async Task Bytes_that_do_not_match_the_published_sha256_are_rejected_and_deleted()
    {
        byte[] content = Content(100_000, seed: 5);
        _hub.Add(Repo, "model.gguf", content);
        _hub.CorruptBody = true;
        using var downloader = new HubDownloader(Env());
        var error = await Assert.ThrowsAsync<HubIntegrityException>(
            () => downloader.PullAsync(Ref("model.gguf"), cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains(FakeHubServer.Sha256(content), error.Message);
        string blobs = _temp.Combine("hf", "hub", "models--org--tiny-model", "blobs");
        Assert.Empty(Directory.GetFiles(blobs));
    }

    [Fact]
    public async Task Unauthorized_without_a_token_says_to_set_hf_token()
    {
        _hub.Add(Repo, "model.gguf", Content(10));
        _hub.RequiredToken = "secret";
        using var downloader = new HubDownloader(Env());
        var error = await Assert.ThrowsAsync<HubAuthenticationException>(
            () => downloader.PullAsync(Ref("model.gguf"), cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("401", error.Message);
        Assert.Contains("HF_TOKEN", error.Message);
    }

    [Fact]
    public async Task Token_is_sent_to_the_hub_but_not_to_the_cdn_it_redirects_to()
    {
        byte[] content = Content(1000);
        _hub.Add(Repo, "model.gguf", content);
        _hub.RequiredToken = "secret";
        _hub.CdnOnOtherHost = true;
        using var downloader = new HubDownloader(Env(token: "secret"));
        string path = await downloader.PullAsync(Ref("model.gguf"), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(content, File.ReadAllBytes(path));
        Assert.All(_hub.Requests.Where(r => r.Path.StartsWith("org/")), r => Assert.Equal("Bearer secret", r.Authorization));
        Assert.Contains(_hub.Requests, r => r.Path.StartsWith("cdn/"));
        Assert.All(_hub.Requests.Where(r => r.Path.StartsWith("cdn/")), r => Assert.Null(r.Authorization));
    }

    [Fact]
    public async Task Missing_file_is_a_not_found_error_naming_file_and_revision()
    {
        using var downloader = new HubDownloader(Env());
        var error = await Assert.ThrowsAsync<HubNotFoundException>(
            () => downloader.PullAsync(Ref("nope.gguf"), cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("404", error.Message);
        Assert.Contains("nope.gguf", error.Message);
        Assert.Contains("main", error.Message);
    }

    [Fact]
    public async Task Unreachable_host_is_reported_as_no_network()
    {
        string deadEndpoint = $"http://127.0.0.1:{FakeHubServer.FreePort()}/";
        using var downloader = new HubDownloader(Env(endpoint: deadEndpoint));
        var error = await Assert.ThrowsAsync<HubUnreachableException>(
            () => downloader.PullAsync(Ref("model.gguf"), cancellationToken: TestContext.Current.CancellationToken));
        Assert.Contains("cannot reach", error.Message);
        Assert.Contains("127.0.0.1", error.Message);
    }

    [Fact]
    public async Task Ensure_model_uses_the_cached_copy_without_touching_the_network()
    {
        byte[] content = Content(5000);
        _hub.Add(ModelReference.DefaultRepo, ModelReference.DefaultFile, content);
        var env = Env();
        string first = await HubDownloader.EnsureModelAsync(env: env, cancellationToken: TestContext.Current.CancellationToken);
        int requests = _hub.Requests.Count;
        string second = await HubDownloader.EnsureModelAsync(env: env, cancellationToken: TestContext.Current.CancellationToken);
        Assert.Equal(first, second);
        Assert.Equal(requests, _hub.Requests.Count);
        Assert.Equal(first, ModelLocator.DefaultModelPath(env));
    }

    [Fact]
    public async Task Second_pull_of_a_complete_blob_does_not_download_again()
    {
        byte[] content = Content(50_000);
        _hub.Add(Repo, "model.gguf", content);
        using var downloader = new HubDownloader(Env());
        await downloader.PullAsync(Ref("model.gguf"), cancellationToken: TestContext.Current.CancellationToken);
        await downloader.PullAsync(Ref("model.gguf"), cancellationToken: TestContext.Current.CancellationToken);
        Assert.Single(_hub.Requests, r => r.Method == "GET");
    }

    [Fact]
    public void Text_progress_prints_megabytes_percent_and_a_bar()
    {
        var writer = new StringWriter();
        var progress = new TextDownloadProgress(writer, TimeSpan.Zero);
        progress.Report(new DownloadProgress("m.gguf", 1048576, 4 * 1048576, 0));
        Assert.Contains("m.gguf: 1.0 / 4.0 MB (25%) [#####...............]", writer.ToString());
    }

    /// <summary>Progress&lt;T&gt; posts to the thread pool; tests want reports in order, now.</summary>
    private sealed class SynchronousProgress(Action<DownloadProgress> report) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) => report(value);
    }
}
