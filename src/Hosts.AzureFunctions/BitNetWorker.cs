using BitNet.Hosts.Http;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using Microsoft.AspNetCore.Server.Kestrel.Core;
using Microsoft.Azure.Functions.Worker.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace BitNet.Hosts.AzureFunctions;

/// <summary>
/// What the worker adds to the Functions host's services: one <see cref="InferenceApi"/> for both functions,
/// the model loaded in the background once the worker starts (health answers 503 "Loading model" until then,
/// as on the plain server), new generations refused once the worker is stopping, and the plain server's Kestrel limits.
/// </summary>
public static class BitNetWorker
{
    /// <summary>The worker as Program runs it: the Functions worker with ASP.NET Core integration plus our services.</summary>
    public static IHost CreateHost(string[] args, ApiOptions options, Func<ApiOptions, ITextGenerator> load)
    {
        FunctionsApplicationBuilder builder = FunctionsApplication.CreateBuilder(args);
        builder.ConfigureFunctionsWebApplication();
        builder.Services.AddBitNet(options, load);
        return builder.Build();
    }

    public static IServiceCollection AddBitNet(this IServiceCollection services, ApiOptions options, Func<ApiOptions, ITextGenerator> load)
    {
        var api = new InferenceApi(new GeneratorProvider(), options);
        services.AddSingleton(api);
        services.AddHostedService(sp => new ModelStartup(api, () => load(options),
            sp.GetRequiredService<IHostApplicationLifetime>(), sp.GetRequiredService<ILogger<ModelStartup>>()));
        // Running streams get this long to finish when the worker is stopped, as on the plain server.
        services.Configure<HostOptions>(host => host.ShutdownTimeout = options.ShutdownTimeout);
        // The worker's own Kestrel receives the requests: with its default limits it, not the API, would refuse a long
        // URL or many headers (an empty 414/431 instead of the OpenAI error shape the plain server answers).
        services.Configure<KestrelServerOptions>(kestrel => HttpApiHost.ConfigureKestrel(kestrel, options));
        return services;
    }
}
