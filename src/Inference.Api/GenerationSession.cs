using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.ExceptionServices;
using System.Threading.Tasks.Sources;
using BitNet.Inference.Generation;

namespace BitNet.Inference.Api;

/// <summary>
/// One request's generations from queue to last token: usually one, or OpenAI's n choices of one prompt
/// (choice i sampled with seed + i when a seed is given), which decode side by side and share the
/// prompt's KV blocks. Starting it waits for the model (FIFO; the request takes one place in the queue
/// whatever its n), starts the engine and waits for every choice's first update, so everything that can
/// be refused with a status (queue full, context too long, deadline passed while queued) is known before
/// a host commits to a 200 (a stream is answered before its first token: <see cref="WaitingStream"/>).
/// Reading it yields every update of every choice, in the order they arrive; each choice's last one carries its stats.
/// Two things end a generation early: the client going away (the engine sees the token within one
/// token and the stream ends "cancelled") and the deadline (ends "length", as OpenAI reports a cut).
/// Disposing releases the model to the next request.
/// </summary>
internal sealed class GenerationSession : IAsyncDisposable
{
    private readonly CancellationTokenSource _deadline;
    private readonly CancellationTokenSource _linked;
    private readonly CancellationToken _client;
    private readonly int _promptTokens;
    private readonly Choice[] _choices;
    private readonly Arrivals _arrivals = new();
    private readonly GenerationProgress _progress = new();
    private readonly TaskCompletionSource _generating = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private RequestQueue.Lease? _lease;
    private bool _started;

    private GenerationSession(CancellationTokenSource deadline, CancellationTokenSource linked, int promptTokens, int choices, CancellationToken client)
    {
        _deadline = deadline;
        _linked = linked;
        _client = client;
        _promptTokens = promptTokens;
        _choices = new Choice[choices];
        for (int i = 0; i < choices; i++) _choices[i] = new Choice(this, i);
    }

    /// <summary>The most choices (n) one request may ask for.</summary>
    public const int MaxChoices = 16;

    public int Choices => _choices.Length;

    /// <summary>Completes once the start waits for nothing but the first tokens: the request has its place and every
    /// choice is in the generator, none refused at once. A start that ends before completes only its own task.</summary>
    public Task Generating => _generating.Task;

    /// <summary>What the start waits for now: <see cref="GenerationPhase.Waiting"/> for a place in the queue, then what
    /// the generator reports (<see cref="GenerationPhase.Unknown"/> from one that does not).</summary>
    public GenerationPhase WaitingFor => Volatile.Read(ref _lease) is null ? GenerationPhase.Waiting : _progress.Phase;

    public static Task<GenerationSession> StartAsync(
        ITextGenerator generator, RequestQueue queue, GenerationRequest request, DateTimeOffset deadline,
        string promptParam, int choices, CancellationToken clientToken) =>
        Start(generator, queue, request, deadline, promptParam, choices, clientToken).Started;

    /// <summary>
    /// Enters the queue and starts the session, as <see cref="StartAsync"/> does, and tells at once whether the request
    /// has to wait for a place (<c>Waiting</c>; false when it got one or was refused with 429). <c>Session</c> is the
    /// session on its way, for what its start waits for (<see cref="Generating"/>, <see cref="WaitingFor"/>); it is read
    /// once <c>Started</c> gives it. <paramref name="leaveQueue"/> gives up a place still waited for (the start then
    /// fails with <see cref="OperationCanceledException"/>); once the request runs it has no effect.
    /// </summary>
    public static (bool Waiting, Task<GenerationSession> Started, GenerationSession Session) Start(
        ITextGenerator generator, RequestQueue queue, GenerationRequest request, DateTimeOffset deadline,
        string promptParam, int choices, CancellationToken clientToken, CancellationToken leaveQueue = default)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(choices, 1);
        TimeSpan remaining = deadline - DateTimeOffset.UtcNow;
        var deadlineCts = new CancellationTokenSource(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero);
        var linked = CancellationTokenSource.CreateLinkedTokenSource(clientToken, deadlineCts.Token);
        var session = new GenerationSession(deadlineCts, linked, request.PromptTokens.Count, choices, clientToken);
        // Leaving the queue must not cancel a generation that has begun: the wait gets a token of its own.
        CancellationTokenSource? wait = leaveQueue.CanBeCanceled ? CancellationTokenSource.CreateLinkedTokenSource(linked.Token, leaveQueue) : null;
        ValueTask<RequestQueue.Lease> entering = queue.EnterAsync(wait?.Token ?? linked.Token);
        GenerationRequest generation = request with { Deadline = deadline, Progress = session._progress };
        return (!entering.IsCompleted, session.StartAsync(entering, wait, generator, generation, promptParam), session);
    }

    private async Task<GenerationSession> StartAsync(ValueTask<RequestQueue.Lease> entering, CancellationTokenSource? wait,
        ITextGenerator generator, GenerationRequest request, string promptParam)
    {
        try
        {
            try
            {
                Volatile.Write(ref _lease, await entering.ConfigureAwait(false));
            }
            finally
            {
                wait?.Dispose();
            }
        }
        catch (OperationCanceledException) when (_deadline.IsCancellationRequested && !_client.IsCancellationRequested)
        {
            await DisposeAsync().ConfigureAwait(false);
            throw ApiException.Unavailable("the request timed out waiting for the model; retry later", "queue_timeout", TimeSpan.FromSeconds(1));
        }
        catch
        {
            await DisposeAsync().ConfigureAwait(false);
            throw;
        }

        try
        {
            // Every choice is enqueued in the engine before any is awaited, so they decode together.
            for (int i = 0; i < _choices.Length; i++)
            {
                GenerationRequest choice = i == 0 || request.Sampling.Seed is not ulong seed
                    ? request
                    : request with { Sampling = request.Sampling with { Seed = unchecked(seed + (ulong)i) } };
                _choices[i].Updates = generator.GenerateAsync(choice, _linked.Token).GetAsyncEnumerator(_linked.Token);
                _choices[i].Read();
            }
            // Every first read is awaited before the session can be disposed; after a failure the others are cancelled.
            // The first updates stay with the choices, for the reader.
            ExceptionDispatchInfo? failure = null;
            int all = (1 << _choices.Length) - 1, arrived = 0;
            while (arrived != all)
            {
                ValueTask arrival = _arrivals.WaitAsync(arrived);
                if (failure is null && !arrival.IsCompleted)
                    _generating.TrySetResult();
                await arrival.ConfigureAwait(false);
                int come = _arrivals.Ready & ~arrived;
                arrived |= come;
                for (; come != 0 && failure is null; come &= come - 1)
                {
                    if (_choices[BitOperations.TrailingZeroCount(come)].Failure is { } first)
                    {
                        failure = first;
                        await _linked.CancelAsync().ConfigureAwait(false);
                    }
                }
            }
            failure?.Throw();
            _started = true;
            return this;
        }
        catch (ContextLengthExceededException ex)
        {
            await DisposeAsync().ConfigureAwait(false);
            throw ApiException.BadRequest(
                $"This model's context holds {ex.ContextLength} tokens, but {ex.PromptTokens} prompt tokens and {ex.RequestedTokens} completion tokens were requested. Shorten the prompt or lower max_tokens.",
                promptParam, "context_length_exceeded");
        }
        catch
        {
            await DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Every update of a one-choice session, the first one included; the last has <see cref="GenerationUpdate.Final"/> set.</summary>
    public async IAsyncEnumerable<GenerationUpdate> ReadAllAsync()
    {
        if (_choices.Length != 1) throw new InvalidOperationException("a session of several choices is read with ReadChoicesAsync");
        await foreach ((_, GenerationUpdate update) in ReadChoicesAsync().ConfigureAwait(false))
            yield return update;
    }

    /// <summary>Every update of every choice as it arrives, with the choice's index; each choice's last update has
    /// <see cref="GenerationUpdate.Final"/> set, and the sequence ends after the last choice's.</summary>
    public async IAsyncEnumerable<(int Choice, GenerationUpdate Update)> ReadChoicesAsync()
    {
        if (!_started) throw new InvalidOperationException("the session was not started");
        // Each choice not yet finished has one read under way or one update waiting (its first, after the start);
        // when several wait, the lowest choice goes first. Nothing here allocates per token.
        int open = _choices.Length;
        while (open > 0)
        {
            int ready;
            while ((ready = _arrivals.Ready) == 0)
                await _arrivals.WaitAsync(known: 0).ConfigureAwait(false);
            int i = BitOperations.TrailingZeroCount(ready);
            GenerationUpdate update = _choices[i].Take();
            if (update.IsFinal) open--;
            else _choices[i].Read();
            yield return (i, update);
        }
    }

    /// <summary>A cut caused by our deadline (not by the client) is reported as "length".</summary>
    private FinishReason Reason(FinishReason reported) =>
        reported == FinishReason.Cancelled && _deadline.IsCancellationRequested && !_client.IsCancellationRequested
            ? FinishReason.Length
            : reported;

    public async ValueTask DisposeAsync()
    {
        try
        {
            // Abandoned before its end (the host stopped reading): stop the engine, do not just walk away
            // from its stream, or it would keep computing tokens nobody reads while the next request waits.
            if (_choices.Any(c => !c.Finished))
                await _linked.CancelAsync().ConfigureAwait(false);
            // A reader may leave reads under way, and an enumerator is disposed only between reads: wait for their ends
            // (the engine ends a cancelled generation within one step), which nobody takes.
            while (true)
            {
                int known = _arrivals.Ready;
                if (!_choices.Any(c => c.Reading))
                    break;
                await _arrivals.WaitAsync(known).ConfigureAwait(false);
            }
            foreach (Choice choice in _choices)
            {
                if (choice.Updates is not null)
                    await choice.Updates.DisposeAsync().ConfigureAwait(false);
            }
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            _lease?.Dispose();
            _linked.Dispose();
            _deadline.Dispose();
        }
    }

    /// <summary>
    /// One generation of the session: its engine stream and its read under way or ended. A read ends in the engine's
    /// continuation, a delegate made once (no task per token), which leaves the update (or the failure) here and posts
    /// the choice to the session's <see cref="Arrivals"/>; the reader takes it from there.
    /// </summary>
    private sealed class Choice
    {
        private readonly GenerationSession _session;
        private readonly int _index;
        private readonly Action _moved;
        private ConfiguredValueTaskAwaitable<bool>.ConfiguredValueTaskAwaiter _moving;
        private GenerationUpdate? _update;
        private volatile bool _reading;
        private int _completionTokens;

        public Choice(GenerationSession session, int index)
        {
            _session = session;
            _index = index;
            _moved = Moved;
        }

        public IAsyncEnumerator<GenerationUpdate>? Updates { get; set; }
        public bool Finished { get; private set; }
        /// <summary>A read is under way: the enumerator may not be disposed yet.</summary>
        public bool Reading => _reading;
        /// <summary>What the last read threw, if it did.</summary>
        public ExceptionDispatchInfo? Failure { get; private set; }

        /// <summary>Starts reading the next update.</summary>
        public void Read()
        {
            _reading = true;
            bool pending;
            try
            {
                pending = Pending(Updates!.MoveNextAsync());
            }
            catch (Exception e)
            {
                Failed(e);
                return;
            }
            if (!pending)
                Moved();
        }

        /// <summary>Keeps the read's awaiter and, when the read has not ended, hands it the continuation.</summary>
        private bool Pending(ValueTask<bool> moving)
        {
            _moving = moving.ConfigureAwait(false).GetAwaiter();
            if (_moving.IsCompleted)
                return false;
            _moving.UnsafeOnCompleted(_moved);
            return true;
        }

        /// <summary>The update the last read brought, or its failure thrown; the choice may then read again.</summary>
        public GenerationUpdate Take()
        {
            _session._arrivals.Clear(_index);
            Failure?.Throw();
            return _update!;
        }

        private void Moved()
        {
            GenerationUpdate? next = null;
            Exception? failure = null;
            try
            {
                if (_moving.GetResult())
                    next = Updates!.Current;
            }
            catch (Exception e)
            {
                failure = e;
            }
            _moving = default;

            if (failure is not null)
                Failed(failure);
            else if (next is null) // ended without a final update: treat as a natural stop
                Arrive(new GenerationUpdate("", -1, Stats(FinishReason.Stop)), finished: true);
            else if (next.Final is { } final)
                Arrive(next with { Final = final with { FinishReason = _session.Reason(final.FinishReason) } }, finished: true);
            else
            {
                _completionTokens++;
                Arrive(next, finished: false);
            }
        }

        private void Failed(Exception e)
        {
            // An engine may throw instead of ending with a final "cancelled" update; same meaning.
            if (e is OperationCanceledException && _session._linked.IsCancellationRequested)
                Arrive(new GenerationUpdate("", -1, Stats(_session.Reason(FinishReason.Cancelled))), finished: true);
            else
            {
                Failure = ExceptionDispatchInfo.Capture(e);
                Arrive(null, finished: false);
            }
        }

        private void Arrive(GenerationUpdate? update, bool finished)
        {
            _update = update;
            Finished |= finished;
            _reading = false;
            _session._arrivals.Post(_index);
        }

        private GenerationStats Stats(FinishReason reason) =>
            new(_session._promptTokens, _completionTokens, reason, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero);
    }

    /// <summary>
    /// Which choices have a read's end waiting to be taken (bit i: choice i; <see cref="MaxChoices"/> fit an int), and one
    /// waiter for the next end: the start, the reader or the disposal, never two at once. The waiter's state is reused,
    /// so waiting allocates nothing, and its continuation runs on the thread pool, not on the engine's thread that posted.
    /// Completing and resetting that state take one lock: a reset while a completion is still signalling (the waiter saw
    /// it complete and came back at once) would leave the next wait marked complete with no result.
    /// A wait may also end with nothing new: a post that set its bit before the waiter's last look (which took it) can
    /// complete the next wait; so a waiter looks at <see cref="Ready"/> again and waits on when nothing is there.
    /// </summary>
    private sealed class Arrivals : IValueTaskSource
    {
        private readonly object _gate = new();
        private ManualResetValueTaskSourceCore<bool> _core = new() { RunContinuationsAsynchronously = true };
        private int _ready;
        private bool _waiting;

        public int Ready => Volatile.Read(ref _ready);

        public void Post(int choice)
        {
            Interlocked.Or(ref _ready, 1 << choice);
            lock (_gate)
            {
                if (!_waiting)
                    return;
                _waiting = false;
                _core.SetResult(true);
            }
        }

        public void Clear(int choice) => Interlocked.And(ref _ready, ~(1 << choice));

        /// <summary>Completes once a choice not in <paramref name="known"/> has a read's end waiting: at once if one has.</summary>
        public ValueTask WaitAsync(int known)
        {
            lock (_gate)
            {
                // A post that sets its bit after this look takes the lock after this wait is set up, and completes it.
                if ((Ready & ~known) != 0)
                    return ValueTask.CompletedTask;
                _core.Reset();
                _waiting = true;
                return new ValueTask(this, _core.Version);
            }
        }

        void IValueTaskSource.GetResult(short token) => _core.GetResult(token);

        ValueTaskSourceStatus IValueTaskSource.GetStatus(short token) => _core.GetStatus(token);

        void IValueTaskSource.OnCompleted(Action<object?> continuation, object? state, short token, ValueTaskSourceOnCompletedFlags flags) =>
            _core.OnCompleted(continuation, state, token, flags);
    }
}
