using System.Diagnostics;
using BitNet.Inference.Generation;
using BitNet.Inference.Hub;
using BitNet.Inference.Model;

namespace BitNet.Inference.Api;

/// <summary>Finding the model file and warming it before the engine maps it.</summary>
public static class ModelLoading
{
    /// <summary>The configured model path, or the default model (BITNET_MODEL, then the Hugging Face cache).
    /// Throws FileNotFoundException with the fix when neither exists.</summary>
    public static string ResolvePath(ApiOptions options, IEnvironment? environment = null)
    {
        if (options.ModelPath is { } path)
            return File.Exists(path) ? Path.GetFullPath(path) : throw new FileNotFoundException($"the model file '{path}' does not exist", path);
        return ModelLocator.DefaultModelPath(environment);
    }

    /// <summary>
    /// For the plain server and `bitnet serve`: like <see cref="ResolvePath"/>, but when no model was
    /// named and the default model is not in the cache yet, downloads it (resumable, SHA-256 checked)
    /// while /health says "Loading model". Lambda and Azure images carry their model and never download.
    /// </summary>
    public static string ResolveOrDownloadPath(ApiOptions options, TextWriter log, IEnvironment? environment = null)
    {
        if (options.ModelPath is not null || ModelLocator.TryResolveDefault(out _, environment) ||
            (environment ?? ProcessEnvironment.Instance).GetVariable(ModelLocator.ModelVariable) is not null)
            return ResolvePath(options, environment);
        log.WriteLine($"bitnet: no model given and {ModelReference.Default} is not cached; downloading it (set {EnvVars.Model} or pass -m to use a local file)");
        return HubDownloader.EnsureModelAsync(progress: new TextDownloadProgress(log), env: environment).GetAwaiter().GetResult();
    }

    /// <summary>
    /// Loads the engine the way every host does: resolve the path, read the file sequentially
    /// first (<see cref="Prefetch"/>) when <see cref="ApiOptions.PrefetchModel"/> is on, then <see cref="BitNetEngine.Load"/>.
    /// </summary>
    public static ITextGenerator LoadGenerator(ApiOptions options, IEnvironment? environment = null) =>
        LoadGenerator(options, ResolvePath(options, environment));

    /// <summary>Loads the engine from a resolved model file.</summary>
    public static ITextGenerator LoadGenerator(ApiOptions options, string path)
    {
        if (options.PrefetchModel)
            Prefetch(path);
        return BitNetEngine.Load(new EngineOptions
        {
            ModelPath = path,
            Threads = options.Threads,
            ContextLength = options.ContextLength,
            LmHead = LmHeadModes.Parse(options.LmHead),
            Storage = WeightStorages.Parse(options.Weights),
            PreTokenizer = options.PreTokenizer,
            ModelId = options.ModelId,
        });
    }

    /// <summary>
    /// Brings the whole file into the page cache once, front to back, 8 MiB at a time, and returns how
    /// long it took. On Lambda the container image is fetched in 512 KiB chunks on first touch; large
    /// sequential reads let the block device prefetch, where the engine's page faults during the
    /// first prompt would arrive in random order, 4 KiB at a time. The file is read through a mapping
    /// advised MADV_HUGEPAGE, each piece unmapped as soon as it is in: where the kernel and filesystem
    /// cache files in large folios (Linux 6.x, ext4/xfs) the pages not cached yet come in as 2 MB
    /// folios throughout (plain reads start small and grow), so the model can then start on the
    /// mapping (<see cref="WeightStorage.Auto"/>). Pages already cached stay as they are.
    /// </summary>
    public static unsafe TimeSpan Prefetch(string path)
    {
        var clock = Stopwatch.StartNew();
        long bytes = new FileInfo(path).Length;
        if (bytes == 0) return clock.Elapsed;
        const long piece = 8L << 20;
        using var map = System.IO.MemoryMappedFiles.MemoryMappedFile.CreateFromFile(
            path, FileMode.Open, null, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        using var view = map.CreateViewAccessor(0, 0, System.IO.MemoryMappedFiles.MemoryMappedFileAccess.Read);
        byte* pointer = null;
        view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        try
        {
            nint start = (nint)(pointer + view.PointerOffset);
            Threading.PageWarmup.PreferHugePages(start, (bytes + 4095) / 4096 * 4096);
            for (long offset = 0; offset < bytes; offset += piece)
            {
                long length = Math.Min(piece, bytes - offset);
                Threading.PageWarmup.PopulateOne(start + (nint)offset, length);
                Threading.PageWarmup.ReleaseMapped(start + (nint)offset, length);   // keep the resident set small
            }
        }
        finally
        {
            view.SafeMemoryMappedViewHandle.ReleasePointer();
        }
        return clock.Elapsed;
    }
}
