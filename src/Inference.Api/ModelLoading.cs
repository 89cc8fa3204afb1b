using BitNet.Inference.Generation;
using BitNet.Inference.Gguf;
using BitNet.Inference.Hub;
using BitNet.Inference.Memory;
using BitNet.Inference.Model;

namespace BitNet.Inference.Api;

/// <summary>Finding the model file and warming it before the engine maps it.</summary>
public static class ModelLoading
{
    /// <summary>The configured model path, or the default model (BITNET_MODEL, then the Hugging Face cache).
    /// Throws FileNotFoundException with the fix when neither exists.</summary>
    public static string ResolvePath(ApiOptions options, IEnvironment? environment = null)
    {
        if (options.ModelPath is not { } path)
            return ModelLocator.DefaultModelPath(environment);
        if (Directory.Exists(path))
            throw new IOException($"the model path '{path}' is a directory; give a GGUF model file");
        if (SpecialFiles.SpecialKind(path) is { } kind)   // checked before the prefetch opens it: a named pipe would wait for a writer
            throw new IOException($"the model path '{path}' is not a regular file but {kind}; give a GGUF model file");
        return File.Exists(path) ? Path.GetFullPath(path) : throw new FileNotFoundException($"the model file '{path}' does not exist", path);
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
            LmHead = LmHeadModes.Parse(options.EffectiveLmHead),
            Storage = WeightStorages.Parse(options.Weights),
            PreTokenizer = options.PreTokenizer,
            ChatTemplate = options.ChatTemplate,
            ModelId = options.ModelId,
            Parallel = options.EffectiveParallel,
            KvCacheTokens = options.KvCacheTokens,
            PromptTokensPerStep = options.PromptTokensPerStep,
        });
    }

    /// <summary>Reads the model file into the page cache front to back (<see cref="FilePrefetch.Run"/>).</summary>
    public static TimeSpan Prefetch(string path) => FilePrefetch.Run(path);
}
