using BitNet.Inference.Generation;

namespace BitNet.Inference.Api;

/// <summary>
/// One generation from queue to last token. Starting it waits for the model (FIFO), starts the
/// engine and waits for the first update, so everything that can be refused with a status
/// (queue full, context too long, deadline passed while queued) is known before a host commits
/// to a 200. Reading it yields every update; the last one always carries the stats.
/// Two things end a generation early: the client going away (the engine sees the token within one
/// token and the stream ends "cancelled") and the deadline (ends "length", as OpenAI reports a cut).
/// Disposing releases the model to the next request.
/// </summary>
internal sealed class GenerationSession : IAsyncDisposable
{
    private readonly RequestQueue.Lease _lease;
    private readonly CancellationTokenSource _deadline;
    private readonly CancellationTokenSource _linked;
    private readonly CancellationToken _client;
    private readonly int _promptTokens;
    private IAsyncEnumerator<GenerationUpdate>? _updates;
    private GenerationUpdate? _first;
    private int _completionTokens;
    private bool _finished;

    private GenerationSession(RequestQueue.Lease lease, CancellationTokenSource deadline, CancellationTokenSource linked, int promptTokens, CancellationToken client)
    {
        _lease = lease;
        _deadline = deadline;
        _linked = linked;
        _client = client;
        _promptTokens = promptTokens;
    }

    public static async Task<GenerationSession> StartAsync(
        ITextGenerator generator, RequestQueue queue, GenerationRequest request, DateTimeOffset deadline,
        string promptParam, CancellationToken clientToken)
    {
        TimeSpan remaining = deadline - DateTimeOffset.UtcNow;
        var deadlineCts = new CancellationTokenSource(remaining > TimeSpan.Zero ? remaining : TimeSpan.Zero);
        var linked = CancellationTokenSource.CreateLinkedTokenSource(clientToken, deadlineCts.Token);
        RequestQueue.Lease lease;
        try
        {
            lease = await queue.EnterAsync(linked.Token).ConfigureAwait(false);
        }
        catch (OperationCanceledException) when (deadlineCts.IsCancellationRequested && !clientToken.IsCancellationRequested)
        {
            linked.Dispose();
            deadlineCts.Dispose();
            throw ApiException.Unavailable("the request timed out waiting for the model; retry later", "queue_timeout", TimeSpan.FromSeconds(1));
        }
        catch
        {
            linked.Dispose();
            deadlineCts.Dispose();
            throw;
        }

        var session = new GenerationSession(lease, deadlineCts, linked, request.PromptTokens.Count, clientToken);
        try
        {
            session._updates = generator.GenerateAsync(request with { Deadline = deadline }, linked.Token).GetAsyncEnumerator(linked.Token);
            session._first = await session.NextAsync().ConfigureAwait(false);
            return session;
        }
        catch (ContextLengthExceededException ex)
        {
            await session.DisposeAsync().ConfigureAwait(false);
            throw ApiException.BadRequest(
                $"This model's context holds {ex.ContextLength} tokens, but {ex.PromptTokens} prompt tokens and {ex.RequestedTokens} completion tokens were requested. Shorten the prompt or lower max_tokens.",
                promptParam, "context_length_exceeded");
        }
        catch
        {
            await session.DisposeAsync().ConfigureAwait(false);
            throw;
        }
    }

    /// <summary>Every update, the first one included; the last has <see cref="GenerationUpdate.Final"/> set.</summary>
    public async IAsyncEnumerable<GenerationUpdate> ReadAllAsync()
    {
        GenerationUpdate update = _first ?? throw new InvalidOperationException("the session was not started");
        while (true)
        {
            yield return update;
            if (update.IsFinal)
                yield break;
            update = await NextAsync().ConfigureAwait(false);
        }
    }

    private async Task<GenerationUpdate> NextAsync()
    {
        GenerationUpdate? next = null;
        try
        {
            if (await _updates!.MoveNextAsync().ConfigureAwait(false))
                next = _updates.Current;
        }
        catch (OperationCanceledException) when (_linked.IsCancellationRequested)
        {
            // An engine may throw instead of ending with a final "cancelled" update; same meaning.
            _finished = true;
            return new GenerationUpdate("", -1, Stats(Reason(FinishReason.Cancelled)));
        }

        if (next is null) // ended without a final update: treat as a natural stop
        {
            _finished = true;
            return new GenerationUpdate("", -1, Stats(FinishReason.Stop));
        }
        if (next.Final is { } final)
        {
            _finished = true;
            return next with { Final = final with { FinishReason = Reason(final.FinishReason) } };
        }
        _completionTokens++;
        return next;
    }

    /// <summary>A cut caused by our deadline (not by the client) is reported as "length".</summary>
    private FinishReason Reason(FinishReason reported) =>
        reported == FinishReason.Cancelled && _deadline.IsCancellationRequested && !_client.IsCancellationRequested
            ? FinishReason.Length
            : reported;

    private GenerationStats Stats(FinishReason reason) =>
        new(_promptTokens, _completionTokens, reason, TimeSpan.Zero, TimeSpan.Zero, TimeSpan.Zero);

    public async ValueTask DisposeAsync()
    {
        try
        {
            // Abandoned before its end (the host stopped reading): stop the engine, do not just walk away
            // from its stream, or it would keep computing tokens nobody reads while the next request waits.
            if (!_finished)
                await _linked.CancelAsync().ConfigureAwait(false);
            if (_updates is not null)
                await _updates.DisposeAsync().ConfigureAwait(false);
        }
        catch (OperationCanceledException)
        {
        }
        finally
        {
            _lease.Dispose();
            _linked.Dispose();
            _deadline.Dispose();
        }
    }
}
