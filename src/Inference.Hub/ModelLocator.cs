namespace BitNet.Inference.Hub;

/// <summary>
/// Where models live on disk. Follows the Hugging Face hub cache layout so a model pulled by
/// `huggingface-cli download` and one pulled by `bitnet pull` are the same file:
/// <code>
/// $HF_HUB_CACHE  (default $HF_HOME/hub, HF_HOME default $XDG_CACHE_HOME/huggingface or ~/.cache/huggingface)
///   models--{org}--{name}/
///     refs/{revision}                 the commit hash the revision pointed to when last pulled
///     blobs/{sha256 or etag}          file contents
///     snapshots/{commit}/{file}       symlink (or copy) to the blob
/// </code>
/// <c>BITNET_MODEL</c> overrides everything: when set, it is the model path.
/// </summary>
public static class ModelLocator
{
    /// <summary>Environment variable that names the model file outright.</summary>
    public const string ModelVariable = "BITNET_MODEL";

    /// <summary>
    /// The model to use when the user gave no <c>-m</c>: <c>BITNET_MODEL</c> if set, otherwise the
    /// default model (<see cref="ModelReference.Default"/>) in the hub cache. Throws
    /// <see cref="FileNotFoundException"/> with the fix (pass -m, set BITNET_MODEL, or run
    /// `bitnet pull`) when neither exists.
    /// </summary>
    public static string DefaultModelPath(IEnvironment? env = null)
    {
        if (TryResolveDefault(out string path, env))
            return path;
        env ??= ProcessEnvironment.Instance;
        string? fromVariable = env.GetVariable(ModelVariable);
        if (fromVariable is not null)
            throw new FileNotFoundException($"{ModelVariable} is set to '{fromVariable}', but no such file exists", fromVariable);
        throw new FileNotFoundException(
            $"no model given and {ModelReference.Default} is not in the Hugging Face cache ({HubCacheDirectory(env)}); " +
            $"pass -m PATH, set {ModelVariable}, or run `bitnet pull`",
            ExpectedSnapshotPath(ModelReference.Default, "main", env));
    }

    /// <summary>
    /// Like <see cref="DefaultModelPath"/>, but returns false instead of throwing. When
    /// <c>BITNET_MODEL</c> is set, <paramref name="path"/> is that value even if the file is missing
    /// (so callers can report it); when it is not set, <paramref name="path"/> is where the default
    /// model would be found.
    /// </summary>
    public static bool TryResolveDefault(out string path, IEnvironment? env = null)
    {
        env ??= ProcessEnvironment.Instance;
        string? fromVariable = env.GetVariable(ModelVariable);
        if (fromVariable is not null)
        {
            path = ExpandHome(fromVariable, env);
            return File.Exists(path);
        }
        return TryFindLocal(ModelReference.Default, out path, env);
    }

    /// <summary>Finds <paramref name="file"/> of <paramref name="repo"/> at revision main in the hub cache.</summary>
    public static bool TryFindLocal(string repo, string file, out string path) =>
        TryFindLocal(new ModelReference(repo, file), out path);

    /// <summary>
    /// Finds a model file in the hub cache: the snapshot named by <c>refs/{revision}</c> (or the
    /// revision itself when it is a commit hash), falling back to the newest snapshot that holds the
    /// file (a cache copied from another machine may lack refs). On false, <paramref name="path"/> is
    /// where the file would be once pulled (with the revision name standing in for the unknown commit).
    /// </summary>
    public static bool TryFindLocal(ModelReference reference, out string path, IEnvironment? env = null)
    {
        env ??= ProcessEnvironment.Instance;
        string repoDir = RepoCacheDirectory(reference, env);
        string? commit = ReadRef(repoDir, reference.Revision) ?? (LooksLikeCommit(reference.Revision) ? reference.Revision : null);
        if (commit is not null)
        {
            path = SnapshotPath(repoDir, commit, reference.File);
            if (File.Exists(path))
                return true;
        }

        string snapshots = Path.Combine(repoDir, "snapshots");
        if (reference.Revision == "main" && Directory.Exists(snapshots))
        {
            string? newest = new DirectoryInfo(snapshots).EnumerateDirectories()
                .Select(d => SnapshotPath(repoDir, d.Name, reference.File))
                .Where(File.Exists)
                .OrderByDescending(File.GetLastWriteTimeUtc)
                .FirstOrDefault();
            if (newest is not null)
            {
                path = newest;
                return true;
            }
        }

        path = ExpectedSnapshotPath(reference, commit ?? reference.Revision, env);
        return false;
    }

    /// <summary>The hub cache root: HF_HUB_CACHE, else HUGGINGFACE_HUB_CACHE (legacy), else HF_HOME/hub.</summary>
    public static string HubCacheDirectory(IEnvironment? env = null)
    {
        env ??= ProcessEnvironment.Instance;
        string? hubCache = env.GetVariable("HF_HUB_CACHE") ?? env.GetVariable("HUGGINGFACE_HUB_CACHE");
        if (hubCache is not null)
            return ExpandHome(hubCache, env);
        return Path.Combine(HuggingFaceHome(env), "hub");
    }

    /// <summary>HF_HOME, else $XDG_CACHE_HOME/huggingface, else ~/.cache/huggingface.</summary>
    public static string HuggingFaceHome(IEnvironment? env = null)
    {
        env ??= ProcessEnvironment.Instance;
        string? home = env.GetVariable("HF_HOME");
        if (home is not null)
            return ExpandHome(home, env);
        string? xdg = env.GetVariable("XDG_CACHE_HOME");
        return xdg is not null
            ? Path.Combine(ExpandHome(xdg, env), "huggingface")
            : Path.Combine(env.HomeDirectory, ".cache", "huggingface");
    }

    /// <summary><c>{hub cache}/models--{org}--{name}</c>.</summary>
    public static string RepoCacheDirectory(ModelReference reference, IEnvironment? env = null) =>
        Path.Combine(HubCacheDirectory(env), reference.CacheFolderName);

    internal static string ExpectedSnapshotPath(ModelReference reference, string commit, IEnvironment env) =>
        SnapshotPath(RepoCacheDirectory(reference, env), commit, reference.File);

    internal static string SnapshotPath(string repoDir, string commit, string file) =>
        Path.Combine([repoDir, "snapshots", commit, .. file.Split('/')]);

    internal static string? ReadRef(string repoDir, string revision)
    {
        string refFile = Path.Combine([repoDir, "refs", .. revision.Split('/')]);
        if (!File.Exists(refFile))
            return null;
        string commit = File.ReadAllText(refFile).Trim();
        return commit.Length == 0 ? null : commit;
    }

    internal static bool LooksLikeCommit(string revision) =>
        revision.Length == 40 && revision.All(char.IsAsciiHexDigitLower);

    private static string ExpandHome(string path, IEnvironment env) =>
        path == "~" ? env.HomeDirectory
        : path.StartsWith("~/", StringComparison.Ordinal) ? Path.Combine(env.HomeDirectory, path[2..])
        : path;
}
