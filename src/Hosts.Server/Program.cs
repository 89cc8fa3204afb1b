using System.Globalization;
using BitNet.Hosts.Http;
using BitNet.Inference.Api;

// bitnet-server [-m MODEL] [--host H] [--port P]: the plain Kestrel host for containers and local use.
// Every other setting comes from the BITNET_* environment variables (EnvVars.cs).
const string usage = "usage: bitnet-server [-m MODEL] [--host H] [--port P]; every other setting: the BITNET_* environment variables";
if (args is ["-h"] or ["--help"])
{
    Console.WriteLine(usage);
    return 0;
}
try
{
    ApiOptions options = ApiOptions.FromEnvironment();
    for (int i = 0; i < args.Length; i++)
    {
        string Value() => i + 1 < args.Length ? args[++i] : throw new ConfigurationException($"{args[i]} needs a value");
        options = args[i] switch
        {
            "-m" or "--model" => options with { ModelPath = Value() },
            "--host" => options with { Host = Value() },
            "--port" => options with
            {
                Port = int.TryParse(Value(), NumberStyles.Integer, CultureInfo.InvariantCulture, out int port) && port is >= 0 and <= 65535
                    ? port : throw new ConfigurationException($"--port '{args[i]}' is not a port number"),
            },
            _ => throw new ConfigurationException($"unknown argument '{args[i]}'; {usage}"),
        };
    }
    return await ServerRunner.RunAsync(options);
}
catch (ConfigurationException ex)
{
    Console.Error.WriteLine($"bitnet-server: {ex.Message}");
    return 2;
}
