using System.Runtime.ExceptionServices;
using BitNet.Inference.Generation;

namespace BitNet.Inference.Api;

/// <summary>
/// One request's generations from queue to last token: usually one, or OpenAI's n choices of one prompt
/// (choice i sampled with seed + i when a seed is given), which decode side by side and share the
/// prompt's KV blocks. Starting it waits for the model (FIFO; the request takes one place in the queue
/// whatever its n), starts the engine and waits for every choice's first update, so everything that can
/// be refused with a status (queue full, context too long, deadline passed while queued) is known before
/// a host commits to a 200 (a stream that has to wait for a place is answered before: <see cref="QueuedStream"/>).
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
    private RequestQueue.Lease? _lease;

    private GenerationSession(CancellationTokenSource deadline, CancellationTokenSource linked, int promptTokens, int choices, CancellationToken client)
    {
        _deadline = deadline;
        _linked = linked;
        _client = client;
        _promptTokens = promptTokens;
        _choices = new Choice[choices];
        for (int i = 0; i < choices; i++) _choices[i] = new Choice(this);
    }

    /// <summary>The most choices (n) one request may ask for.</summary>
    public const int MaxChoices = 16;

    public int Choices => _choices.Length;

    public static Task<GenerationSession> StartAsync(
        ITextGenerator generator, RequestQueue queue, GenerationRequest request, DateTimeOffset deadline,
        string promptParam, int choices, CancellationToken clientToken) =>
        Start(generator, queue, request, deadline, promptParam, choices, clientToken).Started;

    /// <summary>
    /// Enters the queue and starts the session, as <see cref="StartAsync"/> does, and tells at once whether the request
    /// has to wait for a place (<c>Waiting</c>; false when it got one or was refused with 429).
    /// <paramref name="leaveQueue"/> gives up a place still waited for (the start then fails with
    /// <see cref="OperationCanceledException"/>); once the request runs it has no effect.
    /// </summary>
    public static (bool Waiting, Task<GenerationSession> Started) Start(
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
        return (!entering.IsCompleted, session.StartAsync(entering, wait, generator, request with { Deadline = deadline }, promptParam));
    }

    private async Task<GenerationSession> StartAsync(ValueTask<RequestQueue.Lease> entering, CancellationTokenSource? wait,
        ITextGenerator generator, GenerationRequest request, string promptParam)
    {
        try
        {
            try
            {
                _lease = await entering.ConfigureAwait(false);
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
            var firsts = new Task<GenerationUpdate>[_choices.Length];
            for (int i = 0; i < _choices.Length; i++)
            {
                GenerationRequest choice = i == 0 || request.Sampling.Seed is not ulong seed
                    ? request
                    : request with { Sampling = request.Sampling with { Seed = unchecked(seed + (ulong)i) } };
                _choices[i].Updates = generator.GenerateAsync(choice, _linked.Token).GetAsyncEnumerator(_linked.Token);
                firsts[i] = _choices[i].NextAsync();
            }
            // Every read is awaited before the session can be disposed; after a failure the others are cancelled.
            ExceptionDispatchInfo? failure = null;
            for (int i = 0; i < _choices.Length; i++)
            {
                try
                {
                    _choices[i].First = await firsts[i].ConfigureAwait(false);
                }
                catch (Exception e) when (failure is null)
                {
                    failure = ExceptionDispatchInfo.Capture(e);
                    await _linked.CancelAsync().ConfigureAwait(false);
                }
                catch
                {
                    // a later choice ended by the cancellation above, or failing alike: the first failure is the answer
                }
            }
            failure?.Throw();
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
        if (_choices.Any(c => c.First is null)) throw new InvalidOperationException("the session was not started");
        if (_choices.Length == 1)
        {
            Choice only = _choices[0];
            GenerationUpdate update = only.First!;
            while (true)
            {
                yield return (0, update);
                if (update.IsFinal) yield break;
                update = await only.NextAsync().ConfigureAwait(false);
            }
        }

        // Several choices: each has one read outstanding; whichever completes first goes out next.
        var reads = new Task<GenerationUpdate>?[_choices.Length];
        for (int i = 0; i < reads.Length; i++) reads[i] = Task.FromResult(_choices[i].First!);
        int open = reads.Length;
        while (open > 0)
        {
            Task<GenerationUpdate> done = await Task.WhenAny(reads.Where(r => r is not null)!).ConfigureAwait(false);
            int i = Array.IndexOf(reads, done);
            GenerationUpdate update = await done.ConfigureAwait(false);
            if (update.IsFinal) { reads[i] = null; open--; }
            else reads[i] = _choices[i].NextAsync();
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
            foreach (Choice choice in _choices)
            {
                // A reader of several choices may leave reads outstanding; an enumerator is disposed only between reads.
                if (choice.Reading is { IsCompleted: false } reading)
                {
                    try
                    {
                        await reading.ConfigureAwait(false);
                    }
                    catch
                    {
                        // its outcome no longer matters; the engine ends the cancelled generation within one step
                    }
                }
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

    /// <summary>One generation of the session: its engine stream and what has been read of it.</summary>
    private sealed class Choice(GenerationSession session)
    {
        public IAsyncEnumerator<GenerationUpdate>? Updates { get; set; }
        public GenerationUpdate? First { get; set; }
        public bool Finished { get; private set; }
        /// <summary>The last read started, which may still be under way.</summary>
        public Task<GenerationUpdate>? Reading { get; private set; }
        private int _completionTokens;

        public Task<GenerationUpdate> NextAsync() => Reading = ReadAsync();

        private async Task<GenerationUpdate> ReadAsync()
        {
            GenerationUpdate? next = null;
            try
            {
                if (await Updates!.MoveNextAsync().ConfigureAwait(false))
                    next = Updates.Current;
            }
            catch (OperationCanceledException) when (session._linked.IsCancellationRequested)
            {
                // An engine may throw instead of ending with a final "cancelled" update; same meaning.
                Finished = true;
                return new GenerationUpdate("", -1, Stats(session.Reason(FinishReason.Cancelled)));
            }

            if (next is null) // ended without a final update: treat as a natural stop
            {
                Finished = true;
                return new GenerationUpdate("", -1, Stats(FinishReason.Stop));
            }
            if (next.Final is { } final)
            {
                Finished = true;
                return next with { Final = final with { FinishReason = session.Reason(final.FinishReason) } };
            }
            _completionTokens++;
            return next;
        }

        private GenerationStats Stats(FinishReason reason) =>
            new(session._promptTokens, _completionTokens, reason, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero);
    }
}
