using System.Collections.Concurrent;
using Microsoft.AspNetCore.Http;

namespace BitNet.Hosts.Http;

/// <summary>
/// The requests one app is answering right now (a singleton of the app's services): the drain on
/// SIGTERM waits for them, a second signal aborts them.
/// </summary>
public sealed class InFlightRequests
{
    private readonly ConcurrentDictionary<HttpContext, byte> _requests = new();

    public int Count => _requests.Count;

    internal void Add(HttpContext context) => _requests.TryAdd(context, 0);

    internal void Remove(HttpContext context) => _requests.TryRemove(context, out _);

    /// <summary>Closes every running request's connection; their generations are cancelled through RequestAborted.</summary>
    public void AbortAll()
    {
        foreach (HttpContext context in _requests.Keys)
            context.Abort();
    }
}
