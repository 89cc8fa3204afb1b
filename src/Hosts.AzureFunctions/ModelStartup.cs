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
            if (provider.State == GeneratorState.Ready)
                logger.LogInformation("model '{Model}' ready in {Seconds:F2} s ({Kernel}, {Threads} {ThreadNoun})",
                    provider.Generator!.Model.Id, provider.LoadTime?.TotalSeconds, provider.Generator.Model.KernelName,
                    provider.Generator.Model.Threads, GeneratorProvider.ThreadNoun(provider.Generator.Model.Threads));
            else
                logger.LogError("the model failed to load: {Reason}", provider.FailureReason);
        }, TaskScheduler.Default);
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
