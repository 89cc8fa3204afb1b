using BitNet.Hosts.Lambda;
using BitNet.Hosts.Lambda.Runtime;
using BitNet.Inference.Api;
using BitNet.Inference.Hub;

// The `bootstrap` of a provided.al2023 image: Lambda starts it once per execution environment.
string? runtimeApi = Environment.GetEnvironmentVariable(EnvVars.AwsLambdaRuntimeApi);
if (string.IsNullOrEmpty(runtimeApi))
{
    Console.Error.WriteLine($"bootstrap: {EnvVars.AwsLambdaRuntimeApi} is not set; this program runs inside AWS Lambda (or the Runtime Interface Emulator)");
    return 2;
}

using var client = new RuntimeApiClient(runtimeApi);
var loop = new LambdaRuntimeLoop(client, ProcessEnvironment.Instance);
return await loop.RunAsync(options => ModelLoading.LoadGenerator(options));
