using System.Runtime.CompilerServices;
using BitNet.Inference.Generation;

namespace BitNet.Inference.Api;

/// <summary>
/// A streamed request answered before its first token: it waits in the queue, or in the generator (to be admitted, or
/// while its prompt is evaluated). Its response starts with the headers of any stream (200, text/event-stream), then an
/// SSE comment saying what it waits for (<c>: waiting for a free slot</c>, <c>: evaluating the prompt</c>, or
/// <c>: waiting for the first token</c> when the generator does not tell) every <see cref="ApiOptions.QueueKeepAlive"/>
/// until its first tokens, so that a proxy or load balancer with an idle limit shorter than the wait keeps the
/// connection (SSE clients ignore comments). A stream that waits in the queue gets its first comment at once; one that
/// is in the generator only after an interval without its first token, so a quick one is sent as before. Then its
/// frames follow as in any stream.
/// What would have been an error status had the request not been answered comes after the 200 as the stream's last
/// event, an error frame holding that status's error object (as a fault mid-stream is reported): the deadline passing
/// in the queue (queue_timeout), the server shutting down (shutting_down: the request leaves the queue at once, since it
/// would rarely start before the drain ends; one in the generator goes on as any running request), or the engine
/// refusing it late (context_length_exceeded).
/// <paramref name="leave"/> gives up the place in the queue (the token the start waits with); the stream owns it.
/// Disposing gives up a place still waited for at once, or disposes the session that started.
/// </summary>
internal sealed class WaitingStream(GenerationSession starting, Task<GenerationSession> started, bool queued,
    CancellationTokenSource leave, TimeSpan interval, Task shutdown, CancellationToken client)
    : IAsyncDisposable
{
    private static readonly ReadOnlyMemory<byte> SlotComment = ": waiting for a free slot\n\n"u8.ToArray();
    private static readonly ReadOnlyMemory<byte> PromptComment = ": evaluating the prompt\n\n"u8.ToArray();
    private static readonly ReadOnlyMemory<byte> FirstTokenComment = ": waiting for the first token\n\n"u8.ToArray();

    private GenerationSession? _session;

    /// <summary>The response, with <paramref name="frames"/> of the session once it has started.</summary>
    public ApiResponse Response(Func<GenerationSession, IAsyncEnumerable<ReadOnlyMemory<byte>>> frames) =>
        ApiResponse.ServerSentEvents(FramesAsync(frames), this);

    private ReadOnlyMemory<byte> Comment => starting.WaitingFor switch
    {
        GenerationPhase.Waiting => SlotComment,
        GenerationPhase.EvaluatingPrompt => PromptComment,
        _ => FirstTokenComment,
    };

    private async IAsyncEnumerable<ReadOnlyMemory<byte>> FramesAsync(Func<GenerationSession, IAsyncEnumerable<ReadOnlyMemory<byte>>> frames,
        [EnumeratorCancellation] CancellationToken cancellationToken = default)
    {
        if (queued)
            yield return Comment;
        // Only a start in the queue heeds the shutdown.
        Task wake = queued ? Task.WhenAny(started, shutdown) : started;
        while (!started.IsCompleted)
        {
            // Ends at the interval, at the start (or its failure), at the shutdown or when the host gives up; none of them throws here.
            await wake.WaitAsync(interval, cancellationToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
            cancellationToken.ThrowIfCancellationRequested();
            if (started.IsCompleted)
                break;
            if (wake != started && shutdown.IsCompleted)
            {
                // Out of the queue at once; a request that got its place meanwhile runs as any other does at shutdown.
                await leave.CancelAsync().ConfigureAwait(false);
                wake = started;
            }
            yield return Comment;
        }

        ReadOnlyMemory<byte>? refusal = await RefusalAsync().ConfigureAwait(false);
        if (refusal is { } error)
        {
            yield return error;
            yield break;
        }
        await foreach (ReadOnlyMemory<byte> frame in frames(_session!).ConfigureAwait(false))
            yield return frame;
    }

    /// <summary>The error frame of a start that came to nothing after the 200, or null when the session started. A fault of
    /// the server, or the client leaving, is thrown as from any stream.</summary>
    private async Task<ReadOnlyMemory<byte>?> RefusalAsync()
    {
        try
        {
            _session = await started.ConfigureAwait(false);
            return null;
        }
        catch (ApiException ex)
        {
            return InferenceApi.SseFrame(InferenceApi.ErrorJson(ex));
        }
        catch (OperationCanceledException) when (shutdown.IsCompleted && !client.IsCancellationRequested)
        {
            return InferenceApi.SseFrame(InferenceApi.ErrorJson(ApiException.ShuttingDown()));
        }
    }

    public async ValueTask DisposeAsync()
    {
        await leave.CancelAsync().ConfigureAwait(false);
        try
        {
            _session ??= await started.ConfigureAwait(false);
        }
        catch
        {
            // refused, or it left the queue: nothing holds the model
        }
        leave.Dispose();
        if (_session is not null)
            await _session.DisposeAsync().ConfigureAwait(false);
    }
}
