using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Oracle;

/// <summary>
/// Published Native AOT `bitnet` binaries against the oracle, as a user runs them: tokenize the
/// prompt, generate 16 greedy tokens, write the logits of the oracle's tokens. What AOT can break
/// (code trimmed away, reflection that is not there, an instruction-set baseline the kernels do not
/// expect) fails here and nowhere else. scripts/test-aot.sh publishes the binaries (linux-x64, and
/// linux-arm64 run under qemu through a wrapper script) and names them in BITNET_AOT_BINARIES,
/// separated by ':'; without it these tests are skipped.
/// </summary>
[Trait("Category", TestCategories.Aot)]
public class AotBinaryOracleTests(ITestOutputHelper output)
{
    public const string BinariesVariable = "BITNET_AOT_BINARIES";

    private static string[] Binaries()
    {
        string? list = Environment.GetEnvironmentVariable(BinariesVariable);
        if (string.IsNullOrWhiteSpace(list))
            Assert.Skip($"{BinariesVariable} is not set (scripts/test-aot.sh sets it)");
        return list.Split(':', StringSplitOptions.RemoveEmptyEntries);
    }

    [Theory]
    [InlineData("capital")]
    [InlineData("chat")]
    public void Tokenize_generate_and_logits_reproduce_bitnet_cpp(string name)
    {
        var oracle = OracleCase.ByName(name);
        string model = SharedData.OracleModelPath;
        foreach (string binary in Binaries())
        {
            string ids = Run(binary, "tokenize", "-m", model, "-p", oracle.Prompt);
            Assert.Equal(oracle.PromptIds, JsonSerializer.Deserialize<int[]>(ids));

            string text = Run(binary, "generate", "-m", model, "-p", oracle.Prompt, "-n", "16", "--temp", "0", "--no-display-prompt", "-t", "2");
            Assert.Equal(oracle.GeneratedText, text.TrimEnd('\n'));

            string logitsFile = Path.Combine(Path.GetTempPath(), $"bitnet-aot-{Environment.ProcessId}-{name}.f32");
            try
            {
                Run(binary, "logits", "-m", model, "--tokens", string.Join(',', oracle.FedTokens),
                    "--prompt-length", oracle.PromptIds.Length.ToString(), "-o", logitsFile, "-t", "2");
                float[] ours = MemoryMarshal.Cast<byte, float>(File.ReadAllBytes(logitsFile)).ToArray();
                output.WriteLine($"{binary}: {OracleAcceptance.AssertWithinTolerance(name, oracle, ours)}");
            }
            finally
            {
                File.Delete(logitsFile);
            }
        }
    }

    /// <summary>Runs the binary to its end (at most 10 minutes: qemu is slow) and returns its standard output; a non-zero exit fails.</summary>
    private static string Run(string binary, params string[] arguments)
    {
        var start = new ProcessStartInfo(binary)
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            StandardOutputEncoding = Encoding.UTF8,
        };
        foreach (string argument in arguments) start.ArgumentList.Add(argument);
        using var process = Process.Start(start)!;
        Task<string> stdout = process.StandardOutput.ReadToEndAsync();
        Task<string> stderr = process.StandardError.ReadToEndAsync();
        if (!process.WaitForExit(TimeSpan.FromMinutes(10)))
        {
            process.Kill(entireProcessTree: true);
            Assert.Fail($"{binary} {arguments[0]} did not finish in 10 minutes");
        }
        process.WaitForExit();
        Assert.True(process.ExitCode == 0, $"{binary} {string.Join(' ', arguments.Take(1))} exited with {process.ExitCode}: {stderr.Result}");
        return stdout.Result;
    }
}
