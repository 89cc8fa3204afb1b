using BitNet.Inference.Hub;

namespace BitNet.Cli.Tests.Hub;

public sealed class ModelLocatorTests : IDisposable
{
    private readonly TempDirectory _temp = new();

    public void Dispose() => _temp.Dispose();

    private DictionaryEnvironment Env(params (string Name, string Value)[] variables) =>
        new(variables.ToDictionary(v => v.Name, v => (string?)v.Value), _temp.Combine("home"));

    private static string Write(string path, string content = "gguf")
    {
        Directory.CreateDirectory(Path.GetDirectoryName(path)!);
        File.WriteAllText(path, content);
        return path;
    }

    [Fact]
    public void Hub_cache_defaults_to_dot_cache_huggingface_hub_under_home()
    {
        Assert.Equal(_temp.Combine("home", ".cache", "huggingface", "hub"), ModelLocator.HubCacheDirectory(Env()));
    }

    [Fact]
    public void Hub_cache_follows_xdg_then_hf_home_then_hf_hub_cache()
    {
        Assert.Equal(Path.Combine("/x", "huggingface", "hub"), ModelLocator.HubCacheDirectory(Env(("XDG_CACHE_HOME", "/x"))));
        Assert.Equal(Path.Combine("/h", "hub"), ModelLocator.HubCacheDirectory(Env(("XDG_CACHE_HOME", "/x"), ("HF_HOME", "/h"))));
        Assert.Equal("/c", ModelLocator.HubCacheDirectory(Env(("HF_HOME", "/h"), ("HF_HUB_CACHE", "/c"))));
        Assert.Equal(_temp.Combine("home", "hf"), ModelLocator.HubCacheDirectory(Env(("HF_HUB_CACHE", "~/hf"))));
    }

    [Fact]
    public void Finds_the_snapshot_that_refs_main_points_to()
    {
        var env = Env(("HF_HOME", _temp.Combine("hf")));
        string repo = _temp.Combine("hf", "hub", "models--microsoft--bitnet-b1.58-2B-4T-gguf");
        string commit = new('a', 40);
        Write(Path.Combine(repo, "refs", "main"), commit + "\n");
        string expected = Write(Path.Combine(repo, "snapshots", commit, "ggml-model-i2_s.gguf"));
        Write(Path.Combine(repo, "snapshots", new string('b', 40), "ggml-model-i2_s.gguf"));

        Assert.True(ModelLocator.TryFindLocal(ModelReference.Default, out string path, env));
        Assert.Equal(expected, path);
        Assert.Equal(expected, ModelLocator.DefaultModelPath(env));
    }

    [Fact]
    public void Without_refs_the_newest_snapshot_holding_the_file_is_used()
    {
        var env = Env(("HF_HUB_CACHE", _temp.Combine("cache")));
        string repo = _temp.Combine("cache", "models--org--tiny");
        string older = Write(Path.Combine(repo, "snapshots", "c1", "m.gguf"));
        string newer = Write(Path.Combine(repo, "snapshots", "c2", "m.gguf"));
        File.SetLastWriteTimeUtc(older, DateTime.UtcNow.AddHours(-1));

        Assert.True(ModelLocator.TryFindLocal(new ModelReference("org/tiny", "m.gguf"), out string path, env));
        Assert.Equal(newer, path);
    }

    [Fact]
    public void Bitnet_model_variable_wins_over_the_cache()
    {
        string file = Write(_temp.Combine("elsewhere.gguf"));
        var env = Env(("BITNET_MODEL", file), ("HF_HOME", _temp.Combine("hf")));
        Assert.Equal(file, ModelLocator.DefaultModelPath(env));
    }

    [Fact]
    public void Missing_bitnet_model_file_is_reported_by_name()
    {
        var env = Env(("BITNET_MODEL", _temp.Combine("nope.gguf")));
        var error = Assert.Throws<FileNotFoundException>(() => ModelLocator.DefaultModelPath(env));
        Assert.Contains("BITNET_MODEL", error.Message);
        Assert.Contains("nope.gguf", error.Message);
    }

    [Fact]
    public void Missing_default_model_error_says_how_to_get_one()
    {
        var env = Env(("HF_HOME", _temp.Combine("hf")));
        Assert.False(ModelLocator.TryResolveDefault(out string where, env));
        Assert.StartsWith(_temp.Combine("hf", "hub", "models--microsoft--bitnet-b1.58-2B-4T-gguf", "snapshots"), where);
        var error = Assert.Throws<FileNotFoundException>(() => ModelLocator.DefaultModelPath(env));
        Assert.Contains("bitnet pull", error.Message);
        Assert.Contains("-m", error.Message);
    }

    [Theory]
    [InlineData("microsoft/bitnet-b1.58-2B-4T-gguf", "microsoft/bitnet-b1.58-2B-4T-gguf", "ggml-model-i2_s.gguf", "main")]
    [InlineData("org/name:sub/dir/file.gguf", "org/name", "sub/dir/file.gguf", "main")]
    [InlineData("org/name:f.gguf@v1.0", "org/name", "f.gguf", "v1.0")]
    [InlineData("org/name@refs/pr/3", "org/name", "ggml-model-i2_s.gguf", "refs/pr/3")]
    public void Parses_repo_file_and_revision(string text, string repo, string file, string revision)
    {
        Assert.Equal(new ModelReference(repo, file, revision), ModelReference.Parse(text));
    }

    [Theory]
    [InlineData("justname")]
    [InlineData("a/b/c")]
    [InlineData("org/na me")]
    [InlineData("org/name:")]
    [InlineData("org/name:../escape")]
    [InlineData("org/name@")]
    public void Rejects_references_the_hub_could_not_address(string text)
    {
        Assert.Throws<FormatException>(() => ModelReference.Parse(text));
    }
}
