using System.Net;
using System.Net.Sockets;
using System.Text;
using BitNet.Hosts.Http;
using BitNet.Hosts.Tests.Support;
using BitNet.Tests.Shared;

namespace BitNet.Hosts.Tests;

/// <summary>
/// bitnet-server as an operator runs it, a real process: a host it cannot bind is an error naming
/// it, the address printed is the one bound, a busy or privileged port or a model that fails to load ends
/// the process with one line and a non-zero exit, a request after SIGTERM gets 503, and a second SIGTERM stops at once.
/// </summary>
public sealed class ServerProcessTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    private static void AssertOneLine(string stderr)
    {
        string[] lines = stderr.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.True(lines.Length == 1, $"expected one line on stderr, got:\n{stderr}");
        Assert.DoesNotContain("   at ", stderr);
        Assert.DoesNotContain("Exception", stderr);
    }

    [Theory]
    [InlineData("999.1.1.1")]
    [InlineData("10.1")]
    [InlineData("192.0.2.1")] // TEST-NET-1: a valid address, but not one of this machine
    [InlineData("localhos")]
    [InlineData("example.invalid")]
    public async Task A_host_that_is_not_an_address_of_this_machine_is_an_error_naming_it(string host)
    {
        await using var server = ServerProcess.Start("-m", SharedData.OracleModelPath, "--host", host, "--port", "0");
        Assert.Equal(2, await server.ExitCodeAsync());
        AssertOneLine(server.Stderr);
        Assert.Contains($"'{host}'", server.Stderr);
        Assert.DoesNotContain("listening", server.Stdout);
    }

    [Theory]
    [InlineData("127.0.0.1", "http://127.0.0.1:")]
    [InlineData("0.0.0.0", "http://0.0.0.0:")]
    [InlineData("localhost", "http://127.0.0.1:")] // a free port for "localhost" is taken on the IPv4 loopback
    public async Task The_printed_address_is_the_one_bound(string host, string printed)
    {
        await using var server = ServerProcess.Start("-m", SharedData.OracleModelPath, "--host", host, "--port", "0");
        string url = await server.ListeningAsync();
        Assert.StartsWith(printed, url);
        int port = new Uri(url).Port;
        Assert.NotEqual(0, port);
        using var http = new HttpClient();
        HttpResponseMessage health = await http.GetAsync($"http://127.0.0.1:{port}/health", Ct);
        Assert.True(health.StatusCode is HttpStatusCode.OK or HttpStatusCode.ServiceUnavailable, $"{health.StatusCode}");
    }

    [Fact]
    public async Task Localhost_with_a_fixed_port_is_printed_as_localhost()
    {
        using var probe = new TcpListener(IPAddress.Loopback, 0);
        probe.Start();
        int port = ((IPEndPoint)probe.LocalEndpoint).Port;
        probe.Stop();
        await using var server = ServerProcess.Start("-m", SharedData.OracleModelPath, "--host", "localhost", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal($"http://localhost:{port}", await server.ListeningAsync());
    }

    [Fact]
    public async Task A_port_in_use_is_one_line_and_a_non_zero_exit()
    {
        using var occupant = new TcpListener(IPAddress.Loopback, 0);
        occupant.Start();
        int port = ((IPEndPoint)occupant.LocalEndpoint).Port;
        await using var server = ServerProcess.Start("-m", SharedData.OracleModelPath, "--host", "127.0.0.1", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(1, await server.ExitCodeAsync());
        AssertOneLine(server.Stderr);
        Assert.Contains("address already in use", server.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.Contains($"127.0.0.1:{port}", server.Stderr);
        Assert.DoesNotContain("   at ", server.Stdout);
    }

    [Fact]
    public void A_refused_listen_socket_is_one_line_naming_the_address()
    {
        Assert.Equal("cannot listen on http://127.0.0.1:80, http://[::1]:80: Permission denied (AccessDenied)",
            ServerRunner.ListenFailure(new SocketException((int)SocketError.AccessDenied, "Permission denied"), "http://127.0.0.1:80;http://[::1]:80"));
        Assert.Equal("cannot listen: Failed to bind to address http://127.0.0.1:5: address already in use.",
            ServerRunner.ListenFailure(new IOException("Failed to bind to address http://127.0.0.1:5: address already in use."), "http://127.0.0.1:5"));
        Assert.Null(ServerRunner.ListenFailure(new InvalidOperationException("a bug"), "http://127.0.0.1:5"));
    }

    [Fact]
    public async Task A_port_that_needs_privileges_is_one_line_and_exit_1()
    {
        if (!OperatingSystem.IsLinux())
            Assert.Skip("privileged ports are checked on Linux");
        const int port = 1;
        if (int.TryParse(File.ReadAllText("/proc/sys/net/ipv4/ip_unprivileged_port_start").Trim(), out int unprivileged) && unprivileged <= port)
            Assert.Skip("every port is unprivileged on this machine (net.ipv4.ip_unprivileged_port_start)");
        // As root every port can be bound: run the server as an ordinary user.
        bool root = Environment.UserName == "root";
        if (root && !File.Exists("/usr/sbin/runuser") && !File.Exists("/sbin/runuser"))
            Assert.Skip("the tests run as root and runuser is missing");
        await using var server = ServerProcess.StartAs(root ? "nobody" : null,
            "-m", SharedData.OracleModelPath, "--host", "127.0.0.1", "--port", port.ToString(System.Globalization.CultureInfo.InvariantCulture));
        Assert.Equal(1, await server.ExitCodeAsync());
        AssertOneLine(server.Stderr);
        Assert.Contains($"cannot listen on http://127.0.0.1:{port}", server.Stderr);
        Assert.Contains("denied", server.Stderr, StringComparison.OrdinalIgnoreCase);
        Assert.DoesNotContain("   at ", server.Stdout);
    }

    [Theory]
    [InlineData("99999")]
    [InlineData("-1")]
    [InlineData("http")]
    public async Task A_port_out_of_range_is_one_line_and_a_non_zero_exit(string port)
    {
        await using var server = ServerProcess.Start("-m", SharedData.OracleModelPath, "--port", port);
        Assert.Equal(2, await server.ExitCodeAsync());
        AssertOneLine(server.Stderr);
        Assert.Contains(port, server.Stderr);
    }

    [Fact]
    public async Task A_model_that_fails_to_load_at_start_exits_non_zero_with_the_error()
    {
        string path = Path.Combine(Path.GetTempPath(), $"bitnet-broken-{Guid.NewGuid():N}.gguf");
        await File.WriteAllTextAsync(path, "GGUF but not really a model file", Ct);
        try
        {
            await using var server = ServerProcess.Start("-m", path, "--port", "0");
            Assert.Equal(1, await server.ExitCodeAsync());
            Assert.Contains("the model failed to load", server.Stderr);
            Assert.Contains(Path.GetFileName(path), server.Stderr);
            Assert.DoesNotContain("   at ", server.Stderr + server.Stdout);
        }
        finally
        {
            File.Delete(path);
        }
    }

    [Fact]
    public async Task A_request_after_sigterm_gets_503_and_a_second_sigterm_stops_the_server_at_once()
    {
        if (OperatingSystem.IsWindows())
            Assert.Skip("SIGTERM is a POSIX signal");
        await using var server = ServerProcess.Start("-m", SharedData.OracleModelPath, "--host", "127.0.0.1", "--port", "0");
        string url = await server.ListeningAsync();
        await server.ReadyAsync();
        using var http = new HttpClient { BaseAddress = new Uri(url) };
        // A stream that is never read past its first frame: it stays in flight, so the drain keeps the
        // listener open (for the 30 s default shutdown timeout) however long the next steps take.
        using HttpResponseMessage stream = await http.SendAsync(new HttpRequestMessage(HttpMethod.Post, "/v1/completions")
        {
            Content = new StringContent("""{"prompt":"x","max_tokens":4000,"stream":true}""", Encoding.UTF8, "application/json"),
        }, HttpCompletionOption.ResponseHeadersRead, Ct);
        var reader = new StreamReader(await stream.Content.ReadAsStreamAsync(Ct));
        Assert.StartsWith("data: ", await reader.ReadLineAsync(Ct));

        server.Terminate();
        using var fresh = new HttpClient { BaseAddress = new Uri(url) }; // a new connection, as a new client makes
        HttpResponseMessage refused = await fresh.PostAsync("/v1/chat/completions",
            new StringContent("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}""", Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Contains("shutting_down", await refused.Content.ReadAsStringAsync(Ct));

        // The stream would hold the drain for the whole timeout; a second signal does not wait for it.
        server.Terminate();
        Assert.Equal(0, await server.ExitCodeAsync(TimeSpan.FromSeconds(20)));
        Assert.DoesNotContain("   at ", server.Stderr + server.Stdout);
    }
}
