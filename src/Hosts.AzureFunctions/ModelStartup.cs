using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BitNet.Hosts.AzureFunctions;

/// <summary>Starts the model load without holding up the worker's start (the host waits for the worker to connect).</summary>
public sealed class ModelStartup(InferenceApi api, Func<ITextGenerator> load, IHostApplicationLifetime lifetime, ILogger<ModelStartup> logger) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        lifetime.ApplicationStopping.Register(api.BeginShutdown);
        GeneratorProvider provider = api.Provider;
        _ = provider.LoadInBackground(load).ContinueWith(_ =>
        {
            if (provider.State != GeneratorState.Ready)
            {
                logger.LogError("the model failed to load: {Reason}", provider.FailureReason);
                return;
            }
            ModelInfo model = provider.Generator!.Model;
            logger.LogInformation("model '{Model}' ready in {Seconds:F2} s ({Kernel}, {Threads} {ThreadNoun})",
                model.Id, provider.LoadTime?.TotalSeconds, model.KernelName, model.Threads, GeneratorProvider.ThreadNoun(model.Threads));
            if (model.KvCacheNote is { } note)
                logger.LogWarning("{KvCacheNote}", note);
        }, TaskScheduler.Default);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
