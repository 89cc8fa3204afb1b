using System.Net;
using System.Net.Sockets;
using System.Text;

namespace BitNet.Cli.Tests.Cost;

/// <summary>
/// A server that accepts connections, reads what arrives and never answers (until disposed), or with
/// <c>answerThenStall</c> sends that text once a request's head has arrived and then nothing more.
/// </summary>
internal sealed class SilentServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _clients = [];
    private readonly byte[]? _answer;

    public SilentServer(string? answerThenStall = null)
    {
        _answer = answerThenStall is null ? null : Encoding.ASCII.GetBytes(answerThenStall);
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
                _ = Task.Run(() => DrainAsync(client));
            }
        });
    }

    public string BaseUrl { get; }

    /// <summary>Connections accepted so far.</summary>
    public int Connections { get { lock (_clients) return _clients.Count; } }

    private async Task DrainAsync(TcpClient client)
    {
        var buffer = new byte[4096];
        var head = new StringBuilder();
        bool answered = _answer is null;
        try
        {
            NetworkStream stream = client.GetStream();
            int read;
            while ((read = await stream.ReadAsync(buffer, _stop.Token)) > 0)
            {
                if (answered)
                    continue;
                head.Append(Encoding.ASCII.GetString(buffer, 0, read));
                if (head.ToString().Contains("\r\n\r\n", StringComparison.Ordinal))
                {
                    await stream.WriteAsync(_answer, _stop.Token);
                    answered = true;
                }
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
