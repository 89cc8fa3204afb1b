using BitNet.Hosts.AzureFunctions;
using BitNet.Inference.Api;
using Microsoft.Extensions.Hosting;

// Started by the Functions host (FUNCTIONS_WORKER_RUNTIME=dotnet-isolated, worker.config.json), which passes
// the gRPC endpoint to call back; HTTP requests arrive through the ASP.NET Core integration.
ApiOptions options;
try
{
    options = ApiOptions.FromEnvironment();
}
catch (ConfigurationException ex)
{
    Console.Error.WriteLine($"bitnet-azure: {ex.Message}");
    return 2;
}

using IHost host = BitNetWorker.CreateHost(args, options, o => ModelLoading.LoadGenerator(o));
await host.RunAsync();
return 0;
