using System.Reflection;
using System.Text.Json;
using BitNet.Hosts.AzureFunctions;
using BitNet.Inference.Api;
using BitNet.Inference.Generation;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;
using Microsoft.AspNetCore.Mvc.Abstractions;
using Microsoft.AspNetCore.Routing;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace BitNet.Hosts.Tests.Support;

/// <summary>
/// A stand-in for the Functions host's proxy to the worker, written for these tests: the real Functions
/// host cannot run here, so this re-implements what the worker's ASP.NET Core integration does with a
/// request (its routing), and a difference from the real integration would go unnoticed by these tests.
/// It is a Kestrel app on a free loopback port with the
/// worker's own service registration (<see cref="BitNetWorker.AddBitNet"/>, so the model loads in the
/// background as it does there) and one endpoint per HTTP-triggered function of the host assembly. As in
/// the worker's ASP.NET Core integration, each endpoint's route is host.json's route prefix + the trigger's
/// route and its methods are the trigger's; a request creates the function class through DI, calls it with
/// the request and executes the <see cref="IActionResult"/> it returns.
/// </summary>
internal sealed class AzureWorker : IAsyncDisposable
{
    private readonly WebApplication _app;

    private AzureWorker(WebApplication app)
    {
        _app = app;
        Client = new HttpClient { BaseAddress = new Uri(app.Urls.First()), Timeout = TimeSpan.FromSeconds(60) };
    }

    public HttpClient Client { get; }
    public InferenceApi Api => _app.Services.GetRequiredService<InferenceApi>();
    public IServiceProvider Services => _app.Services;

    /// <summary>A worker whose model load has finished (it still goes through the background load).</summary>
    public static async Task<AzureWorker> StartAsync(ITextGenerator generator, ApiOptions? options = null)
    {
        AzureWorker worker = await StartAsync(_ => generator, options);
        await worker.Api.Provider.Settled.WaitAsync(TimeSpan.FromSeconds(10));
        return worker;
    }

    public static async Task<AzureWorker> StartAsync(Func<ApiOptions, ITextGenerator> load, ApiOptions? options = null)
    {
        WebApplicationBuilder builder = WebApplication.CreateSlimBuilder();
        builder.Logging.SetMinimumLevel(LogLevel.Warning);
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        builder.Services.AddRouting();
        builder.Services.AddBitNet(options ?? new ApiOptions(), load);
        WebApplication app = builder.Build();

        string prefix = RoutePrefix();
        foreach (var (method, trigger) in HttpFunctions())
        {
            string route = prefix.Length == 0 ? "/" + trigger.Route : $"/{prefix}/{trigger.Route}";
            app.MapMethods(route, trigger.Methods!.Select(m => m.ToUpperInvariant()), context => InvokeAsync(method, context));
        }
        await app.StartAsync();
        return new AzureWorker(app);
    }

    /// <summary>The keep-warm function as the timer would run it.</summary>
    public Task TickKeepWarmAsync(bool pastDue = false) =>
        ActivatorUtilities.CreateInstance<KeepWarmFunction>(_app.Services).RunAsync(new TimerInfo { IsPastDue = pastDue });

    /// <summary>What the Functions host does when it stops the worker.</summary>
    public Task StopAsync() => _app.StopAsync();

    /// <summary>Every [Function] method of the Azure host whose first parameter is an HTTP trigger.</summary>
    public static IEnumerable<(MethodInfo Method, HttpTriggerAttribute Trigger)> HttpFunctions() =>
        from type in typeof(OpenAiFunction).Assembly.GetExportedTypes()
        from method in type.GetMethods()
        where method.GetCustomAttribute<FunctionAttribute>() is not null
        let trigger = method.GetParameters().Select(p => p.GetCustomAttribute<HttpTriggerAttribute>()).FirstOrDefault(a => a is not null)
        where trigger is not null
        select (method, trigger);

    /// <summary>extensions.http.routePrefix of the host.json shipped with the worker ("api" when unset, as in Functions).</summary>
    public static string RoutePrefix()
    {
        using JsonDocument host = JsonDocument.Parse(File.ReadAllText(Path.Combine(AppContext.BaseDirectory, "host.json")));
        return host.RootElement.TryGetProperty("extensions", out JsonElement extensions) && extensions.TryGetProperty("http", out JsonElement http)
            && http.TryGetProperty("routePrefix", out JsonElement prefix) ? prefix.GetString()!.Trim('/') : "api";
    }

    private static async Task InvokeAsync(MethodInfo method, HttpContext context)
    {
        object function = ActivatorUtilities.CreateInstance(context.RequestServices, method.DeclaringType!);
        var result = (Task<IActionResult>)method.Invoke(function, [context.Request])!;
        IActionResult action = await result;
        await action.ExecuteResultAsync(new ActionContext(context, context.GetRouteData(), new ActionDescriptor()));
    }

    public async ValueTask DisposeAsync()
    {
        Client.Dispose();
        await _app.StopAsync();
        await _app.DisposeAsync();
    }
}
