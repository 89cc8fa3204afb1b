using System.Collections.Concurrent;
using System.Diagnostics;
using BitNet.Inference.Model;
using BitNet.Inference.Sampling;
using BitNet.Inference.Tokenization;

namespace BitNet.Inference.Generation;

/// <summary>Called with a sequence's full logits row each time one is computed (tests compare them across batch compositions).</summary>
internal delegate void LogitsObserver(GenerationRequest request, int generated, ReadOnlySpan<float> logits);

/// <summary>
/// Continuous batching: one thread owns every forward pass. Each step takes the next token of every
/// decoding sequence plus prompt chunks up to a per-step budget, evaluates all those rows in one pass
/// (the weights are read once per step for all of them), samples each sequence with its own sampler,
/// streams its update, and retires the sequences that finished, stopped, were cancelled or ran past their
/// deadline, returning their KV blocks at once. New sequences join at the next step when a slot and
/// enough blocks for their whole length are free (FIFO: the first waiting one goes first).
///
/// Every row is computed as it would be with its sequence alone (see <see cref="BitNetModel.EvaluateRows"/>);
/// a sequence that contributes one row rounds its attention probabilities as single-token decode does,
/// a prompt chunk of several rows does not, and every logits row is a single row. Prompt chunks are never
/// a lone token (unless the whole prompt is one), so logits never depend on the batch.
/// </summary>
internal sealed class StepScheduler : IDisposable
{
    private readonly BitNetModel _model;
    private readonly Tokenizer _tokenizer;
    private readonly KvCachePool _pool;
    private readonly InferenceState _workspace;
    private readonly int _parallel, _promptBudget, _contextLength;
    private readonly bool _sharePrefixes;
    private readonly ConcurrentQueue<SequenceRun> _incoming = new();
    private readonly Queue<SequenceRun> _waiting = new();
    private readonly List<SequenceRun> _running;
    private readonly List<SequenceRun> _withLogits, _screened;
    private readonly ScreenedCandidates _candidates;
    private readonly Stack<Sampler> _samplers = new();
    private readonly int[] _headRows;
    private readonly float[] _logits;               // [parallel × vocab] full logits rows of a step
    private readonly SemaphoreSlim _wake = new(0);
    private readonly Thread _thread;
    private volatile bool _stopping;
    private int _waitingCount;
    private long _lastStepTicks;
    private readonly ThroughputWindow _throughput = new();

    public StepScheduler(BitNetModel model, Tokenizer tokenizer, KvCachePool pool, int contextLength, int parallel, int promptBudget, bool sharePrefixes)
    {
        _model = model;
        _tokenizer = tokenizer;
        _pool = pool;
        _contextLength = contextLength;
        _parallel = parallel;
        _promptBudget = promptBudget;
        _sharePrefixes = sharePrefixes;
        _workspace = model.CreateBatchState(pool, contextLength, parallel + promptBudget);
        _running = new List<SequenceRun>(parallel);
        _withLogits = new List<SequenceRun>(parallel);
        _screened = new List<SequenceRun>(parallel);
        _candidates = new ScreenedCandidates(model);
        _headRows = new int[parallel];
        _logits = new float[(long)parallel * model.Config.VocabSize];
        _thread = new Thread(Loop) { IsBackground = true, Name = "bitnet-scheduler" };
        _thread.Start();
    }

    public int Parallel => _parallel;
    public int PromptBudget => _promptBudget;
    public KvCachePool Pool => _pool;
    internal LogitsObserver? LogitsObserved { get; set; }

    // Counters read by other threads.
    private int _runningCount;
    private long _promptEvaluated, _promptReused, _generatedTotal, _steps;
    public int Running => Volatile.Read(ref _runningCount);
    public int Waiting => Volatile.Read(ref _waitingCount);
    public long PromptTokensEvaluated => Interlocked.Read(ref _promptEvaluated);
    public long PromptTokensReused => Interlocked.Read(ref _promptReused);
    public long GeneratedTokens => Interlocked.Read(ref _generatedTotal);
    public long Steps => Interlocked.Read(ref _steps);
    public double TokensPerSecond => _throughput.Rate(Stopwatch.GetTimestamp());
    /// <summary>Prompt tokens the last sequence to start evaluated (the rest came from shared blocks).</summary>
    public int LastPromptTokensEvaluated { get; private set; }

    public void Enqueue(SequenceRun sequence)
    {
        ObjectDisposedException.ThrowIf(_stopping, this);
        Interlocked.Increment(ref _waitingCount);
        _incoming.Enqueue(sequence);
        _wake.Release();
    }

    private void Loop()
    {
        while (!_stopping)
        {
            try
            {
                Admit();
                if (_running.Count == 0)
                {
                    if (_waiting.Count == 0 && _incoming.IsEmpty) _wake.Wait();
                    else if (_waiting.Count > 0) _wake.Wait(10);   // the head waits for blocks only while others run; not reached idle
                    continue;
                }
                Step();
            }
            catch (Exception e)
            {
                // A fault outside a forward pass (the pass's own faults end only its rows' sequences): the
                // running sequences end with it, so no caller waits forever; the scheduler goes on.
                for (int i = _running.Count - 1; i >= 0; i--) RetireWithError(i, e);
            }
        }
        Shutdown();
    }

    /// <summary>Move new sequences in; end cancelled waiting ones; start waiting ones while a slot and their blocks are free.</summary>
    private void Admit()
    {
        while (_incoming.TryDequeue(out SequenceRun? incoming)) _waiting.Enqueue(incoming);
        for (int i = _waiting.Count; i > 0; i--)
        {
            SequenceRun sequence = _waiting.Dequeue();
            if (sequence.Cancel.IsCancellationRequested)
            {
                Interlocked.Decrement(ref _waitingCount);
                Finish(sequence, Final(sequence, "", -1, FinishReason.Cancelled));
            }
            else _waiting.Enqueue(sequence);
        }
        while (_running.Count < _parallel && _waiting.Count > 0 && !AwaitsPromptBlocks(_waiting.Peek()) && TryStart(_waiting.Peek()))
        {
            _running.Add(_waiting.Dequeue());
            Interlocked.Decrement(ref _waitingCount);
            Volatile.Write(ref _runningCount, _running.Count);
        }
    }

    /// <summary>
    /// True while a running sequence is evaluating prompt positions this one could take from it (the same
    /// tokens from the start: n choices of one prompt, identical requests or a common system prompt arriving
    /// together) and the cache does not hold them yet. Waiting costs a few steps, which the two prompts would
    /// have split between them anyway; evaluating them twice costs a whole prompt. The queue's head waits,
    /// so FIFO order holds.
    /// </summary>
    private bool AwaitsPromptBlocks(SequenceRun s)
    {
        if (!_sharePrefixes) return false;
        ReadOnlySpan<int> prompt = s.History.AsSpan(0, s.PromptLength);
        int reach = CacheReach(s.PromptLength), cached = -1;
        foreach (SequenceRun r in _running)
        {
            if (!r.InPrompt || r.PromptLength < 2) continue;   // a one-token prompt registers nothing
            // Positions of their common prefix that r has still to evaluate (r registers each step's as it goes).
            int wanted = Math.Min(prompt.CommonPrefixLength(r.History.AsSpan(0, r.PromptLength)), reach);
            if (wanted <= r.Kv.Length) continue;
            if (cached < 0) cached = WalkCache(prompt, reach, null).Length;
            if (wanted > cached) return true;
        }
        return false;
    }

    /// <summary>
    /// Prompt positions a sequence may take from the cache: all but the last two, which are evaluated again
    /// so that the first logits row comes from a multi-token prompt chunk, as with a fresh cache.
    /// </summary>
    private static int CacheReach(int promptLength) => Math.Max(0, promptLength - 2);

    /// <summary>What the cache holds of a prompt's first <paramref name="reach"/> positions, and where.</summary>
    /// <param name="Length">Positions held: whole shared blocks, then the run to copy.</param>
    /// <param name="Hash">The prefix hash of the whole blocks.</param>
    /// <param name="RunBlock">The registered block whose first positions continue them (−1: none), and how many do.</param>
    private readonly record struct CachedPrompt(int Length, ulong Hash, int RunBlock, int Run);

    /// <summary>
    /// Walk the cache along a prompt: whole registered blocks found by their prefix hash (appended to
    /// <paramref name="into"/> with a reference each, when given), then the registered block after them
    /// that begins with the longest run of the prompt's next positions (pinned when <paramref name="into"/> is given).
    /// </summary>
    private CachedPrompt WalkCache(ReadOnlySpan<int> prompt, int reach, KvSequence? into)
    {
        int blockTokens = _pool.BlockTokens, parent = -1, length = 0;
        ulong hash = 0;
        while (length + blockTokens <= reach)
        {
            ReadOnlySpan<int> tokens = prompt.Slice(length, blockTokens);
            ulong h = KvCachePool.PrefixHash(hash, tokens);
            int block = into is null ? _pool.Find(h, parent, tokens) : _pool.TryShare(h, parent, tokens);
            if (block < 0) break;
            into?.AppendShared(block);
            (hash, parent, length) = (h, block, length + blockTokens);
        }
        int room = Math.Min(reach - length, blockTokens), run = 0;
        int runBlock = room > 0 ? _pool.LongestRun(hash, parent, prompt.Slice(length, room), pin: into is not null, out run) : -1;
        return new CachedPrompt(length + run, hash, runBlock, run);
    }

    /// <summary>
    /// Take the sequence's cached prefix (shared whole blocks, then a copied run), and promise it blocks for
    /// its whole length (prompt plus every token it may generate), so a running sequence never finds the
    /// pool empty. False (nothing held) when the pool cannot promise that now.
    /// </summary>
    private bool TryStart(SequenceRun s)
    {
        int n = s.PromptLength, blockTokens = _pool.BlockTokens;
        int pinned = -1, run = 0;
        if (_sharePrefixes)
        {
            CachedPrompt cached = WalkCache(s.History.AsSpan(0, n), CacheReach(n), s.Kv);
            s.ChainHash = cached.Hash;
            s.RegisteredBlocks = s.Kv.BlockCount;
            (pinned, run) = (cached.RunBlock, cached.Run);
        }
        int length = (int)Math.Min((long)n + s.Request.MaxTokens - 1, _contextLength);
        s.PromisedBlocks = Math.Max(s.Kv.BlockCount, (length + blockTokens - 1) / blockTokens);
        int promised = 0;
        foreach (SequenceRun other in _running) promised += other.BlocksStillToTake;
        if (pinned >= 0 && s.BlocksStillToTake > _pool.FreeBlocks - promised)
        {
            // The pinned block may be the one the promise needs: go without the copy.
            _pool.Release(pinned);
            (pinned, run) = (-1, 0);
        }
        if (s.BlocksStillToTake > _pool.FreeBlocks - promised)
        {
            s.Kv.Clear();
            s.RegisteredBlocks = 0;
            s.ChainHash = 0;
            return false;
        }
        if (pinned >= 0)
        {
            Reserve(s, run);
            _pool.CopyPositions(pinned, s.Kv.Block(s.Kv.BlockCount - 1), run);
            s.Kv.Advance(run);
            _pool.Release(pinned);
        }
        s.ReusedPromptTokens = s.Kv.Length;
        LastPromptTokensEvaluated = n - s.Kv.Length;
        Interlocked.Add(ref _promptReused, s.Kv.Length);
        s.Sampler = _samplers.Count > 0 ? _samplers.Pop() : new Sampler(SamplingOptions.Greedy, _tokenizer.VocabSize);
        s.Sampler.Reset(s.Request.Sampling);
        s.PromptStart = Stopwatch.GetTimestamp();
        s.Request.Progress?.Reach(GenerationPhase.EvaluatingPrompt);
        return true;
    }

    private void Step()
    {
        long stepStart = Stopwatch.GetTimestamp();
        // Sequences cancelled or past their deadline leave before the step.
        for (int i = _running.Count - 1; i >= 0; i--)
        {
            SequenceRun s = _running[i];
            FinishReason? end = null;
            if (s.Cancel.IsCancellationRequested) end = FinishReason.Cancelled;
            else if (s.Request.Deadline is { } d)
            {
                // A prompt stops at the deadline; a decoding sequence when its next token would finish after it.
                TimeSpan ahead = s.InPrompt ? TimeSpan.Zero : Stopwatch.GetElapsedTime(0, _lastStepTicks);
                if (DateTimeOffset.UtcNow + ahead >= d) end = FinishReason.Length;
            }
            if (end is FinishReason reason)
                Retire(i, Final(s, s.InPrompt ? "" : s.Text.Flush(), -1, reason));
        }
        if (_running.Count == 0) return;

        InferenceState w = _workspace;
        int rows = 0;
        bool roundSingle = _model.RoundsAttentionProbabilities(1);
        _withLogits.Clear();
        foreach (SequenceRun s in _running)
        {
            s.StepRows = 0;
            s.HeadInput = -1;
            if (s.InPrompt) continue;
            Reserve(s, 1);
            s.StepFirstRow = rows;
            s.StepRows = 1;
            w.RowTokens[rows] = s.History[s.PromptLength + s.Generated - 1];
            w.RowPositions[rows] = s.Kv.Length;
            w.RowSequences[rows] = s.Kv;
            w.RowRoundsProbabilities[rows] = roundSingle;
            rows++;
            _withLogits.Add(s);
        }
        int decodeRows = rows;
        int budget = _promptBudget;
        foreach (SequenceRun s in _running)
        {
            if (!s.InPrompt) continue;
            int at = s.Kv.Length, count = InferenceState.PromptChunkLength(s.PromptLength - at, budget);
            if (count == 0) continue;
            Reserve(s, count);
            budget -= count;
            s.StepFirstRow = rows;
            s.StepRows = count;
            bool round = _model.RoundsAttentionProbabilities(count);
            for (int t = 0; t < count; t++, rows++)
            {
                w.RowTokens[rows] = s.History[at + t];
                w.RowPositions[rows] = at + t;
                w.RowSequences[rows] = s.Kv;
                w.RowRoundsProbabilities[rows] = round;
            }
            if (at + count == s.PromptLength) _withLogits.Add(s);
        }
        if (rows == 0) return;

        try
        {
            _model.EvaluateRows(w, rows);
            foreach (SequenceRun s in _running)
            {
                if (s.StepRows == 0) continue;
                s.Kv.Length += s.StepRows;
                if (s.InPrompt)
                {
                    Interlocked.Add(ref _promptEvaluated, s.StepRows);
                    RegisterPromptBlocks(s);
                }
            }

            // Head inputs: full-logits rows first (one head pass for all of them), screened rows after.
            int full = 0;
            foreach (SequenceRun s in _withLogits)
            {
                s.ScreenedHead = s.AllowScreening && _model.IsScreened && s.Sampler!.CanSampleFromCandidates;
                if (!s.ScreenedHead) { s.HeadInput = full; _headRows[full++] = s.StepFirstRow + s.StepRows - 1; }
            }
            int next = full;
            _screened.Clear();
            foreach (SequenceRun s in _withLogits)
                if (s.ScreenedHead) { s.HeadInput = next; _headRows[next++] = s.StepFirstRow + s.StepRows - 1; _screened.Add(s); }
            _model.PrepareHeadInputs(w, _headRows.AsSpan(0, next));
            int vocab = _model.Config.VocabSize;
            if (full > 0) _model.HeadLogits(w, 0, full, _logits);
            if (next > full)
            {
                _model.HeadBounds(w, full, next - full);
                _candidates.Choose(w, _screened, _screened.Count, full);
            }

            long now = Stopwatch.GetTimestamp();
            foreach (SequenceRun s in _withLogits)
            {
                ReadOnlySpan<float> logits = s.ScreenedHead ? default : _logits.AsSpan(s.HeadInput * vocab, vocab);
                ReadOnlySpan<int> history = s.TokenHistory;
                int token;
                if (s.ScreenedHead && s.CandidateCount >= 0)
                {
                    int slot = s.HeadInput - full;
                    token = s.Sampler!.Sample(w.CandidateIdsOf(slot)[..s.CandidateCount], w.CandidateLogitsOf(slot)[..s.CandidateCount], history);
                }
                else
                {
                    if (s.ScreenedHead)
                    {
                        // No bounds for this input (not finite): the full head.
                        _model.HeadLogits(w, s.HeadInput, 1, w.Logits);
                        logits = w.Logits;
                    }
                    LogitsObserved?.Invoke(s.Request, s.Generated, logits);
                    token = s.Sampler!.Sample(logits, history);
                }
                if (s.InPrompt) s.PromptEnd = now;
                s.History[s.PromptLength + s.Generated] = token;
                s.Generated++;
                if (s.Generated == 1) s.FirstToken = now;
                s.HeadInput = -1;
                OnToken(s, token, logits);
            }
            Interlocked.Add(ref _generatedTotal, _withLogits.Count);
        }
        catch (Exception e)
        {
            // The step's sequences may hold half-written positions: each of them ends with the error.
            for (int i = _running.Count - 1; i >= 0; i--)
            {
                SequenceRun s = _running[i];
                if (s.StepRows == 0) continue;
                RetireWithError(i, e);
            }
        }

        // Sequences that finished this step leave now (their blocks go back before the next step).
        for (int i = _running.Count - 1; i >= 0; i--)
            if (_running[i].Ended)
                Release(i);

        long stepEnd = Stopwatch.GetTimestamp();
        if (decodeRows > 0) _lastStepTicks = stepEnd - stepStart;
        _throughput.Add(stepEnd, _withLogits.Count);
        Interlocked.Increment(ref _steps);
    }

    private static void Reserve(SequenceRun s, int rows)
    {
        if (!s.Kv.TryReserve(s.Kv.Length + rows))
            throw new InvalidOperationException("the KV pool broke its promise to a running sequence");   // admission prevents it
    }

    /// <summary>
    /// Offer the sequence's prompt positions evaluated so far (in multi-token chunks) for sharing: its full
    /// blocks, and the first positions of the block it is filling, which grow with each chunk.
    /// </summary>
    private void RegisterPromptBlocks(SequenceRun s)
    {
        if (!_sharePrefixes) return;
        int blockTokens = _pool.BlockTokens, evaluated = Math.Min(s.Kv.Length, s.PromptLength);
        if (s.PromptLength < 2) return;   // a one-token prompt is evaluated as decode
        while (s.RegisteredBlocks * blockTokens < evaluated)
        {
            int b = s.RegisteredBlocks, count = Math.Min(blockTokens, evaluated - b * blockTokens);
            ReadOnlySpan<int> tokens = s.History.AsSpan(b * blockTokens, count);
            ulong hash = _pool.Register(s.Kv.Block(b), s.ChainHash, b == 0 ? -1 : s.Kv.Block(b - 1), tokens);
            if (count < blockTokens) break;
            s.ChainHash = hash;
            s.RegisteredBlocks++;
        }
    }

    /// <summary>After a token was sampled: stream it, or end the sequence (marked for release after the step).</summary>
    private void OnToken(SequenceRun s, int token, ReadOnlySpan<float> logits)
    {
        GenerationRequest request = s.Request;
        if (request.StopOnEndOfGeneration && _tokenizer.IsEndOfGeneration(token))
        {
            End(s, Final(s, s.Text.Flush(), token, FinishReason.Stop));
            return;
        }
        // Only when asked: a pass over the vocabulary and an allocation per token.
        TokenLogprobs? logprobs = request.TopLogprobs is int top ? LogProbabilities.Of(logits, token, top) : null;
        string text = s.Text.Push(token, logprobs, out bool stopped);
        if (stopped)
        {
            End(s, Final(s, text, token, FinishReason.Stop));
            return;
        }
        s.Output.TryWrite(new GenerationUpdate(text, token, Logprobs: s.Text.TakeLogprobs()));
        if (s.Generated >= request.MaxTokens || s.Kv.Length >= _contextLength)
            End(s, Final(s, s.Text.Flush(), -1, FinishReason.Length));
    }

    /// <summary>Send the final update; the sequence is released after the step.</summary>
    private static void End(SequenceRun s, GenerationUpdate final)
    {
        s.Output.TryWrite(final);
        s.Output.TryComplete();
        s.Ended = true;
    }

    private void Retire(int index, GenerationUpdate final)
    {
        SequenceRun s = _running[index];
        s.Output.TryWrite(final);
        s.Output.TryComplete();
        Release(index);
    }

    private void RetireWithError(int index, Exception e)
    {
        _running[index].Output.TryComplete(e);
        Release(index);
    }

    /// <summary>Return the sequence's blocks and sampler, and let its caller go.</summary>
    private void Release(int index)
    {
        SequenceRun s = _running[index];
        _running.RemoveAt(index);
        Volatile.Write(ref _runningCount, _running.Count);
        s.Kv.Clear();
        if (s.Sampler is { } sampler) _samplers.Push(sampler);
        s.Sampler = null;
        s.Retired.TrySetResult();
    }

    private static void Finish(SequenceRun s, GenerationUpdate final)
    {
        s.Output.TryWrite(final);
        s.Output.TryComplete();
        s.Kv.Clear();
        s.Retired.TrySetResult();
    }

    /// <summary>The last update: its text, the log-probabilities still held for tokens whose text it releases, and the stats.</summary>
    private static GenerationUpdate Final(SequenceRun s, string text, int token, FinishReason reason)
    {
        long now = Stopwatch.GetTimestamp();
        int completion = s.Generated;
        long promptStart = s.PromptStart == 0 ? now : s.PromptStart;
        long promptEnd = s.PromptEnd == 0 ? promptStart : s.PromptEnd;
        var stats = new GenerationStats(
            s.PromptLength,
            completion,
            reason,
            PromptEvalTime: Stopwatch.GetElapsedTime(promptStart, promptEnd),
            GenerationTime: completion > 0 ? Stopwatch.GetElapsedTime(promptEnd, now) : TimeSpan.Zero,
            TimeToFirstToken: completion > 0 ? Stopwatch.GetElapsedTime(s.Started, s.FirstToken) : TimeSpan.Zero,
            StopString: s.Text.StopString);
        return new GenerationUpdate(text, token, stats, s.Text.TakeLogprobs());
    }

    private void Shutdown()
    {
        var disposed = new ObjectDisposedException(nameof(BitNetEngine));
        for (int i = _running.Count - 1; i >= 0; i--) RetireWithError(i, disposed);
        while (_incoming.TryDequeue(out SequenceRun? s)) _waiting.Enqueue(s);
        while (_waiting.TryDequeue(out SequenceRun? s))
        {
            s.Output.TryComplete(disposed);
            s.Kv.Clear();
            s.Retired.TrySetResult();
        }
        Volatile.Write(ref _waitingCount, 0);
    }

    /// <summary>Stop after the current step; running and waiting sequences end with an <see cref="ObjectDisposedException"/>.</summary>
    public void Dispose()
    {
        if (_stopping) return;
        _stopping = true;
        _wake.Release();
        _thread.Join();
        _wake.Dispose();
    }

    /// <summary>Tokens sampled per second over the last few seconds of steps.</summary>
    private sealed class ThroughputWindow
    {
        private const int Slots = 256;
        private readonly long[] _times = new long[Slots];
        private readonly int[] _tokens = new int[Slots];
        private int _next, _count;
        private readonly object _gate = new();
        private static readonly long Window = Stopwatch.Frequency * 5;

        public void Add(long time, int tokens)
        {
            lock (_gate)
            {
                _times[_next] = time;
                _tokens[_next] = tokens;
                _next = (_next + 1) % Slots;
                _count = Math.Min(_count + 1, Slots);
            }
        }

        public double Rate(long now)
        {
            lock (_gate)
            {
                // Tokens of the steps that ended after the oldest step in the window, over the time since it ended.
                long oldest = now;
                int tokens = 0, previous = 0;
                for (int i = 1; i <= _count; i++)
                {
                    int slot = (_next - i + Slots) % Slots;
                    if (now - _times[slot] > Window) break;
                    tokens += previous;
                    previous = _tokens[slot];
                    oldest = _times[slot];
                }
                double seconds = (double)(now - oldest) / Stopwatch.Frequency;
                return seconds > 0 ? tokens / seconds : 0;
            }
        }
    }
}
