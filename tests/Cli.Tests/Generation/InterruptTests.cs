using System.Diagnostics;
using System.Text;
using BitNet.Cli.Tests.Errors;
using BitNet.Tests.Shared;

namespace BitNet.Cli.Tests.Generation;

/// <summary>Ctrl+C (SIGINT) sent to the `bitnet` executable while it generates, as a terminal sends it.</summary>
public sealed class InterruptTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;
    private static string Model => SharedData.OracleModelPath;

    /// <summary>The executable with its output read as it comes, character by character (generated text has no line
    /// ends). A generation runs to the end of its 4096-token context unless stopped: long enough to interrupt.</summary>
    private sealed class Running : IDisposable
    {
        private readonly StringBuilder _stdout = new(), _stderr = new();
        private Task _readers = Task.CompletedTask;
        public required Process Process { get; init; }

        public static Running Start(params string[] args)
        {
            // A process started in the background by a non-interactive shell (as CI may run the tests) inherits SIGINT
            // ignored, and .NET keeps an inherited SIGINT ignored: give the executable the default disposition back.
            var info = new ProcessStartInfo(OperatingSystem.IsLinux() ? "env" : CliProcess.Executable)
            {
                RedirectStandardOutput = true,
                RedirectStandardError = true,
                RedirectStandardInput = true,
                UseShellExecute = false,
                StandardOutputEncoding = Encoding.UTF8,
            };
            if (OperatingSystem.IsLinux())
            {
                info.ArgumentList.Add("--default-signal=INT");
                info.ArgumentList.Add(CliProcess.Executable);
            }
            foreach (string arg in args)
                info.ArgumentList.Add(arg);
            var running = new Running { Process = Process.Start(info)! };
            running._readers = Task.WhenAll(Read(running.Process.StandardOutput, running._stdout), Read(running.Process.StandardError, running._stderr));
            return running;
        }

        private static async Task Read(StreamReader reader, StringBuilder into)
        {
            var buffer = new char[4096];
            int read;
            while ((read = await reader.ReadAsync(buffer)) > 0)
                lock (into) into.Append(buffer, 0, read);
        }

        public string Stdout { get { lock (_stdout) return _stdout.ToString(); } }
        public string Stderr { get { lock (_stderr) return _stderr.ToString(); } }

        /// <summary>Waits until <paramref name="condition"/> holds; fails when the process ends first.</summary>
        public async Task WaitForAsync(Func<Running, bool> condition)
        {
            var clock = Stopwatch.StartNew();
            while (!condition(this))
            {
                if (Process.HasExited)
                    Assert.Fail($"exited early ({Process.ExitCode}): {Stderr}");
                if (clock.Elapsed > TimeSpan.FromMinutes(2))
                    Assert.Fail($"timed out; stdout: {Stdout}; stderr: {Stderr}");
                await Task.Delay(50, Ct);
            }
        }

        public async Task SigintAsync()
        {
            using Process kill = Process.Start("kill", ["-INT", Process.Id.ToString(System.Globalization.CultureInfo.InvariantCulture)]);
            await kill.WaitForExitAsync(Ct);
            Assert.Equal(0, kill.ExitCode);
        }

        public async Task<int> ExitAsync()
        {
            await Process.WaitForExitAsync(Ct).WaitAsync(TimeSpan.FromMinutes(1), Ct);
            await _readers.WaitAsync(TimeSpan.FromMinutes(1), Ct);
            return Process.ExitCode;
        }

        public void Dispose()
        {
            if (!Process.HasExited)
                Process.Kill();
            Process.Dispose();
        }
    }

    [Fact]
    public async Task Ctrl_c_stops_generate_which_ends_the_line_prints_its_timings_and_exits_130()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), "SIGINT is a POSIX signal");
        const string prompt = "Once upon a time";
        using var bitnet = Running.Start("generate", "-m", Model, "-p", prompt, "-n", "100000", "--ignore-eos", "-t", "1");
        await bitnet.WaitForAsync(b => b.Stdout.Length > prompt.Length + 10);   // generated text follows the echoed prompt
        await bitnet.SigintAsync();

        int exit = await bitnet.ExitAsync();

        Assert.Equal(130, exit);
        Assert.Contains("finish: cancelled", bitnet.Stderr);
        Assert.DoesNotContain("   at ", bitnet.Stderr);
    }

    [Fact]
    public async Task Ctrl_c_during_a_chat_reply_stops_the_reply_and_the_chat_goes_on()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux() || OperatingSystem.IsMacOS(), "SIGINT is a POSIX signal");
        using var bitnet = Running.Start("chat", "-m", Model, "-n", "100000", "-s", "1", "-t", "1");
        await bitnet.WaitForAsync(b => b.Stderr.Contains("/exit or end of input", StringComparison.Ordinal));
        await bitnet.Process.StandardInput.WriteLineAsync("tell me a long story");
        await bitnet.Process.StandardInput.FlushAsync(Ct);
        await bitnet.WaitForAsync(b => b.Stdout.Length > "> ".Length + 10);   // the reply is coming (it would run to the end of the context)
        await bitnet.SigintAsync();
        // Stopped, the reply ends its line and the next prompt follows it.
        await bitnet.WaitForAsync(b => b.Stdout.Contains("\n> ", StringComparison.Ordinal));
        await bitnet.Process.StandardInput.WriteLineAsync("/exit");
        await bitnet.Process.StandardInput.FlushAsync(Ct);

        int exit = await bitnet.ExitAsync();

        Assert.Equal(0, exit);
        // Stopped within a few tokens: the reply did not run on to the end of the 4096-token context.
        Assert.True(bitnet.Stdout.Length < 4000, $"the reply went on after Ctrl+C: {bitnet.Stdout.Length} characters");
        Assert.DoesNotContain("the context was full", bitnet.Stderr, StringComparison.Ordinal);
        Assert.StartsWith("> ", bitnet.Stdout, StringComparison.Ordinal);
        Assert.Contains("\n> ", bitnet.Stdout, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", bitnet.Stderr);
    }
}
