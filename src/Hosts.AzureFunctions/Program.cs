using System.Globalization;
using BitNet.Hosts.AzureFunctions;
using BitNet.Inference.Api;

// Started by the Functions host (host.json customHandler.description.defaultExecutablePath).
try
{
    string? portText = Environment.GetEnvironmentVariable(EnvVars.FunctionsCustomHandlerPort);
    if (!int.TryParse(portText, NumberStyles.Integer, CultureInfo.InvariantCulture, out int port) || port is <= 0 or > 65535)
        throw new ConfigurationException($"{EnvVars.FunctionsCustomHandlerPort}='{portText}' is not a port; the Azure Functions host sets it");
    ApiOptions options = ApiOptions.FromEnvironment();
    return await AzureHandler.RunAsync(options, port, o => ModelLoading.LoadGenerator(o));
}
catch (ConfigurationException ex)
{
    Console.Error.WriteLine($"bitnet-azure-handler: {ex.Message}");
    return 2;
}
