using System.CommandLine;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using BitNet.Inference.Gguf;
using BitNet.Inference.Hub;
using BitNet.Inference.Model;
using BitNet.Inference.Threading;

namespace BitNet.Cli.Commands;

/// <summary>
/// The llama.cpp-style options shared by `generate` and `chat` (and `-m`/`--pre` by `tokenize`):
/// model, threads, context, pre-tokenizer and the sampler settings, with bitnet.cpp's defaults.
/// </summary>
internal sealed class ModelCommandOptions
{
    public readonly Option<string?> Model = ModelOption();
    public readonly Option<int> Threads = ThreadsOption();
    public readonly Option<int?> Context = ContextOption("min(model's, 4096)");
    public readonly Option<string?> Pre = new("--pre")
    {
        Description = "Pre-tokenizer: llama3 (Hugging Face-correct, default when the file names none) or default (bitnet.cpp parity for the published 2B4T file)",
    };
    public readonly Option<string?> ChatTemplate = ChatTemplateOption();
    public readonly Option<string> LmHead = new("--lm-head")
    {
        Description = "LM head: f16 (exact, default), q8 (int8 rows, half the bytes) or screened (f16's tokens at about q8's cost)",
        DefaultValueFactory = _ => "f16",
    };
    public readonly Option<string> Weights = WeightsOption();
    public readonly Option<int> MaxTokens = NumberOption.Create("--n-predict", "Tokens to generate", 128, "-n");
    public readonly Option<float> Temperature = NumberOption.Create("--temp", "Temperature, 0 to 2; 0 = greedy", 0.8f);
    public readonly Option<long?> Seed = NumberOption.Optional<long>("--seed", "Sampling seed (default or -1: random)", "-s");
    public readonly Option<int> TopK = NumberOption.Create("--top-k", "Top-k (0 = off)", 40);
    public readonly Option<float> TopP = NumberOption.Create("--top-p", "Top-p, 0 to 1 (1 = off)", 0.95f);
    public readonly Option<float> MinP = NumberOption.Create("--min-p", "Min-p, 0 to 1 (0 = off)", 0.05f);
    public readonly Option<float> RepeatPenalty = NumberOption.Create("--repeat-penalty", "Repeat penalty, up to 10 (1 = off)", 1.0f);
    public readonly Option<int> RepeatLastN = NumberOption.Create("--repeat-last-n", "Tokens the penalties look back over (-1 = the whole context, 0 = off)", 64);

    public ModelCommandOptions()
    {
        Pre.OneOf("llama3", "default", "falcon3");
        LmHead.OneOf([.. LmHeadModes.Names]);
    }

    public void AddModelOptionsTo(Command command)
    {
        command.Options.Add(Model);
        command.Options.Add(Pre);
    }

    public void AddAllTo(Command command)
    {
        foreach (Option o in new Option[] { Model, Threads, Context, Pre, ChatTemplate, LmHead, Weights, MaxTokens, Temperature, Seed, TopK, TopP, MinP, RepeatPenalty, RepeatLastN })
            command.Options.Add(o);
    }

    /// <summary>-m for every command that reads a model; without it, $BITNET_MODEL, then the pulled default.</summary>
    public static Option<string?> ModelOption(string what = "GGUF model file") => new("--model", "-m")
    {
        Description = $"{what} (default: ${ModelLocator.ModelVariable}, else {ModelReference.Default} in the Hugging Face cache)",
    };

    /// <summary>-t for every command that computes: 0 (the default) picks the cores this process may use.</summary>
    public static Option<int> ThreadsOption() =>
        NumberOption.Create("--threads", $"Compute threads, 1 to the processor count ({Environment.ProcessorCount}); default: the cores this process may use", 0, "-t");

    /// <summary>-c for every command that takes it (generate, chat, serve); left out, the command's default.</summary>
    public static Option<int?> ContextOption(string defaultText) => NumberOption.Optional<int>("--ctx-size",
        $"Context window in tokens, {ApiOptions.MinContextLength} to {ApiOptions.MaxContextLength} (default: {defaultText})", "-c");

    /// <summary>-c checked by one rule for every command: the server's range (that of BITNET_CONTEXT_LENGTH), before the model loads.</summary>
    public static int? CheckContext(int? context) =>
        context is null or (>= ApiOptions.MinContextLength and <= ApiOptions.MaxContextLength)
            ? context
            : throw new ArgumentException($"--ctx-size must be from {ApiOptions.MinContextLength} to {ApiOptions.MaxContextLength}; got {context}");

    /// <summary>-m, or the default model (throws FileNotFoundException saying how to get one).</summary>
    public string ResolveModelPath(ParseResult parse) => ResolveModelPath(parse.GetValue(Model));

    /// <summary>The given model file, or the default model ($BITNET_MODEL, then the Hugging Face cache).</summary>
    public static string ResolveModelPath(string? path)
    {
        if (path is null)
            return ModelLocator.DefaultModelPath();
        if (Directory.Exists(path))
            throw new ArgumentException($"'{path}' is a directory; -m takes a GGUF model file");
        if (SpecialFiles.SpecialKind(path) is { } kind)   // before anything opens it: a named pipe would wait for a writer
            throw new ArgumentException($"'{path}' is not a regular file but {kind}; -m takes a GGUF model file");
        return File.Exists(path) ? path : throw new FileNotFoundException($"model file '{path}' not found", path);
    }

    /// <summary>-t checked: 0 means the default, more threads than processors only slow the kernels down.</summary>
    public static int CheckThreads(int threads) => threads >= 0 && threads <= Environment.ProcessorCount
        ? threads
        : throw new ArgumentException($"--threads must be from 1 to {Environment.ProcessorCount} (the processors of this machine), or 0 for the default; got {threads}");

    public BitNetEngine LoadEngine(ParseResult parse)
    {
        int threads = CheckThreads(parse.GetValue(Threads));
        int? context = CheckContext(parse.GetValue(Context));
        return BitNetEngine.Load(new EngineOptions
        {
            ModelPath = ResolveModelPath(parse),
            Threads = threads > 0 ? threads : CpuBudget.DefaultThreads(),
            ContextLength = context ?? 0, // 0: the engine's default
            PreTokenizer = parse.GetValue(Pre),
            ChatTemplate = parse.GetValue(ChatTemplate),
            LmHead = LmHeadModes.Parse(parse.GetValue(LmHead) ?? "f16"),
            Storage = WeightStorages.Parse(parse.GetValue(Weights) ?? "auto"),
        });
    }

    /// <summary>--chat-template NAME, shared with `serve` (which also reads BITNET_CHAT_TEMPLATE).</summary>
    public static Option<string?> ChatTemplateOption()
    {
        var option = new Option<string?>("--chat-template")
        {
            Description = "Chat format: bitnet, llama3, falcon3 or falcon_e (default: the one the model file names or implies; required when the file's template is unknown)",
        };
        option.OneOf([.. Inference.Generation.ChatTemplate.Known.Select(t => t.Name)]);
        return option;
    }

    /// <summary>--weights auto|memory|mapped|move, shared with `bench` (`serve` reads BITNET_WEIGHTS).</summary>
    public static Option<string> WeightsOption()
    {
        var option = new Option<string>("--weights")
        {
            Description = "Where the streamed weights live: auto (default: move if the page cache holds the file in 2 MB folios, else memory), memory (copied at load into private memory), mapped (used in place through the memory-mapped file, shared between processes) or move (mapped at load, then moved into private memory in the background)",
            DefaultValueFactory = _ => "auto",
        };
        option.OneOf([.. WeightStorages.Names]);
        return option;
    }

    /// <summary>The sampler settings, checked by the API's rules (<see cref="SamplingRules"/>) with the API's messages.</summary>
    public SamplingOptions Sampling(ParseResult parse)
    {
        long? seed = parse.GetValue(Seed);
        var sampling = new SamplingOptions
        {
            Temperature = parse.GetValue(Temperature),
            TopK = parse.GetValue(TopK),
            TopP = parse.GetValue(TopP),
            MinP = parse.GetValue(MinP),
            RepeatPenalty = parse.GetValue(RepeatPenalty),
            RepeatLastN = parse.GetValue(RepeatLastN),
            Seed = SamplingRules.SeedValue(seed),
        };
        string[] problems = [.. SamplingRules.Problems(sampling, seed).Select(p => $"{FlagOf(p.Field)}: {p.Message}")];
        if (problems.Length > 0)
            throw new ArgumentException(string.Join("; ", problems));
        return sampling; // repeat_last_n -1: the sampler's window is the whole history
    }

    private static string FlagOf(string field) => field switch
    {
        "temperature" => "--temp",
        "seed" => "--seed",
        _ => "--" + field.Replace('_', '-'),
    };

    /// <summary>The text of -p, or the exact UTF-8 contents of -f (one of the two is required).</summary>
    public static string PromptText(ParseResult parse, Option<string?> prompt, Option<string?> file)
    {
        string? text = parse.GetValue(prompt), path = parse.GetValue(file);
        if (text is not null && path is not null) throw new ArgumentException("give either --prompt or --file, not both");
        if (path is not null) return PromptFile(path);
        return text ?? throw new ArgumentException("--prompt (-p) or --file (-f) is required");
    }

    /// <summary>
    /// A file to write, checked before any work: a name, not a directory, in a folder that exists, not on the
    /// kernel's pseudo file systems (/proc, /sys), and none of <paramref name="inputs"/> (writing over the file
    /// being read would replace it).
    /// </summary>
    public static string OutputFile(string path, string exampleName, params string?[] inputs)
    {
        if (path.Length == 0)
            throw new ArgumentException($"cannot write '': give a file name such as {exampleName}");
        if (inputs.Any(input => !string.IsNullOrEmpty(input) && Path.GetFullPath(input) == Path.GetFullPath(path)))
            throw new ArgumentException($"cannot write '{path}': it is one of the inputs; give another file name");
        if (Directory.Exists(path))
            throw new ArgumentException($"cannot write '{path}': it is a directory; give a file name such as {Path.Combine(path, exampleName)}");
        string? folder = Path.GetDirectoryName(Path.GetFullPath(path));
        if (folder is not null && !Directory.Exists(folder))
            throw new ArgumentException($"cannot write '{path}': the folder '{folder}' does not exist");
        if (SpecialFiles.PseudoFileSystemProblem(path) is { } problem)
            throw new ArgumentException($"cannot write '{path}': {problem}; give a path on a disk");
        return path;
    }

    /// <summary>A folder to write results into (created if missing), checked before any work: a name, not a file, not under /proc or /sys.</summary>
    public static string OutputFolder(string path, string flag)
    {
        if (path.Length == 0)
            throw new ArgumentException($"{flag} is empty; give a folder");
        if (File.Exists(path))
            throw new ArgumentException($"{flag} '{path}' is a file; give a folder (results are written inside it)");
        if (SpecialFiles.PseudoFileSystemProblem(path) is { } problem)
            throw new ArgumentException($"{flag} '{path}': {problem}; give a folder on a disk");
        return Path.GetFullPath(path);
    }

    private static string PromptFile(string path)
    {
        if (Directory.Exists(path))
            throw new ArgumentException($"'{path}' is a directory; -f takes a UTF-8 text file");
        if (!File.Exists(path))
            throw new FileNotFoundException($"prompt file '{path}' not found", path);
        try
        {
            // Bytes, not File.ReadAllText: that would take a UTF-16 or UTF-32 byte order mark as the file's encoding.
            ReadOnlySpan<byte> bytes = File.ReadAllBytes(path);
            if (bytes.StartsWith("\uFEFF"u8)) bytes = bytes[3..];
            return new System.Text.UTF8Encoding(false, true).GetString(bytes);
        }
        catch (System.Text.DecoderFallbackException)
        {
            throw new ArgumentException($"prompt file '{path}' is not valid UTF-8");
        }
    }

    public static Option<string?> PromptFileOption() => new("--file", "-f") { Description = "Read the prompt from this UTF-8 file (exactly, whitespace included; a byte order mark is skipped)" };

    public int ParseMaxTokens(ParseResult parse)
    {
        int n = parse.GetValue(MaxTokens);
        return n >= 1 ? n : throw new ArgumentException($"--n-predict must be at least 1; got {n}");
    }

    /// <summary>Errors a user can fix (bad file, bad option, missing model) print one line and exit 1.</summary>
    public static bool IsUserError(Exception e) =>
        e is IOException or ArgumentException or InvalidDataException or NotSupportedException or FormatException
          or ContextLengthExceededException or UnauthorizedAccessException
          or BitNet.Inference.Tokenization.TokenizerException or ChatTemplateException;   // GGUF/model format errors are IOExceptions

    /// <summary>
    /// The line a command prints for an error it reports: "error: " and the message, without the
    /// " (Parameter 'name')" (and "Actual value was …") that .NET appends to an argument exception's
    /// message for a developer; the user gave a flag, not that parameter.
    /// </summary>
    public static string ErrorLine(Exception e)
    {
        string message = e.Message;
        if (e is ArgumentException { ParamName: { } name } && message.IndexOf($" (Parameter '{name}')", StringComparison.Ordinal) is var at and >= 0)
            message = message[..at];
        return $"error: {message}";
    }

    /// <summary>One line of timings, llama.cpp style, for stderr.</summary>
    public static string Timings(GenerationStats stats)
    {
        static string Rate(int tokens, TimeSpan time) =>
            time > TimeSpan.Zero ? $"{tokens / time.TotalSeconds:F2} tok/s" : "n/a";
        return $"prompt eval: {stats.PromptTokens} tokens in {stats.PromptEvalTime.TotalMilliseconds:F0} ms ({Rate(stats.PromptTokens, stats.PromptEvalTime)}); " +
               $"generation: {stats.CompletionTokens} tokens in {stats.GenerationTime.TotalMilliseconds:F0} ms ({Rate(stats.CompletionTokens, stats.GenerationTime)}); " +
               $"first token after {stats.TimeToFirstToken.TotalMilliseconds:F0} ms; finish: {stats.FinishReason.ToString().ToLowerInvariant()}";
    }
}
