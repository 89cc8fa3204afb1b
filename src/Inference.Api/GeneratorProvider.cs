using System.Diagnostics;
using BitNet.Inference.Generation;

namespace BitNet.Inference.Api;

public enum GeneratorState { Loading, Ready, Failed }

/// <summary>
/// The one model instance the API serves, and where it is in its life: loading (health 503,
/// requests 503 + Retry-After), ready, or failed (503 naming the reason). Hosts start the load
/// when they start: Lambda during init, the HTTP hosts in the background after binding the port
/// (the port answers, with health 503 "Loading model", while the model loads).
/// </summary>
public sealed class GeneratorProvider
{
    private volatile ITextGenerator? _generator;
    private volatile string? _failure;
    private readonly TaskCompletionSource _settled = new(TaskCreationOptions.RunContinuationsAsynchronously);

    public GeneratorState State => _generator is not null ? GeneratorState.Ready
        : _failure is not null ? GeneratorState.Failed
        : GeneratorState.Loading;

    /// <summary>Why loading failed (only in <see cref="GeneratorState.Failed"/>).</summary>
    public string? FailureReason => _failure;

    /// <summary>How long the load took (known once ready).</summary>
    public TimeSpan? LoadTime { get; private set; }

    /// <summary>Completes when the model is ready or failed to load.</summary>
    public Task Settled => _settled.Task;

    public ITextGenerator? Generator => _generator;

    /// <summary>What the hosts log once the model is ready: "model 'ID' ready in S s (KERNELS, N threads)", and "; the
    /// context is …" when the memory left it smaller than the model's (<see cref="ModelInfo.KvCacheNote"/>).</summary>
    public string ReadySummary => _generator is { Model: var model }
        ? $"model '{model.Id}' ready in {LoadTime?.TotalSeconds:F2} s ({model.KernelName}, {model.Threads} {ThreadNoun(model.Threads)})" +
          (model.KvCacheNote is { } note ? $"; {note}" : "")
        : throw new InvalidOperationException("the model is not ready");

    /// <summary>"thread" or "threads" for a count, for the ready line and its structured twin.</summary>
    public static string ThreadNoun(int threads) => threads == 1 ? "thread" : "threads";

    /// <summary>A provider that is ready from the start (tests, or a host that loaded the model itself).</summary>
    public static GeneratorProvider Ready(ITextGenerator generator)
    {
        var provider = new GeneratorProvider();
        provider.SetReady(generator, TimeSpan.Zero);
        return provider;
    }

    /// <summary>Runs <paramref name="load"/> on this thread; records ready or failed. Returns the exception on failure.</summary>
    public Exception? Load(Func<ITextGenerator> load)
    {
        var clock = Stopwatch.StartNew();
        try
        {
            SetReady(load(), clock.Elapsed);
            return null;
        }
        catch (Exception ex)
        {
            SetFailed(ex.Message);
            return ex;
        }
    }

    /// <summary>Starts <paramref name="load"/> on a background thread; returns at once.</summary>
    public Task LoadInBackground(Func<ITextGenerator> load)
    {
        var thread = new Thread(() => Load(load)) { IsBackground = true, Name = "model-load" };
        thread.Start();
        return Settled;
    }

    public void SetReady(ITextGenerator generator, TimeSpan loadTime)
    {
        LoadTime = loadTime;
        _generator = generator;
        _settled.TrySetResult();
    }

    public void SetFailed(string reason)
    {
        _failure = reason;
        _settled.TrySetResult();
    }
}
