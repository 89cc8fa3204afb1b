using System.Collections.Concurrent;
using System.Net;
using System.Net.Sockets;
using System.Security.Cryptography;

namespace BitNet.Cli.Tests.Hub;

/// <summary>
/// A loopback stand-in for huggingface.co: <c>/{repo}/resolve/{rev}/{file}</c> answers like the hub
/// (LFS files: 302 to a "CDN" path with X-Linked-Etag/X-Linked-Size/X-Repo-Commit; small files: 200
/// with the git blob SHA-1 as ETag), supports Range, and can be told to require a token, cut the
/// first transfer short, or serve bytes that do not match the published hash.
/// </summary>
internal sealed class FakeHubServer : IDisposable
{
    public sealed record HostedFile(byte[] Content, bool Lfs, string Commit);

    private readonly HttpListener _listener;
    private readonly Task _loop;
    private int _cutsRemaining;
    private readonly int _port;

    /// <summary>When true, LFS redirects go to http://localhost (a different host from the hub's 127.0.0.1), like a real CDN.</summary>
    public bool CdnOnOtherHost { get; set; }

    public FakeHubServer()
    {
        _listener = StartListener(port => [$"http://127.0.0.1:{port}/", $"http://localhost:{port}/"], out int port);
        BaseUrl = $"http://127.0.0.1:{port}/";
        _port = port;
        _loop = Task.Run(LoopAsync);
    }

    public string BaseUrl { get; }
    public ConcurrentDictionary<string, HostedFile> Files { get; } = new();
    public string? RequiredToken { get; set; }
    public bool CorruptBody { get; set; }
    public bool IgnoreRange { get; set; }
    /// <summary>Abort the next N body transfers after this many bytes.</summary>
    public int CutAfterBytes { get; set; }
    public int CutTransfers { set => _cutsRemaining = value; }
    public ConcurrentQueue<(string Method, string Path, string? Range, string? Authorization)> Requests { get; } = new();

    public static string Sha256(byte[] content) => Convert.ToHexStringLower(SHA256.HashData(content));

    public static string GitSha1(byte[] content) =>
        Convert.ToHexStringLower(SHA1.HashData([.. System.Text.Encoding.ASCII.GetBytes($"blob {content.Length}\0"), .. content]));

    public void Add(string repo, string file, byte[] content, bool lfs = true, string? commit = null) =>
        Files[$"{repo}/resolve/main/{file}"] = new HostedFile(content, lfs, commit ?? new string('c', 40));

    private async Task LoopAsync()
    {
        while (_listener.IsListening)
        {
            HttpListenerContext context;
            try { context = await _listener.GetContextAsync(); }
            catch (Exception e) when (e is HttpListenerException or ObjectDisposedException or InvalidOperationException) { return; }
            _ = Task.Run(() => Handle(context));
        }
    }

    private void Handle(HttpListenerContext context)
    {
        var request = context.Request;
        var response = context.Response;
        string path = Uri.UnescapeDataString(request.Url!.AbsolutePath.TrimStart('/'));
        Requests.Enqueue((request.HttpMethod, path, request.Headers["Range"], request.Headers["Authorization"]));
        try
        {
            if (RequiredToken is not null && !path.StartsWith("cdn/", StringComparison.Ordinal)
                && request.Headers["Authorization"] != $"Bearer {RequiredToken}")
            {
                response.StatusCode = 401;
                response.Close();
                return;
            }

            if (path.StartsWith("cdn/", StringComparison.Ordinal))
            {
                var hosted = Files.Values.FirstOrDefault(f => Sha256(f.Content) == path[4..]);
                if (hosted is null) { response.StatusCode = 404; response.Close(); return; }
                response.Headers["ETag"] = $"\"{path[4..]}\"";
                ServeBody(request, response, hosted.Content);
                return;
            }

            if (!Files.TryGetValue(path, out var file))
            {
                response.StatusCode = 404;
                response.Headers["X-Error-Code"] = "EntryNotFound";
                response.Close();
                return;
            }

            response.Headers["X-Repo-Commit"] = file.Commit;
            if (file.Lfs)
            {
                string sha = Sha256(file.Content);
                response.Headers["X-Linked-Etag"] = $"\"{sha}\"";
                response.Headers["X-Linked-Size"] = file.Content.Length.ToString();
                response.Headers["ETag"] = "\"not-the-content-hash\"";
                response.StatusCode = 302;
                response.RedirectLocation = CdnOnOtherHost ? $"http://localhost:{_port}/cdn/{sha}" : $"/cdn/{sha}";
                response.Close();
                return;
            }
            response.Headers["ETag"] = $"\"{GitSha1(file.Content)}\"";
            ServeBody(request, response, file.Content);
        }
        catch (Exception e) when (e is HttpListenerException or IOException or ObjectDisposedException) { }
    }

    private void ServeBody(HttpListenerRequest request, HttpListenerResponse response, byte[] content)
    {
        byte[] body = content;
        if (CorruptBody)
        {
            body = (byte[])content.Clone();
            body[body.Length / 2] ^= 0xFF;
        }
        long start = 0;
        string? range = request.Headers["Range"];
        if (range is not null && !IgnoreRange && range.StartsWith("bytes=", StringComparison.Ordinal) && range.EndsWith('-'))
        {
            start = long.Parse(range[6..^1]);
            if (start >= body.Length)
            {
                response.StatusCode = 416;
                response.Close();
                return;
            }
            response.StatusCode = 206;
            response.Headers["Content-Range"] = $"bytes {start}-{body.Length - 1}/{body.Length}";
        }
        response.ContentLength64 = body.Length - start;
        if (request.HttpMethod == "HEAD") { response.Close(); return; }

        bool cut = CutAfterBytes > 0 && Interlocked.Decrement(ref _cutsRemaining) >= 0;
        int count = (int)(body.Length - start);
        if (cut)
        {
            response.OutputStream.Write(body, (int)start, Math.Min(CutAfterBytes, count));
            response.OutputStream.Flush();
            response.Abort();
            return;
        }
        response.OutputStream.Write(body, (int)start, count);
        response.Close();
    }

    /// <summary>
    /// A listener started on a free loopback port with <paramref name="prefixes"/> of that port. HttpListener cannot
    /// listen on port 0, so a port the OS just gave out is taken; another process may bind it in between, and then
    /// the next one is tried.
    /// </summary>
    public static HttpListener StartListener(Func<int, string[]> prefixes, out int port)
    {
        for (int attempt = 1; ; attempt++)
        {
            port = FreePort();
            var listener = new HttpListener();
            foreach (string prefix in prefixes(port))
                listener.Prefixes.Add(prefix);
            try
            {
                listener.Start();
                return listener;
            }
            catch (HttpListenerException) when (attempt < 20)
            {
                listener.Close();
            }
        }
    }

    public static int FreePort()
    {
        var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        return port;
    }

    public void Dispose()
    {
        // Close alone: on Unix (the managed HttpListener) Stop then Close removes the listener twice,
        // and the second removal binds the port again to look for it ("Address already in use" when
        // anything took the port in between, such as the next test's fake server).
        _listener.Close();
        try { _loop.Wait(TimeSpan.FromSeconds(2)); } catch (AggregateException) { }
    }
}
