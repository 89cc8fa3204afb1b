using System.Diagnostics;
using System.Text;

namespace BitNet.Hosts.Tests.Support;

/// <summary>bitnet-server (the Hosts.Server executable next to the tests), or another host executable, as a real
/// process with its output captured.</summary>
internal sealed class ServerProcess : IAsyncDisposable
{
    private readonly Process _process;
    private readonly StringBuilder _stdout = new();
    private readonly StringBuilder _stderr = new();
    private readonly TaskCompletionSource<string> _listening = new(TaskCreationOptions.RunContinuationsAsynchronously);
    private readonly TaskCompletionSource _ready = new(TaskCreationOptions.RunContinuationsAsynchronously);

    private ServerProcess(Process process) => _process = process;

    public static string Executable => Path.Combine(AppContext.BaseDirectory, OperatingSystem.IsWindows() ? "bitnet-server.exe" : "bitnet-server");

    public static ServerProcess Start(params string[] args) => StartAs(null, args);

    /// <summary>The server run as another user (through runuser; the tests must run as root), or as this one when null.</summary>
    public static ServerProcess StartAs(string? user, params string[] args) => Launch(Executable, user, null, args);

    /// <summary>Another host executable (a published binary, or the images' launcher script), as this user, with
    /// <paramref name="environment"/> set on top of the clean one the server gets.</summary>
    public static ServerProcess StartExecutable(string executable, IReadOnlyDictionary<string, string>? environment, params string[] args) =>
        Launch(executable, null, environment, args);

    private static ServerProcess Launch(string executable, string? user, IReadOnlyDictionary<string, string>? environment, string[] args)
    {
        var info = new ProcessStartInfo(user is null ? executable : "runuser")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        if (user is not null)
        {
            foreach (string arg in new[] { "-u", user, "--", executable })
                info.ArgumentList.Add(arg);
            info.Environment["HOME"] = Path.GetTempPath();
        }
        foreach (string arg in args)
            info.ArgumentList.Add(arg);
        // The server reads BITNET_* variables; none of the test machine's may leak in.
        foreach (string name in info.Environment.Keys.Where(k => k.StartsWith("BITNET_", StringComparison.Ordinal)).ToList())
            info.Environment.Remove(name);
        info.Environment["BITNET_PREFETCH_MODEL"] = "false";
        info.Environment["BITNET_THREADS"] = "1";
        foreach ((string name, string value) in environment ?? new Dictionary<string, string>())
            info.Environment[name] = value;
        var process = new Process { StartInfo = info, EnableRaisingEvents = true };
        var server = new ServerProcess(process);
        process.OutputDataReceived += (_, e) => server.OnLine(e.Data, server._stdout);
        process.ErrorDataReceived += (_, e) => server.OnLine(e.Data, server._stderr);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return server;
    }

    private void OnLine(string? line, StringBuilder into)
    {
        if (line is null)
            return;
        lock (into)
            into.AppendLine(line);
        const string listening = "listening on ";
        int at = line.IndexOf(listening, StringComparison.Ordinal);
        if (at >= 0)
            _listening.TrySetResult(line[(at + listening.Length)..].Split([';', ','])[0].Trim());
        if (line.Contains("' ready in ", StringComparison.Ordinal))
            _ready.TrySetResult();
    }

    public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }
    public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }
    public int Id => _process.Id;

    /// <summary>The first URL the server printed as bound.</summary>
    public Task<string> ListeningAsync(TimeSpan? timeout = null) => _listening.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(60));

    public Task ReadyAsync(TimeSpan? timeout = null) => _ready.Task.WaitAsync(timeout ?? TimeSpan.FromSeconds(120));

    /// <summary>Waits for the exit and returns the exit code (the output is complete then).</summary>
    public async Task<int> ExitCodeAsync(TimeSpan? timeout = null)
    {
        await _process.WaitForExitAsync().WaitAsync(timeout ?? TimeSpan.FromSeconds(60));
        _process.WaitForExit(); // drains the redirected streams
        return _process.ExitCode;
    }

    /// <summary>Sends SIGTERM, as `docker stop` or a process supervisor does.</summary>
    public void Terminate()
    {
        using Process kill = Process.Start("kill", ["-TERM", _process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)])!;
        kill.WaitForExit();
    }

    public async ValueTask DisposeAsync()
    {
        if (!_process.HasExited)
        {
            _process.Kill(entireProcessTree: true);
            await _process.WaitForExitAsync();
        }
        _process.Dispose();
    }
}
