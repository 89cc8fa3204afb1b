using BitNet.Hosts.Http;
using BitNet.Inference.Api;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.Azure.Functions.Worker;

namespace BitNet.Hosts.AzureFunctions;

/// <summary>
/// The whole OpenAI-compatible API as one HTTP-triggered function on a catch-all route (host.json sets
/// the route prefix to "", so paths are the server's: /v1/chat/completions, /health, ...). The ASP.NET Core
/// integration hands over the real <see cref="HttpContext"/>, so the plain server's mapping writes the
/// response, SSE frames included. The function is anonymous: <c>BITNET_API_KEY</c> is checked by the API.
/// </summary>
public sealed class OpenAiFunction(InferenceApi api)
{
    public const string Name = "openai";
    public const string Route = "{*route}";

    /// <remarks>The response is written by the time this returns; the <see cref="IActionResult"/> return type is
    /// what gives the function its HTTP output binding in functions.metadata, as the host expects of an HTTP trigger.</remarks>
    [Function(Name)]
    public async Task<IActionResult> RunAsync([HttpTrigger(AuthorizationLevel.Anonymous, "get", "post", "head", Route = Route)] HttpRequest request)
    {
        await HttpApiHost.ServeAsync(api, request.HttpContext);
        return new EmptyResult();
    }
}
