using System.Diagnostics;
using BitNet.Cli.Tests.Errors;
using BitNet.Tests.Shared;

namespace BitNet.Cli.Tests.Generation;

/// <summary>`bitnet generate` piped into a reader that stops early, as `| head` does.</summary>
public sealed class ClosedOutputTests
{
    [Fact]
    public async Task Generate_stops_quietly_when_the_reader_of_its_output_goes_away()
    {
        CancellationToken ct = TestContext.Current.CancellationToken;
        // head takes 20 bytes and leaves; the generation asked for would run on to the end of the context.
        var info = new ProcessStartInfo("bash")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
        };
        info.ArgumentList.Add("-c");
        info.ArgumentList.Add("""
            "$0" generate -m "$1" -p 'Once upon a time' -n 4000 --ignore-eos --temp 0 -c 4096 | head -c 20 > /dev/null
            echo "exit ${PIPESTATUS[0]}"
            """);
        info.ArgumentList.Add(CliProcess.Executable);
        info.ArgumentList.Add(SharedData.OracleModelPath);
        using Process bash = Process.Start(info)!;
        Task<string> stdout = bash.StandardOutput.ReadToEndAsync(ct);
        Task<string> stderr = bash.StandardError.ReadToEndAsync(ct);
        await bash.WaitForExitAsync(ct).WaitAsync(TimeSpan.FromMinutes(2), ct);

        Assert.Equal("exit 141", (await stdout).Trim());
        Assert.DoesNotContain("Exception", await stderr);
        Assert.DoesNotContain("error", await stderr);
    }
}
