using System.Net;
using System.Net.Sockets;
using System.Text;
using BitNet.Hosts.Tests.Support;
using BitNet.Tests.Shared;

namespace BitNet.Hosts.Tests;

/// <summary>
/// bitnet-server as an operator runs it, a real process: a host it cannot bind is an error naming
/// it, the address printed is the one bound, a busy port or a model that fails to load ends the
/// process with one line and a non-zero exit, and a request racing SIGTERM gets 503.
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
    public async Task A_request_right_after_sigterm_gets_503_and_the_server_exits_cleanly()
    {
        if (OperatingSystem.IsWindows())
            Assert.Skip("SIGTERM is a POSIX signal");
        await using var server = ServerProcess.Start("-m", SharedData.OracleModelPath, "--host", "127.0.0.1", "--port", "0");
        string url = await server.ListeningAsync();
        await server.ReadyAsync();
        using var http = new HttpClient { BaseAddress = new Uri(url) };
        Assert.Equal(HttpStatusCode.OK, (await http.GetAsync("/health", Ct)).StatusCode);

        server.Terminate();
        using var fresh = new HttpClient { BaseAddress = new Uri(url) }; // a new connection, as a new client makes
        HttpResponseMessage refused = await fresh.PostAsync("/v1/chat/completions",
            new StringContent("""{"messages":[{"role":"user","content":"hi"}],"max_tokens":1}""", Encoding.UTF8, "application/json"), Ct);
        Assert.Equal(HttpStatusCode.ServiceUnavailable, refused.StatusCode);
        Assert.Contains("shutting_down", await refused.Content.ReadAsStringAsync(Ct));

        Assert.Equal(0, await server.ExitCodeAsync(TimeSpan.FromSeconds(30)));
    }
}
