namespace BitNet.Inference.Model;

/// <summary>How the LM head (the F16 token embedding, transposed) is multiplied.</summary>
public enum LmHeadMode
{
    /// <summary>F16 weights × F16-rounded input, F32 accumulation: bitnet.cpp's arithmetic (the default).</summary>
    F16,
    /// <summary>The embedding quantized once at load to int8 rows with one scale per row (half the bytes per token; not bit-compatible with bitnet.cpp).</summary>
    Q8,
    /// <summary>
    /// Exact F16 logits where they can matter, at about the int8 head's cost: the int8 copy bounds every
    /// row's F16 logit (<see cref="LogitScreen"/>), and only the rows whose bound reaches the sampler's top k
    /// are computed exactly, from the F16 rows read from the file. Sampling is identical to <see cref="F16"/>;
    /// a request that needs every logit (log-probabilities, top_k off) gets the full F16 head.
    /// </summary>
    Screened,
}

/// <summary>The names of <see cref="LmHeadMode"/> on command lines and in settings: f16, q8, screened.</summary>
public static class LmHeadModes
{
    public static IReadOnlyList<string> Names { get; } = ["f16", "q8", "screened"];

    public static LmHeadMode Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "f16" => LmHeadMode.F16,
        "q8" => LmHeadMode.Q8,
        "screened" => LmHeadMode.Screened,
        _ => throw new ArgumentException($"unknown LM head '{name}' (expected one of: {string.Join(", ", Names)})", nameof(name)),
    };

    public static string Name(LmHeadMode mode) => mode.ToString().ToLowerInvariant();
}

/// <summary>Where the weights that every token streams (the ternary matrices, and the F16 LM head) live while the model runs.</summary>
public enum WeightStorage
{
    /// <summary>
    /// The default: <see cref="Move"/> when the page cache holds the weights in 2 MB folios that the
    /// mapping reads whole (a file brought in by large reads, such as the hosts' prefetch, or written by
    /// this project's tools): the first token comes straight from the mapping. Else <see cref="Memory"/>
    /// (a file copied with small writes sits in 4 KB pages, which stream slowly through a mapping on
    /// some virtual machines). Decided at load by mapping one 2 MB window in three of the streamed
    /// tensors (<see cref="Memory.HugeFolioProbe"/>).
    /// </summary>
    Auto,
    /// <summary>
    /// Read into private memory at load (2 MB pages where the OS gives them). Costs a copy at load
    /// and is not shared between processes; streams at memory speed from the first token.
    /// </summary>
    Memory,
    /// <summary>
    /// Used in place through the memory-mapped file (llama.cpp's default): no copy, and the page
    /// cache's pages are shared by every process serving the file. On some virtual machines passes
    /// over a mapped file are many times slower than over private memory (see <see cref="Gguf.GgufFile.CopyTensorsToMemory"/>).
    /// </summary>
    Mapped,
    /// <summary>
    /// <see cref="Mapped"/> at load, then moved into private memory in the background, window by 2 MB
    /// window, at the same addresses (<see cref="Memory.MappingMove"/>), starting after the first
    /// forward pass (or at <see cref="BitNetModel.StartWeightMove"/>): no copy delays the first token,
    /// and once moved tokens stream as from <see cref="Memory"/>. Resident memory stays that of one copy throughout. Linux; elsewhere
    /// the same as <see cref="Mapped"/>.
    /// </summary>
    Move,
}

/// <summary>The names of <see cref="WeightStorage"/> on command lines and in settings: auto, memory, mapped, move.</summary>
public static class WeightStorages
{
    public static IReadOnlyList<string> Names { get; } = ["auto", "memory", "mapped", "move"];

    public static WeightStorage Parse(string name) => name.Trim().ToLowerInvariant() switch
    {
        "auto" => WeightStorage.Auto,
        "memory" => WeightStorage.Memory,
        "mapped" => WeightStorage.Mapped,
        "move" => WeightStorage.Move,
        _ => throw new ArgumentException($"unknown weight storage '{name}' (expected one of: {string.Join(", ", Names)})", nameof(name)),
    };

    public static string Name(WeightStorage storage) => storage.ToString().ToLowerInvariant();
}

/// <summary>Options for <see cref="BitNetModel.Load"/>.</summary>
public sealed record ModelLoadOptions
{
    /// <summary>Worker threads for the matmuls; 0 = the physical cores this process may use (cgroup quota included).</summary>
    public int Threads { get; init; }
    public LmHeadMode LmHead { get; init; } = LmHeadMode.F16;
    /// <summary>Private copies of the streamed weights, the mapped file itself, the mapping moved into memory in the background, or (default) chosen at load.</summary>
    public WeightStorage Storage { get; init; } = WeightStorage.Auto;
    /// <summary>Kernel family: null = the best the CPU supports; "scalar" forces the reference kernel.</summary>
    public string? Kernel { get; init; }
    /// <summary>Receives one-line notes from loading, e.g. which kernel set was chosen ("kernels: i2s-avx512 …").</summary>
    public Action<string>? Log { get; init; }
    /// <summary>Tokens evaluated together during prompt processing (bounds the activation buffers), 1 to <see cref="MaxBatchSize"/>.</summary>
    public int BatchSize { get; init; } = 64;

    /// <summary>The largest <see cref="BatchSize"/>: a matrix product stages each thread's dots on its stack, 4 rows × the batch's tokens.</summary>
    public const int MaxBatchSize = 4096;

    /// <summary>
    /// Tests only: force (true) or forbid (false) the F16 rounding of the attention probabilities and the
    /// LM head input; null follows bitnet.cpp (round only for single-row products, see <see cref="Precision"/>).
    /// </summary>
    internal bool? RoundToF16Override { get; init; }
}
