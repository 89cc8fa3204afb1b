using System.Threading.Channels;
using BitNet.Inference.Model;
using BitNet.Inference.Sampling;
using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Generation;

/// <summary>
/// One generation inside the scheduler: its request, its positions in the shared KV pool, its own
/// sampler and output text (detokenizer and stop matcher), and where its updates go. Touched only by
/// the scheduler's thread once enqueued (the caller keeps only <see cref="Retired"/> and the channel's reader).
/// </summary>
internal sealed class SequenceRun : IScreenedSequence
{
    public SequenceRun(GenerationRequest request, KvCachePool pool, int contextLength, Tokenizer tokenizer,
        ChannelWriter<GenerationUpdate> output, long started, CancellationToken cancel)
    {
        Request = request;
        Kv = new KvSequence(pool, contextLength);
        PromptLength = request.PromptTokens.Count;
        History = new int[contextLength + 1];
        for (int i = 0; i < PromptLength; i++) History[i] = request.PromptTokens[i];
        Text = new OutputText(tokenizer, request.Stop);
        Output = output;
        Cancel = cancel;
        Started = started;
        // Screening needs only the sampler's candidates; log-probabilities need every logit.
        AllowScreening = request.TopLogprobs is null;
    }

    public GenerationRequest Request { get; }
    public KvSequence Kv { get; }
    public int PromptLength { get; }
    /// <summary>The prompt, then every sampled token.</summary>
    public int[] History { get; }
    public OutputText Text { get; }
    public ChannelWriter<GenerationUpdate> Output { get; }
    public CancellationToken Cancel { get; }
    public bool AllowScreening { get; }
    /// <summary>Set (by the scheduler) once the sequence left and its blocks are back in the pool.</summary>
    public TaskCompletionSource Retired { get; } = new(TaskCreationOptions.RunContinuationsAsynchronously);

    /// <summary>Taken from the scheduler's samplers when the sequence starts; returned when it ends.</summary>
    public Sampler? Sampler { get; set; }
    /// <summary>Blocks the sequence may take in all (prompt plus every token it may generate), promised at admission.</summary>
    public int PromisedBlocks { get; set; }
    /// <summary>Promised blocks not taken yet.</summary>
    public int BlocksStillToTake => Math.Max(0, PromisedBlocks - Kv.BlockCount);
    /// <summary>Prompt positions that came from shared blocks instead of being evaluated.</summary>
    public int ReusedPromptTokens { get; set; }

    /// <summary>Tokens sampled so far; 0 while the prompt is being evaluated.</summary>
    public int Generated { get; set; }
    public bool InPrompt => Generated == 0;
    /// <summary>The final update was sent; the scheduler releases the sequence after the step.</summary>
    public bool Ended { get; set; }
    /// <summary>Rows of the current step that belong to the sequence, and the first of them.</summary>
    public int StepRows { get; set; }
    public int StepFirstRow { get; set; }
    /// <summary>The sequence's head input in the current step, or −1 when it has no logits row.</summary>
    public int HeadInput { get; set; } = -1;
    public bool ScreenedHead { get; set; }
    /// <summary>With the screened head: how many candidate rows the step chose (their ids and exact logits in the
    /// workspace's slot for the sequence), or −1 when its input had no bounds.</summary>
    public int CandidateCount { get; set; }
    public ReadOnlySpan<int> TokenHistory => History.AsSpan(0, PromptLength + Generated);

    // Prefix sharing: the sequence's first RegisteredBlocks blocks are known by their prefix hash.
    public int RegisteredBlocks { get; set; }
    public ulong ChainHash { get; set; }

    // Timings (Stopwatch timestamps).
    public long Started { get; }
    public long PromptStart { get; set; }
    public long PromptEnd { get; set; }
    public long FirstToken { get; set; }
}
