using System.Net;
using System.Net.Sockets;
using System.Text;

namespace BitNet.Cli.Tests;

/// <summary>
/// A server for clients that must cope with one that stalls. It accepts connections and reads request
/// heads; each head gets the bytes <c>respond</c> returns for it, and once <c>respond</c> returns null the
/// connection gets nothing more (it stays open, read and ignored, until the server is disposed).
/// </summary>
internal sealed class StallingServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _clients = [];
    private readonly Func<string, byte[]?> _respond;

    /// <param name="respond">The answer to a request head (its lines without the blank one), or null for silence; default: always silent.</param>
    public StallingServer(Func<string, byte[]?>? respond = null)
    {
        _respond = respond ?? (_ => null);
        _listener.Start();
        BaseUrl = $"http://127.0.0.1:{((IPEndPoint)_listener.LocalEndpoint).Port}/";
        _ = Task.Run(async () =>
        {
            while (!_stop.IsCancellationRequested)
            {
                TcpClient client;
                try { client = await _listener.AcceptTcpClientAsync(_stop.Token); }
                catch (Exception e) when (e is OperationCanceledException or SocketException or ObjectDisposedException) { return; }
                lock (_clients) _clients.Add(client);
                _ = Task.Run(() => ServeAsync(client));
            }
        });
    }

    /// <summary>Sends <paramref name="text"/> once the first request's head has arrived, then nothing more.</summary>
    public static StallingServer AnswerThenStall(string text)
    {
        int answered = 0;
        return new StallingServer(_ => Interlocked.Exchange(ref answered, 1) == 0 ? Encoding.ASCII.GetBytes(text) : null);
    }

    public string BaseUrl { get; }

    /// <summary>Connections accepted so far.</summary>
    public int Connections { get { lock (_clients) return _clients.Count; } }

    private async Task ServeAsync(TcpClient client)
    {
        var buffer = new byte[4096];
        string pending = "";
        bool silent = false;
        try
        {
            NetworkStream stream = client.GetStream();
            while (true)   // one connection may carry several requests (keep-alive)
            {
                int end = silent ? -1 : pending.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (end < 0)
                {
                    int read = await stream.ReadAsync(buffer, _stop.Token);
                    if (read == 0) return;
                    if (!silent) pending += Encoding.ASCII.GetString(buffer, 0, read);
                    continue;
                }
                string head = pending[..end];
                pending = pending[(end + 4)..];
                byte[]? answer = _respond(head);
                if (answer is null) silent = true;
                else await stream.WriteAsync(answer, _stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException) { }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _listener.Stop();
        lock (_clients)
            foreach (var client in _clients)
                client.Dispose();
        _stop.Dispose();
    }
}
