using System.Text.Json;
using BitNet.Inference.Generation;
using BitNet.Inference.Model;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Generation;

public class BitNetEngineTests(EngineFixture fixture, ITestOutputHelper output) : IClassFixture<EngineFixture>
{
    private BitNetEngine Engine => fixture.Engine;

    private static (int[] Prompt, int[] Generated) Oracle(string prefix)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(SharedData.OracleFile(prefix + ".tokens.json")));
        int[] Ids(string name) => json.RootElement.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        return (Ids("prompt_ids"), Ids("generated_ids"));
    }

    internal static GenerationRequest Greedy(IReadOnlyList<int> prompt, int maxTokens) => new()
    {
        PromptTokens = prompt,
        MaxTokens = maxTokens,
        Sampling = SamplingOptions.Greedy,
        StopOnEndOfGeneration = false,
    };

    /// <summary>The oracle's five best (id, logit) per logits row, from its top5.txt.</summary>
    private static (int Id, double Logit)[][] OracleTop5(string prefix) =>
        File.ReadAllLines(SharedData.OracleFile(prefix + ".top5.txt"))
            .Where(line => line.StartsWith("row ", StringComparison.Ordinal))
            .Select(line => line[(line.IndexOf(':') + 1)..].Split(' ', StringSplitOptions.RemoveEmptyEntries)
                .Select(pair => pair.Split(':'))
                .Select(p => (int.Parse(p[0], System.Globalization.CultureInfo.InvariantCulture), double.Parse(p[1], System.Globalization.CultureInfo.InvariantCulture)))
                .ToArray())
            .ToArray();

    [Theory]
    [InlineData("bitnet-small-i2_s.bitnetcpp.t1")]
    [InlineData("bitnet-small-i2_s.chat.bitnetcpp.t1")]
    public async Task Greedy_generation_follows_the_oracle_until_a_near_tie(string prefix)
    {
        // The oracle README: a correct engine may flip a greedy token only where bitnet.cpp's top-1
        // and top-2 logits nearly tie; after that the continuations legitimately differ.
        const double nearTie = 0.05;
        var (prompt, expected) = Oracle(prefix);
        var top5 = OracleTop5(prefix);
        var (updates, stats) = await EngineFixture.Collect(Engine, Greedy(prompt, expected.Length));
        int[] actual = EngineFixture.TokenIds(updates.Where(u => !u.IsFinal));
        int agree = actual.Zip(expected).TakeWhile(p => p.First == p.Second).Count();
        output.WriteLine($"{prefix}: {agree}/{expected.Length} greedy tokens agree with bitnet.cpp; ours [{string.Join(",", actual)}]");
        Assert.Equal(FinishReason.Length, stats.FinishReason);
        Assert.Equal(expected.Length, stats.CompletionTokens);
        Assert.Equal(prompt.Length, stats.PromptTokens);
        if (agree < expected.Length)
        {
            var row = top5[prompt.Length - 1 + agree];
            double gap = row[0].Logit - row[1].Logit;
            output.WriteLine($"diverges at token {agree}: oracle top-2 gap {gap:F4}, ours {actual[agree]}, oracle top-5 [{string.Join(", ", row.Select(r => $"{r.Id}:{r.Logit:F4}"))}]");
            Assert.True(gap < nearTie, $"diverged at token {agree} although bitnet.cpp's top-1/top-2 gap there is {gap:F4}");
            Assert.Contains(actual[agree], row.Select(r => r.Id));
        }
    }

    [Fact]
    public async Task Prompt_prefix_reuse_gives_the_same_tokens_as_a_fresh_cache()
    {
        var (prompt, _) = Oracle("bitnet-small-i2_s.chat.bitnetcpp.t1");
        var (first, _) = await EngineFixture.Collect(Engine, Greedy(prompt, 8));
        // A different prompt in between, then the same prompt again (shares BOS + "System: …").
        await EngineFixture.Collect(Engine, Greedy(prompt[..10], 3));
        var (again, _) = await EngineFixture.Collect(Engine, Greedy(prompt, 8));
        using var fresh = BitNetEngine.Load(new EngineOptions { ModelPath = SharedData.OracleModelPath, ContextLength = 128, Threads = 1, ReusePromptPrefix = false });
        var (noReuse, _) = await EngineFixture.Collect(fresh, Greedy(prompt, 8));
        Assert.Equal(EngineFixture.TokenIds(first), EngineFixture.TokenIds(again));
        Assert.Equal(EngineFixture.TokenIds(first), EngineFixture.TokenIds(noReuse));
    }

    [Theory]
    [InlineData("The capital of France is")]
    [InlineData("Once upon a time, in a land far away,")]
    public async Task Repeating_a_request_gives_the_same_text_as_a_fresh_cache(string text)
    {
        // The whole prompt is cached the second time; its last tokens are still evaluated as a batch.
        var request = Greedy(Engine.Tokenize(text), 16);
        var (first, _) = await EngineFixture.Collect(Engine, request);
        var (again, _) = await EngineFixture.Collect(Engine, request);
        using var fresh = BitNetEngine.Load(new EngineOptions { ModelPath = SharedData.OracleModelPath, ContextLength = 128, Threads = 1, ReusePromptPrefix = false });
        var (noReuse, _) = await EngineFixture.Collect(fresh, request);
        Assert.Equal(EngineFixture.TokenIds(noReuse), EngineFixture.TokenIds(first));
        Assert.Equal(EngineFixture.TokenIds(noReuse), EngineFixture.TokenIds(again));
    }

    [Fact]
    public async Task A_chat_turn_reuses_the_prompt_of_the_earlier_turn_and_answers_as_a_fresh_cache()
    {
        // Only K/V computed in prompt mode are shared (the earlier reply was decoded token by token, so it
        // is evaluated again with the new turn): the earlier prompt's whole blocks, and the rest of it copied.
        const string systemPrompt = "You are a helpful assistant. Answer briefly, politely and precisely, in plain English, and never make up facts you do not know.";
        var chat = new ChatConversation(Engine, systemPrompt);
        await foreach (var _ in chat.SendAsync("Hi", 3, SamplingOptions.Greedy, TestContext.Current.CancellationToken)) { }
        int firstPrompt = chat.Tokens.Count - 3;
        var reply = new List<int>();
        await foreach (var update in chat.SendAsync("More", 3, SamplingOptions.Greedy, TestContext.Current.CancellationToken))
            if (update.TokenId >= 0) reply.Add(update.TokenId);
        int secondPrompt = chat.Tokens.Count - reply.Count;
        int block = Engine.KvCache.BlockTokens;
        int shared = Math.Min(firstPrompt, secondPrompt - 2);
        Assert.True(firstPrompt > block && firstPrompt % block != 0, $"the first prompt ({firstPrompt} tokens) should fill a block of {block} and part of another");
        Assert.Equal(secondPrompt - shared, Engine.LastPromptTokensEvaluated);

        using var fresh = BitNetEngine.Load(new EngineOptions { ModelPath = SharedData.OracleModelPath, ContextLength = 128, Threads = 1, ReusePromptPrefix = false });
        var (alone, _) = await EngineFixture.Collect(fresh, Greedy(chat.Tokens.Take(secondPrompt).ToArray(), 3) with { StopOnEndOfGeneration = true });
        Assert.Equal(EngineFixture.TokenIds(alone), reply.ToArray());
    }

    [Fact]
    public async Task Text_of_the_updates_is_the_detokenized_stream()
    {
        var prompt = Engine.Tokenize("The capital of France is");
        var (updates, _) = await EngineFixture.Collect(Engine, Greedy(prompt, 12));
        string text = string.Concat(updates.Select(u => u.Text));
        Assert.Equal(Engine.Detokenize(EngineFixture.TokenIds(updates)), text);
    }

    [Fact]
    public async Task A_stop_string_ends_generation_and_is_never_emitted()
    {
        // Case 1's greedy continuation is ",midzung hurting_MATRIX …": stop on "hurt".
        var prompt = Engine.Tokenize("The capital of France is");
        var (all, _) = await EngineFixture.Collect(Engine, Greedy(prompt, 8));
        string full = string.Concat(all.Select(u => u.Text));
        int cut = full.Length / 2;
        string stop = full.Substring(cut, Math.Min(4, full.Length - cut));

        var (updates, stats) = await EngineFixture.Collect(Engine, Greedy(prompt, 8) with { Stop = [stop] });
        string text = string.Concat(updates.Select(u => u.Text));
        Assert.Equal(FinishReason.Stop, stats.FinishReason);
        Assert.Equal(stop, stats.StopString);
        Assert.Equal(full[..full.IndexOf(stop, StringComparison.Ordinal)], text);
        Assert.DoesNotContain(stop, text);
        Assert.Null(all.Last().Final!.StopString);
    }

    [Fact]
    public async Task Max_tokens_ends_with_length_after_exactly_that_many_tokens()
    {
        var (updates, stats) = await EngineFixture.Collect(Engine, Greedy(Engine.Tokenize("Hello"), 3));
        Assert.Equal(FinishReason.Length, stats.FinishReason);
        Assert.Equal(3, stats.CompletionTokens);
        Assert.Equal(3, updates.Count(u => !u.IsFinal));
        Assert.True(stats.PromptEvalTime > TimeSpan.Zero);
        Assert.True(stats.TimeToFirstToken > TimeSpan.Zero);
    }

    [Fact]
    public async Task An_end_of_generation_token_stops_with_stop_and_is_not_emitted()
    {
        // A strongly negative presence penalty lifts the tokens already seen: the prompt is only
        // <|eot_id|>, so greedy sampling must pick it next.
        var request = new GenerationRequest
        {
            PromptTokens = [128009],
            MaxTokens = 5,
            Sampling = SamplingOptions.Greedy with { PresencePenalty = -1000f },
        };
        var (updates, stats) = await EngineFixture.Collect(Engine, request);
        Assert.Single(updates);
        Assert.Equal(FinishReason.Stop, stats.FinishReason);
        Assert.Equal(1, stats.CompletionTokens);
        Assert.Equal(128009, updates[0].TokenId);
        Assert.Equal("", updates[0].Text);

        var (ignored, ignoredStats) = await EngineFixture.Collect(Engine, request with { StopOnEndOfGeneration = false });
        Assert.Equal(FinishReason.Length, ignoredStats.FinishReason);
        Assert.Equal(5, ignoredStats.CompletionTokens);
        Assert.All(ignored, u => Assert.Equal("", u.Text));
    }

    [Fact]
    public async Task Cancellation_mid_stream_ends_with_a_final_cancelled_update()
    {
        using var cts = new CancellationTokenSource();
        var updates = new List<GenerationUpdate>();
        // The scheduler thread may run ahead of this reader (updates wait in the channel), so "within one
        // token" counts from what the engine had generated when the cancellation came, not from what was read
        // (its counter is added after a step's updates are sent, so it can also trail the reader by a step).
        // The counter is read after cancelling: read before, a pause of this thread between the two (a busy
        // machine) would let the scheduler run on, uncancelled, and count against it.
        long before = Engine.CurrentLoad.GeneratedTokens, atCancel = 0;
        await foreach (var u in Engine.GenerateAsync(Greedy(Engine.Tokenize("Once upon a time"), 400), cts.Token).WithCancellation(CancellationToken.None))
        {
            updates.Add(u);
            if (updates.Count == 3)
            {
                cts.Cancel();
                atCancel = Math.Max(Engine.CurrentLoad.GeneratedTokens - before, updates.Count);
            }
        }
        var stats = updates[^1].Final!;
        Assert.Equal(FinishReason.Cancelled, stats.FinishReason);
        Assert.InRange(stats.CompletionTokens - atCancel, 0, 2);      // within one token (plus one already in flight)
        Assert.True(stats.CompletionTokens < 400);
    }

    [Fact]
    public async Task A_request_cancelled_while_waiting_for_another_ends_cancelled_without_tokens()
    {
        var longRun = EngineFixture.Collect(Engine, Greedy(Engine.Tokenize("Once upon a time"), 60));
        using var cts = new CancellationTokenSource(TimeSpan.FromMilliseconds(50));
        var updates = new List<GenerationUpdate>();
        await foreach (var u in Engine.GenerateAsync(Greedy(Engine.Tokenize("Hello"), 60), cts.Token).WithCancellation(CancellationToken.None))
            updates.Add(u);
        var (_, first) = await longRun;
        Assert.Equal(FinishReason.Length, first.FinishReason);
        Assert.Equal(FinishReason.Cancelled, updates[^1].Final!.FinishReason);
        Assert.Equal(0, updates[^1].Final!.CompletionTokens);   // it never got the model
    }

    [Fact]
    public async Task Logprobs_of_the_first_token_are_the_log_softmax_of_bitnet_cpps_logits()
    {
        var oracle = BitNet.Inference.Tests.Oracle.OracleCase.Capital;
        var request = Greedy(oracle.PromptIds, 3) with { TopLogprobs = 5 };
        var (updates, _) = await EngineFixture.Collect(Engine, request);

        // The first token is drawn from the prompt's last row, which bitnet.cpp recorded with every row
        // requested; generating, both engines compute that row alone, with its input rounded to F16
        // (Model/Precision), which moves these logprobs by ~2e-4, far less than any mistake in them would.
        ReadOnlySpan<float> row = oracle.Row(oracle.PromptIds.Length - 1);
        double max = double.NegativeInfinity, sum = 0;
        foreach (float logit in row) max = Math.Max(max, logit);
        foreach (float logit in row) sum += Math.Exp(logit - max);
        double logNormalizer = max + Math.Log(sum);
        float[] oracleRow = row.ToArray();
        int[] oracleTop5 = Enumerable.Range(0, oracleRow.Length).OrderByDescending(i => oracleRow[i]).Take(5).ToArray();

        // Every generated token's logprobs, in order, whichever update carries them.
        var all = updates.Where(u => u.Logprobs is not null).SelectMany(u => u.Logprobs!).ToList();
        var first = all[0];
        Assert.Equal(updates[0].TokenId, first.Chosen.Token);
        Assert.Equal(oracleRow[first.Chosen.Token] - logNormalizer, first.Chosen.Logprob, 2e-3);
        Assert.Equal(oracleTop5, first.Top.Select(t => t.Token));
        foreach (var alternative in first.Top)
            Assert.Equal(oracleRow[alternative.Token] - logNormalizer, alternative.Logprob, 2e-3);
        // Greedy: each chosen token is its step's most likely one; every generated token has logprobs.
        Assert.All(all, l => Assert.Equal(l.Top[0], l.Chosen));
        Assert.Equal(updates.Where(u => !u.IsFinal).Select(u => u.TokenId), all.Select(l => l.Chosen.Token));
    }

    [Fact]
    public async Task Without_a_request_for_them_updates_carry_no_logprobs()
    {
        var (updates, _) = await EngineFixture.Collect(Engine, Greedy(Engine.Tokenize("The capital of France is"), 3));
        Assert.All(updates, u => Assert.Null(u.Logprobs));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() =>
            EngineFixture.Collect(Engine, Greedy([128000], 1) with { TopLogprobs = 21 }));
    }

    [Fact]
    public async Task Invalid_requests_are_argument_errors()
    {
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => EngineFixture.Collect(Engine, Greedy([128000, 999_999], 1)));
        await Assert.ThrowsAsync<ArgumentOutOfRangeException>(() => EngineFixture.Collect(Engine, Greedy([128000], 0)));
        await Assert.ThrowsAsync<ArgumentException>(() => EngineFixture.Collect(Engine, Greedy([], 1)));
    }

    [Fact]
    public async Task A_deadline_in_the_past_ends_with_length_before_generating_much()
    {
        var request = Greedy(Engine.Tokenize("Once upon a time"), 400) with { Deadline = DateTimeOffset.UtcNow.AddMilliseconds(-1) };
        var (_, stats) = await EngineFixture.Collect(Engine, request);
        Assert.Equal(FinishReason.Length, stats.FinishReason);
        Assert.True(stats.CompletionTokens <= 1);
    }

    [Fact]
    public async Task A_deadline_ends_a_long_generation_early_with_length()
    {
        var request = Greedy(Engine.Tokenize("Once upon a time"), 10_000) with { Deadline = DateTimeOffset.UtcNow.AddMilliseconds(300) };
        var watch = System.Diagnostics.Stopwatch.StartNew();
        var (_, stats) = await EngineFixture.Collect(Engine, request);
        Assert.Equal(FinishReason.Length, stats.FinishReason);
        Assert.True(stats.CompletionTokens < 500);
        Assert.True(watch.ElapsedMilliseconds < 2000, $"took {watch.ElapsedMilliseconds} ms");
    }

    [Fact]
    public async Task A_prompt_that_does_not_fit_the_context_throws_before_any_work()
    {
        var prompt = Enumerable.Repeat(791, Engine.ContextLength).ToArray();
        var e = await Assert.ThrowsAsync<ContextLengthExceededException>(() => EngineFixture.Collect(Engine, Greedy(prompt, 1)));
        Assert.Equal(Engine.ContextLength, e.PromptTokens);
        Assert.Equal(Engine.ContextLength, e.ContextLength);
    }

    [Fact]
    public async Task Generation_that_reaches_the_end_of_the_context_stops_with_length()
    {
        var prompt = Enumerable.Repeat(791, Engine.ContextLength - 3).ToArray();
        var (_, stats) = await EngineFixture.Collect(Engine, Greedy(prompt, 100));
        Assert.Equal(FinishReason.Length, stats.FinishReason);
        Assert.InRange(stats.CompletionTokens, 3, 4);
    }

    [Fact]
    public async Task Two_concurrent_generations_both_complete_and_equal_their_solo_outputs()
    {
        var a = Greedy(Engine.Tokenize("The capital of France is"), 6);
        var b = Greedy(Engine.Tokenize("Bees communicate the direction"), 6);
        var soloA = EngineFixture.TokenIds((await EngineFixture.Collect(Engine, a)).Updates);
        var soloB = EngineFixture.TokenIds((await EngineFixture.Collect(Engine, b)).Updates);
        var both = await Task.WhenAll(Task.Run(() => EngineFixture.Collect(Engine, a), TestContext.Current.CancellationToken), Task.Run(() => EngineFixture.Collect(Engine, b), TestContext.Current.CancellationToken));
        Assert.Equal(soloA, EngineFixture.TokenIds(both[0].Updates));
        Assert.Equal(soloB, EngineFixture.TokenIds(both[1].Updates));
    }

    [Fact]
    public async Task Seeded_sampling_is_reproducible()
    {
        var request = new GenerationRequest
        {
            PromptTokens = Engine.Tokenize("Hello"),
            MaxTokens = 8,
            Sampling = new SamplingOptions { Temperature = 1.2f, Seed = 99 },
            StopOnEndOfGeneration = false,
        };
        var first = EngineFixture.TokenIds((await EngineFixture.Collect(Engine, request)).Updates);
        var second = EngineFixture.TokenIds((await EngineFixture.Collect(Engine, request)).Updates);
        Assert.Equal(first, second);
    }

    [Fact]
    public void Model_info_names_the_file_and_touch_weights_reads_every_streamed_weight()
    {
        Assert.Equal("bitnet-small-i2_s", Engine.Model.Id);
        Assert.Equal("bitnet-b1.58", Engine.Model.Architecture);
        Assert.Equal(128256, Engine.Model.VocabSize);
        Assert.Equal(128, Engine.Model.ContextLength);
        long touched = Engine.TouchWeights();
        // Every ternary matrix's codes (2 bits a weight) and the F16 head: what a decoded token reads.
        var config = Engine.Network.Config;
        long ternary = Enumerable.Range(0, config.LayerCount)
            .SelectMany(GgufTensorNames.LayerMatrices)
            .Sum(name => Engine.Network.File.GetTensor(name).ElementCount / 4);
        Assert.Equal(ternary + 2L * config.VocabSize * config.EmbeddingLength, touched);
        Assert.InRange(touched, 60_000_000, new FileInfo(SharedData.OracleModelPath).Length);
    }

    [Fact]
    public void Tokenize_and_chat_template_go_through_the_engine()
    {
        string text = Engine.ApplyChatTemplate([new ChatMessage(ChatRole.User, "Hi")]);
        Assert.Equal("User: Hi<|eot_id|>Assistant: ", text);
        var ids = Engine.Tokenize(text);
        Assert.Equal(128000, ids[0]);
        Assert.Contains(128009, ids);
        Assert.Equal(text, Engine.Detokenize(ids.Skip(1).ToArray(), renderSpecial: true));
    }
}
