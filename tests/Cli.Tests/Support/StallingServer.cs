using System.Net;
using System.Net.Sockets;
using System.Text;

namespace BitNet.Cli.Tests;

/// <summary>
/// A server for clients that must cope with one that stalls. It accepts connections and reads requests
/// (the head, then as many body bytes as its Content-Length says); each head gets the bytes <c>respond</c>
/// returns for it, an empty answer closes the connection, and once <c>respond</c> returns null the
/// connection gets nothing more (it stays open, read and ignored, until the server is disposed).
/// </summary>
internal sealed class StallingServer : IDisposable
{
    private readonly TcpListener _listener = new(IPAddress.Loopback, 0);
    private readonly CancellationTokenSource _stop = new();
    private readonly List<TcpClient> _clients = [];
    private readonly Func<string, byte[]?> _respond;

    /// <param name="respond">The answer to a request head (its lines without the blank one), empty to close the connection,
    /// or null for silence; default: always silent.</param>
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

    /// <summary>
    /// Answers the first <paramref name="answered"/> requests for <paramref name="path"/> with <paramref name="answer"/>
    /// and any other path with 404; later requests for the path get nothing, or with <paramref name="close"/> a closed
    /// connection. <paramref name="stalled"/> runs for each of them, before the stall.
    /// </summary>
    public static StallingServer AnswerThenStall(int answered, string path, string answer, bool close = false, Action? stalled = null)
    {
        int seen = 0;
        byte[] notFound = Encoding.ASCII.GetBytes("HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n");
        return new StallingServer(head =>
        {
            string[] requestLine = head.Split("\r\n")[0].Split(' ');
            if (requestLine.Length < 2 || requestLine[1] != path)
                return notFound;
            if (Interlocked.Increment(ref seen) <= answered)
                return Encoding.ASCII.GetBytes(answer);
            stalled?.Invoke();
            return close ? [] : null;
        });
    }

    public string BaseUrl { get; }

    /// <summary>Connections accepted so far.</summary>
    public int Connections { get { lock (_clients) return _clients.Count; } }

    private async Task ServeAsync(TcpClient client)
    {
        var buffer = new byte[4096];
        string pending = "";   // ASCII: one character per byte received
        int body = 0;          // bytes of the last request's body still to skip
        bool silent = false;
        try
        {
            NetworkStream stream = client.GetStream();
            while (true)   // one connection may carry several requests (keep-alive)
            {
                int skipped = Math.Min(body, pending.Length);
                pending = pending[skipped..];
                body -= skipped;
                int end = silent || body > 0 ? -1 : pending.IndexOf("\r\n\r\n", StringComparison.Ordinal);
                if (end < 0)
                {
                    int read = await stream.ReadAsync(buffer, _stop.Token);
                    if (read == 0) return;
                    if (!silent) pending += Encoding.ASCII.GetString(buffer, 0, read);
                    continue;
                }
                string head = pending[..end];
                pending = pending[(end + 4)..];
                body = ContentLength(head);
                byte[]? answer = _respond(head);
                if (answer is null) silent = true;
                else if (answer.Length == 0)
                {
                    client.Client.Shutdown(SocketShutdown.Both);
                    return;
                }
                else await stream.WriteAsync(answer, _stop.Token);
            }
        }
        catch (Exception e) when (e is OperationCanceledException or IOException or ObjectDisposedException or SocketException) { }
    }

    private static int ContentLength(string head)
    {
        foreach (string line in head.Split("\r\n"))
            if (line.StartsWith("Content-Length:", StringComparison.OrdinalIgnoreCase)
                && int.TryParse(line["Content-Length:".Length..].Trim(), System.Globalization.CultureInfo.InvariantCulture, out int length))
                return length;
        return 0;
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
