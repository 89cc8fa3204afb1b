using System.Collections.Concurrent;
using BitNet.Inference.Generation;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Generation;

/// <summary>Two engines on the oracle model: one decoding up to 8 sequences together, one running them alone.</summary>
public sealed class BatchingFixture : IDisposable
{
    public BatchingFixture()
    {
        // Prompt chunks of at most 7 tokens beside the decoding rows: many chunk boundaries and step compositions.
        Batched = BitNetEngine.Load(new EngineOptions
        {
            ModelPath = SharedData.OracleModelPath, ContextLength = 256, Threads = 2, Parallel = 8, PromptTokensPerStep = 7,
        });
        Solo = BitNetEngine.Load(new EngineOptions
        {
            ModelPath = SharedData.OracleModelPath, ContextLength = 256, Threads = 1, Parallel = 1, ReusePromptPrefix = false,
        });
    }

    public BitNetEngine Batched { get; }
    public BitNetEngine Solo { get; }

    public void Dispose()
    {
        Batched.Dispose();
        Solo.Dispose();
    }
}

/// <summary>Every full logits row a generation produced, in order, and the most sequences seen running together.</summary>
internal sealed class LogitsRecorder
{
    private readonly BitNetEngine _engine;
    private readonly ConcurrentDictionary<GenerationRequest, List<float[]>> _rows = new(ReferenceEqualityComparer.Instance);
    public int MostRunning { get; private set; }

    public LogitsRecorder(BitNetEngine engine)
    {
        _engine = engine;
        engine.LogitsObserved = (request, generated, logits) =>
        {
            var rows = _rows.GetOrAdd(request, _ => []);
            Assert.Equal(rows.Count, generated);
            rows.Add(logits.ToArray());
            MostRunning = Math.Max(MostRunning, engine.CurrentLoad.Running);
        };
    }

    public List<float[]> Rows(GenerationRequest request) => _rows[request];

    /// <summary>The rows of a request, or null if it produced none (cancelled before its first token).</summary>
    public List<float[]>? TryRows(GenerationRequest request) => _rows.TryGetValue(request, out var rows) ? rows : null;

    public void Detach() => _engine.LogitsObserved = null;
}

[Collection(nameof(BatchingTests))]
public class BatchingTests(BatchingFixture fixture, ITestOutputHelper output) : IClassFixture<BatchingFixture>
{
    private BitNetEngine Batched => fixture.Batched;
    private BitNetEngine Solo => fixture.Solo;

    private static readonly string[] Texts =
    [
        "The capital of France is",
        "Once upon a time, in a land far away, there lived a king who had three daughters. The youngest",
        "def fibonacci(n):",
        "Hi",
        "The quick brown fox jumps over the lazy dog. The quick brown fox jumps over the lazy dog again, and then the dog wakes up and",
        "1, 2, 3, 4, 5,",
        "In 1969, the first humans landed on",
        "Q: What is the boiling point of water at sea level?\nA:",
    ];

    /// <summary>Mixed prompt lengths, plain completions and chat prompts, and lengths to generate.</summary>
    private GenerationRequest Request(int i, SamplingOptions sampling)
    {
        string text = Texts[i % Texts.Length];
        IReadOnlyList<int> prompt = i % 3 == 2
            ? Batched.Tokenize(Batched.ApplyChatTemplate([new ChatMessage(ChatRole.System, "You are terse."), new ChatMessage(ChatRole.User, text)]), parseSpecial: true)
            : Batched.Tokenize(text);
        return new GenerationRequest { PromptTokens = prompt, MaxTokens = 6 + 3 * (i % 4), Sampling = sampling, StopOnEndOfGeneration = false };
    }

    private static async Task<(int[][] Tokens, List<float[]>[] Logits, int MostRunning)> Run(BitNetEngine engine, GenerationRequest[] requests, bool together)
    {
        var recorder = new LogitsRecorder(engine);
        try
        {
            var tokens = new int[requests.Length][];
            if (together)
            {
                var runs = requests.Select(r => EngineFixture.Collect(engine, r)).ToArray();
                await Task.WhenAll(runs);
                for (int i = 0; i < runs.Length; i++) tokens[i] = EngineFixture.TokenIds(runs[i].Result.Updates);
            }
            else
                for (int i = 0; i < requests.Length; i++)
                    tokens[i] = EngineFixture.TokenIds((await EngineFixture.Collect(engine, requests[i])).Updates);
            return (tokens, requests.Select(recorder.Rows).ToArray(), recorder.MostRunning);
        }
        finally { recorder.Detach(); }
    }

    private static void AssertSameLogits(List<float[]> expected, List<float[]> actual, int request)
    {
        Assert.Equal(expected.Count, actual.Count);
        for (int row = 0; row < expected.Count; row++)
        {
            int differ = expected[row].Zip(actual[row]).Count(p => BitConverter.SingleToInt32Bits(p.First) != BitConverter.SingleToInt32Bits(p.Second));
            Assert.True(differ == 0, $"request {request}, logits row {row}: {differ} logits differ from the solo run");
        }
    }

    [Theory]
    [InlineData(2)]
    [InlineData(4)]
    [InlineData(8)]
    public async Task Concurrent_greedy_generations_equal_their_solo_runs_token_for_token_and_logit_for_logit(int n)
    {
        var requests = Enumerable.Range(0, n).Select(i => Request(i, SamplingOptions.Greedy)).ToArray();
        var solo = await Run(Solo, requests, together: false);
        var batched = await Run(Batched, requests, together: true);
        output.WriteLine($"{n} requests: up to {batched.MostRunning} decoded together");
        Assert.True(batched.MostRunning >= 2, "the generations should have run together");
        for (int i = 0; i < n; i++)
        {
            Assert.Equal(solo.Tokens[i], batched.Tokens[i]);
            AssertSameLogits(solo.Logits[i], batched.Logits[i], i);
        }
        Assert.Equal(0, Batched.KvCache.UsedBlocks);
    }

    [Fact]
    public async Task Seeded_sampling_beside_other_generations_equals_its_solo_run()
    {
        var requests = Enumerable.Range(0, 4)
            .Select(i => Request(i, new SamplingOptions { Temperature = 0.9f, TopK = 0, TopP = 1f, MinP = 0f, Seed = (ulong)(11 + i) }) with { MaxTokens = 16 })
            .ToArray();
        var solo = await Run(Solo, requests, together: false);
        var batched = await Run(Batched, requests, together: true);
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(solo.Tokens[i], batched.Tokens[i]);
            AssertSameLogits(solo.Logits[i], batched.Logits[i], i);
        }
    }

    [Fact]
    public async Task A_shared_system_prompt_is_evaluated_once_and_the_outputs_are_unchanged()
    {
        const string systemPrompt = "You are a careful assistant for a library. You answer questions about books, authors, opening hours and loans. " +
            "Keep answers short, friendly and accurate, and say so when you do not know something. " +
            "The library opens at nine in the morning on weekdays and at ten on Saturdays; it is closed on Sundays and public holidays.";
        string[] questions = ["When do you open?", "Who wrote Hamlet?", "Can I renew a loan online?", "Do you have audiobooks?"];
        GenerationRequest Ask(string question) => new()
        {
            PromptTokens = Batched.Tokenize(Batched.ApplyChatTemplate([new ChatMessage(ChatRole.System, systemPrompt), new ChatMessage(ChatRole.User, question)])),
            MaxTokens = 5, Sampling = SamplingOptions.Greedy, StopOnEndOfGeneration = false,
        };
        var first = Ask("Hello");
        var requests = questions.Select(Ask).ToArray();
        int block = Batched.KvCache.BlockTokens;
        int common = Enumerable.Range(0, first.PromptTokens.Count).TakeWhile(i => requests.All(r => r.PromptTokens[i] == first.PromptTokens[i])).Count();
        Assert.True(common > 2 * block && common % block != 0 && requests.All(r => r.PromptTokens.Count - 2 >= common),
            $"the system prompt ({common} common tokens) should fill two blocks of {block} and part of a third");

        var solo = await Run(Solo, requests, together: false);
        await EngineFixture.Collect(Batched, first);   // evaluates the system prompt once
        long reused = Batched.CurrentLoad.PromptTokensReused, evaluated = Batched.CurrentLoad.PromptTokensEvaluated;
        var batched = await Run(Batched, requests, together: true);
        var load = Batched.CurrentLoad;
        output.WriteLine($"system prompt: {common} common tokens, each request's taken from the cache (two whole blocks shared, the rest copied); evaluated {load.PromptTokensEvaluated - evaluated}, reused {load.PromptTokensReused - reused}");
        Assert.Equal(requests.Length * common, load.PromptTokensReused - reused);
        Assert.Equal(requests.Sum(r => r.PromptTokens.Count) - requests.Length * common, load.PromptTokensEvaluated - evaluated);
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(solo.Tokens[i], batched.Tokens[i]);
            AssertSameLogits(solo.Logits[i], batched.Logits[i], i);
        }
    }

    [Theory]
    [InlineData(32)]   // ends on a block boundary
    [InlineData(45)]   // ends inside a block
    public async Task A_repeated_prompt_evaluates_only_its_last_two_tokens_and_keeps_its_logits(int length)
    {
        int[] prompt = Batched.Tokenize("Lighthouse keepers on remote islands kept logbooks of weather, passing ships, supplies and repairs; " +
            "one such log, kept for forty years on a rock in the North Sea, records every storm, every wreck, every visitor " +
            "and every delivery of oil, bread and letters.").Take(length).ToArray();
        Assert.Equal(length, prompt.Length);
        var request = new GenerationRequest { PromptTokens = prompt, MaxTokens = 4, Sampling = SamplingOptions.Greedy, StopOnEndOfGeneration = false };
        var solo = await Run(Solo, [request], together: false);
        await Run(Batched, [request], together: false);
        var again = await Run(Batched, [request], together: false);
        Assert.Equal(2, Batched.LastPromptTokensEvaluated);
        Assert.Equal(solo.Tokens[0], again.Tokens[0]);
        AssertSameLogits(solo.Logits[0], again.Logits[0], 0);
    }

    [Fact]
    public async Task Generations_arriving_together_with_a_common_prompt_evaluate_it_once()
    {
        // Three samples of one prompt (as n choices are) and a fourth question after the same system prompt,
        // all enqueued at once on an empty cache (a fresh engine: any chat prompt shares its first tokens with
        // another's): the first evaluates its prompt, the others wait for it instead of evaluating the same tokens beside it.
        using var engine = BitNetEngine.Load(new EngineOptions
        {
            ModelPath = SharedData.OracleModelPath, ContextLength = 256, Threads = 2, Parallel = 8, PromptTokensPerStep = 7,
        });
        const string systemPrompt = "You are the booking assistant of a small hotel by the sea. Guests ask about rooms, prices, breakfast, " +
            "parking and the way from the station. Answer in two sentences at most, and offer to book a room when it fits. " +
            "Rooms cost ninety euros a night, breakfast is served from seven to ten, and the car park behind the hotel is free for guests.";
        GenerationRequest Ask(string question, SamplingOptions sampling) => new()
        {
            PromptTokens = engine.Tokenize(engine.ApplyChatTemplate([new ChatMessage(ChatRole.System, systemPrompt), new ChatMessage(ChatRole.User, question)])),
            MaxTokens = 6, Sampling = sampling, StopOnEndOfGeneration = false,
        };
        var requests = new[]
        {
            Ask("Is breakfast included?", new SamplingOptions { Temperature = 0.8f, Seed = 1 }),
            Ask("Is breakfast included?", new SamplingOptions { Temperature = 0.8f, Seed = 2 }),
            Ask("Is breakfast included?", new SamplingOptions { Temperature = 0.8f, Seed = 3 }),
            Ask("Can I park my car?", SamplingOptions.Greedy),
        };
        int block = engine.KvCache.BlockTokens;
        // Each later request takes its longest common prefix with an earlier one, up to its n − 2: whole blocks
        // shared, the rest copied.
        int Shared(int i) => Enumerable.Range(0, i).Max(j =>
            Math.Min(requests[i].PromptTokens.Zip(requests[j].PromptTokens).TakeWhile(p => p.First == p.Second).Count(), requests[i].PromptTokens.Count - 2));
        int[] shared = [0, .. Enumerable.Range(1, requests.Length - 1).Select(Shared)];
        Assert.True(shared[3] >= 2 * block && shared[3] % block != 0 && shared[1] > shared[3], $"shared tokens: {string.Join(", ", shared)}");

        var solo = await Run(Solo, requests, together: false);
        var batched = await Run(engine, requests, together: true);
        var load = engine.CurrentLoad;
        output.WriteLine($"prompts of {string.Join(", ", requests.Select(r => r.PromptTokens.Count))} tokens; evaluated {load.PromptTokensEvaluated}, reused {load.PromptTokensReused}");
        Assert.Equal(shared.Sum(), load.PromptTokensReused);
        Assert.Equal(requests.Sum(r => r.PromptTokens.Count) - shared.Sum(), load.PromptTokensEvaluated);
        Assert.True(batched.MostRunning >= 2, "the generations should have decoded together");
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(solo.Tokens[i], batched.Tokens[i]);
            AssertSameLogits(solo.Logits[i], batched.Logits[i], i);
        }
        Assert.Equal(0, engine.KvCache.UsedBlocks);
    }

    [Fact]
    public async Task A_screened_head_serving_several_generations_chooses_the_f16_heads_tokens()
    {
        using var screened = BitNetEngine.Load(new EngineOptions
        {
            ModelPath = SharedData.OracleModelPath, ContextLength = 256, Threads = 2, Parallel = 4, LmHead = BitNet.Inference.Model.LmHeadMode.Screened,
        });
        var requests = Enumerable.Range(0, 4)
            .Select(i => Request(i, new SamplingOptions { Temperature = 0.7f, TopK = 20, Seed = (ulong)(5 + i) }) with { MaxTokens = 10 })
            .ToArray();
        var solo = await Run(Solo, requests, together: false);
        var results = await Task.WhenAll(requests.Select(r => EngineFixture.Collect(screened, r)));
        for (int i = 0; i < requests.Length; i++)
            Assert.Equal(solo.Tokens[i], EngineFixture.TokenIds(results[i].Updates));
        Assert.Equal(0, screened.KvCache.UsedBlocks);
    }

    [Fact]
    public async Task Prompt_chunks_of_any_size_give_the_same_logits()
    {
        var request = Request(4, SamplingOptions.Greedy);   // the longest prompt
        var whole = await Run(Solo, [request], together: false);
        foreach (int budget in new[] { 3, 5, 16 })
        {
            using var engine = BitNetEngine.Load(new EngineOptions
            {
                ModelPath = SharedData.OracleModelPath, ContextLength = 256, Threads = 1, PromptTokensPerStep = budget, ReusePromptPrefix = false,
            });
            var chunked = await Run(engine, [request], together: false);
            Assert.Equal(whole.Tokens[0], chunked.Tokens[0]);
            AssertSameLogits(whole.Logits[0], chunked.Logits[0], 0);
        }
    }

    [Fact]
    public async Task Cancelling_a_generation_returns_its_blocks_within_one_step_while_others_go_on()
    {
        var other = Request(1, SamplingOptions.Greedy) with { MaxTokens = 40 };
        var otherRun = EngineFixture.Collect(Batched, other);
        using var cancel = new CancellationTokenSource();
        var request = Request(0, SamplingOptions.Greedy) with { MaxTokens = 200 };
        var updates = new List<GenerationUpdate>();
        // Cancelled on the scheduler thread while its third token is chosen: this reader may lag the scheduler
        // by several steps (updates wait in the channel), so what it has read says nothing about the steps run.
        Batched.LogitsObserved = (r, generated, _) =>
        {
            if (ReferenceEquals(r, request) && generated == 2) cancel.Cancel();
        };
        try
        {
            await foreach (var update in Batched.GenerateAsync(request, cancel.Token))
                updates.Add(update);
        }
        finally
        {
            Batched.LogitsObserved = null;
        }
        var final = updates[^1].Final!;
        Assert.Equal(FinishReason.Cancelled, final.FinishReason);
        Assert.InRange(final.CompletionTokens, 3, 4);   // the token of the step under way, at most one more
        var (_, otherStats) = await otherRun;
        Assert.Equal(FinishReason.Length, otherStats.FinishReason);
        Assert.Equal(0, Batched.KvCache.UsedBlocks);
    }

    [Fact]
    public async Task A_consumer_that_leaves_early_frees_the_blocks_before_its_enumeration_ends()
    {
        int seen = 0;
        await foreach (var update in Batched.GenerateAsync(Request(2, SamplingOptions.Greedy) with { MaxTokens = 100 }, TestContext.Current.CancellationToken))
            if (++seen == 2) break;
        Assert.Equal(0, Batched.KvCache.UsedBlocks);
        Assert.Equal(0, Batched.CurrentLoad.Running);
    }

    [Fact]
    public async Task Stop_strings_and_deadlines_end_a_generation_and_free_its_blocks()
    {
        var request = Request(0, SamplingOptions.Greedy) with { MaxTokens = 12 };
        var (all, _) = await EngineFixture.Collect(Batched, request);
        string full = string.Concat(all.Select(u => u.Text));
        string stop = full.Substring(full.Length / 2, Math.Min(3, full.Length - full.Length / 2));
        var (_, stats) = await EngineFixture.Collect(Batched, request with { Stop = [stop] });
        Assert.Equal(FinishReason.Stop, stats.FinishReason);
        Assert.Equal(0, Batched.KvCache.UsedBlocks);

        var (_, lateStats) = await EngineFixture.Collect(Batched, request with { MaxTokens = 200, Deadline = DateTimeOffset.UtcNow.AddMilliseconds(150) });
        Assert.Equal(FinishReason.Length, lateStats.FinishReason);
        Assert.True(lateStats.CompletionTokens < 200);
        Assert.Equal(0, Batched.KvCache.UsedBlocks);
    }

    [Fact]
    public async Task A_full_pool_makes_new_generations_wait_and_every_output_stays_correct()
    {
        // Room for one whole context (4 blocks of 32): each request needs 3 blocks, so one runs at a time.
        using var small = BitNetEngine.Load(new EngineOptions
        {
            ModelPath = SharedData.OracleModelPath, ContextLength = 128, KvCacheTokens = 128, Threads = 1, Parallel = 4,
        });
        var requests = Enumerable.Range(0, 4).Select(i => Request(i == 1 ? 0 : i, SamplingOptions.Greedy) with { MaxTokens = 70 }).ToArray();
        Assert.All(requests, r => Assert.True(r.PromptTokens.Count + 69 > 64 && r.PromptTokens.Count + 69 <= 96));
        var solo = await Run(Solo, requests, together: false);
        int mostWaiting = 0;
        var recorder = new LogitsRecorder(small);
        small.LogitsObserved += (_, _, _) => mostWaiting = Math.Max(mostWaiting, small.CurrentLoad.Waiting);
        var results = await Task.WhenAll(requests.Select(r => EngineFixture.Collect(small, r)));
        Assert.Equal(1, recorder.MostRunning);
        Assert.True(mostWaiting >= 1);
        for (int i = 0; i < requests.Length; i++)
        {
            Assert.Equal(solo.Tokens[i], EngineFixture.TokenIds(results[i].Updates));
            AssertSameLogits(solo.Logits[i], recorder.Rows(requests[i]), i);
        }
        Assert.Equal(0, small.KvCache.UsedBlocks);
    }

    [Fact]
    public async Task A_generations_progress_says_it_waits_until_the_pool_admits_it_then_that_its_prompt_is_evaluated()
    {
        // Room for one whole context (4 blocks of 32): while the first request runs, the second cannot be admitted.
        using var small = BitNetEngine.Load(new EngineOptions
        {
            ModelPath = SharedData.OracleModelPath, ContextLength = 128, KvCacheTokens = 128, Threads = 1, Parallel = 2,
        });
        var firstProgress = new GenerationProgress();
        var first = Request(0, SamplingOptions.Greedy) with { MaxTokens = 70, Progress = firstProgress };
        using var halted = new ManualResetEventSlim();
        using var release = new ManualResetEventSlim();
        // The scheduler stops at the first request's first token, holding its blocks, until the second has been looked at.
        small.LogitsObserved = (r, generated, _) =>
        {
            if (!ReferenceEquals(r, first) || generated != 0) return;
            halted.Set();
            release.Wait(TimeSpan.FromSeconds(30));
        };
        Task<(List<GenerationUpdate>, GenerationStats)> firstRun = EngineFixture.Collect(small, first);
        var progress = new GenerationProgress();
        Assert.Equal(GenerationPhase.Unknown, progress.Phase);
        try
        {
            Assert.True(await Task.Run(() => halted.Wait(TimeSpan.FromSeconds(30)), TestContext.Current.CancellationToken));
            Assert.Equal(GenerationPhase.EvaluatingPrompt, firstProgress.Phase);
            await using IAsyncEnumerator<GenerationUpdate> second = small.GenerateAsync(
                Request(1, SamplingOptions.Greedy) with { MaxTokens = 70, Progress = progress }, TestContext.Current.CancellationToken).GetAsyncEnumerator(TestContext.Current.CancellationToken);
            ValueTask<bool> moving = second.MoveNextAsync();
            Assert.Equal(GenerationPhase.Waiting, progress.Phase);
            release.Set();
            Assert.True(await moving);
            Assert.Equal(GenerationPhase.EvaluatingPrompt, progress.Phase);   // admitted; it never goes back
            while (await second.MoveNextAsync())
            {
            }
        }
        finally
        {
            release.Set();
        }
        await firstRun;
        Assert.Equal(0, small.KvCache.UsedBlocks);
    }

    /// <summary>
    /// Held-out compositions: requests arrive at random times with prompts that share system prompts (or
    /// repeat, or end on a block boundary), greedy or seeded, some cancelled at a random token or a random
    /// moment, in a pool too small for every running sequence's blocks. Whatever ran beside what, every
    /// generation gives its solo tokens and logits (a cancelled one, a prefix of them) and the pool ends empty.
    /// </summary>
    [Theory]
    [InlineData(1)]
    [InlineData(2)]
    [InlineData(3)]
    public async Task Random_arrivals_cancellations_and_shared_prefixes_in_a_full_pool_never_change_a_generation(int seed)
    {
        var random = new Random(seed);
        int[] chunkChoices = [3, 7, 16, 64];
        int chunk = chunkChoices[random.Next(chunkChoices.Length)];
        // 8 blocks of 32 for up to 4 sequences of up to 3 blocks: requests wait for blocks as well as for places.
        using var engine = BitNetEngine.Load(new EngineOptions
        {
            ModelPath = SharedData.OracleModelPath, ContextLength = 128, KvCacheTokens = 256, Threads = 2, Parallel = 4,
            PromptTokensPerStep = chunk,
        });
        string[] systems =
        [
            "You are a careful assistant for a library. You answer questions about books, authors, opening hours and loans, briefly.",
            "You are a travel agent. Suggest one destination, one hotel and one dish to try, in that order, in a single sentence each.",
            "Answer in French.",
        ];
        int block = engine.KvCache.BlockTokens;
        const int count = 20;
        var requests = new GenerationRequest[count];
        var cancelAtToken = new int[count];
        var cancels = new CancellationTokenSource[count];
        var delays = new int[count];
        for (int i = 0; i < count; i++)
        {
            string text = Texts[random.Next(Texts.Length)];
            var prompt = engine.Tokenize(engine.ApplyChatTemplate(
                [new ChatMessage(ChatRole.System, systems[random.Next(systems.Length)]), new ChatMessage(ChatRole.User, text)]), parseSpecial: true);
            if (random.Next(4) == 0 && prompt.Count > block) prompt = prompt.Take(prompt.Count / block * block).ToArray();
            var sampling = random.Next(2) == 0 ? SamplingOptions.Greedy : new SamplingOptions { Temperature = 0.9f, Seed = (ulong)random.Next(1000) };
            requests[i] = new GenerationRequest { PromptTokens = prompt, MaxTokens = 1 + random.Next(10), Sampling = sampling, StopOnEndOfGeneration = false };
            Assert.True(prompt.Count + requests[i].MaxTokens <= 3 * block, $"request {i} needs more than 3 blocks");
            cancelAtToken[i] = random.Next(5) == 0 ? random.Next(requests[i].MaxTokens) : -1;
            cancels[i] = new CancellationTokenSource();
            if (random.Next(8) == 0) cancels[i].CancelAfter(random.Next(5, 80));
            delays[i] = random.Next(60);
        }
        var index = new Dictionary<GenerationRequest, int>(ReferenceEqualityComparer.Instance);
        for (int i = 0; i < count; i++) index[requests[i]] = i;

        var solo = await Run(Solo, requests, together: false);
        var recorder = new LogitsRecorder(engine);
        int mostWaiting = 0;
        engine.LogitsObserved += (request, generated, _) =>
        {
            int i = index[request];
            if (cancelAtToken[i] == generated) cancels[i].Cancel();
            mostWaiting = Math.Max(mostWaiting, engine.CurrentLoad.Waiting);
        };
        async Task<(int[] Tokens, FinishReason Finish)> Arrive(int i)
        {
            await Task.Delay(delays[i], TestContext.Current.CancellationToken);
            var tokens = new List<int>();
            FinishReason finish = FinishReason.Stop;
            await foreach (var update in engine.GenerateAsync(requests[i], cancels[i].Token))
            {
                if (update.TokenId >= 0) tokens.Add(update.TokenId);
                if (update.IsFinal) finish = update.Final!.FinishReason;
            }
            return (tokens.ToArray(), finish);
        }
        var results = await Task.WhenAll(Enumerable.Range(0, count).Select(Arrive));
        engine.LogitsObserved = null;

        var load = engine.CurrentLoad;
        output.WriteLine($"seed {seed}: prompt chunks of {chunk}, up to {recorder.MostRunning} running and {mostWaiting} waiting; " +
            $"prompt tokens evaluated {load.PromptTokensEvaluated}, reused {load.PromptTokensReused}; " +
            $"{results.Count(r => r.Finish == FinishReason.Cancelled)} cancelled");
        for (int i = 0; i < count; i++)
        {
            var (tokens, finish) = results[i];
            bool mayBeCancelled = cancels[i].IsCancellationRequested;
            Assert.True(finish == FinishReason.Length || mayBeCancelled && finish == FinishReason.Cancelled, $"request {i} finished with {finish}");
            if (finish == FinishReason.Length) Assert.Equal(solo.Tokens[i], tokens);
            else Assert.Equal(solo.Tokens[i].Take(tokens.Length), tokens);
            var rows = recorder.TryRows(requests[i]) ?? [];
            Assert.True(finish == FinishReason.Cancelled || rows.Count == solo.Logits[i].Count, $"request {i}: {rows.Count} logits rows, solo {solo.Logits[i].Count}");
            AssertSameLogits(solo.Logits[i].Take(rows.Count).ToList(), rows, i);
        }
        Assert.True(recorder.MostRunning >= 2, "requests should have run together");
        Assert.True(load.PromptTokensReused > 0, "prompts sharing a system prompt should have shared its blocks");
        Assert.Equal(0, engine.KvCache.UsedBlocks);
        Assert.Equal(engine.KvCache.BlockCount, engine.KvCache.FreeBlocks);
        Assert.Equal((0, 0), (load.Running, load.Waiting));
        foreach (var cancel in cancels) cancel.Dispose();
    }
}

[CollectionDefinition(nameof(BatchingTests))]
public sealed class BatchingCollection;
