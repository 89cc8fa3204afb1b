using Pulumi;
using Pulumi.Testing;

namespace BitNet.Deploy.Pulumi.Tests.Support;

/// <summary>
/// One run of the real program (<see cref="BitNetStack.Build"/>) under Pulumi's mocks, with the stack's
/// settings in <c>PULUMI_CONFIG</c> as the CLI sets them. Pulumi reads that variable once per deployment
/// and its mock deployments must not overlap, so runs are serialised.
/// </summary>
public sealed class ProgramRun
{
    private static readonly SemaphoreSlim OneAtATime = new(1, 1);

    public RecordingMocks Mocks { get; } = new();
    public IDictionary<string, object?> Outputs { get; private set; } = new Dictionary<string, object?>();

    /// <summary>Exception raised by the program (through the mock engine), or null.</summary>
    public Exception? Error { get; private set; }

    public static async Task<ProgramRun> RunAsync(StackConfig config)
    {
        var run = await TryRunAsync(config);
        return run.Error is null ? run : throw new InvalidOperationException($"the program failed: {run.Error.Message}", run.Error);
    }

    public static async Task<ProgramRun> TryRunAsync(StackConfig config)
    {
        var run = new ProgramRun();
        await OneAtATime.WaitAsync();
        string? previous = Environment.GetEnvironmentVariable("PULUMI_CONFIG");
        try
        {
            Environment.SetEnvironmentVariable("PULUMI_CONFIG", config.ToEnvironmentJson());
            var (_, outputs) = await Deployment.TestAsync(run.Mocks,
                new TestOptions { ProjectName = config.Project, StackName = config.Stack, IsPreview = false },
                () => BitNetStack.Build(StackConfig.RepositoryRoot));
            run.Outputs = outputs;
        }
        catch (Exception e)
        {
            run.Error = e;
        }
        finally
        {
            Environment.SetEnvironmentVariable("PULUMI_CONFIG", previous);
            OneAtATime.Release();
        }
        return run;
    }

    /// <summary>The custom resources the program registered (components left out), in registration order.</summary>
    public IReadOnlyList<MockResourceArgs> Registered =>
        [.. Mocks.Resources.Where(r => !r.Type!.StartsWith("bitnet:", StringComparison.Ordinal))];

    /// <summary>The one registered resource with this type token and logical name; its inputs.</summary>
    public Inputs Resource(string type, string name)
    {
        var matches = Mocks.Resources.Where(r => r.Type == type && r.Name == name).ToList();
        Assert.True(matches.Count == 1, $"expected one {type} named {name}, found {matches.Count}");
        return new Inputs($"{type} {name}", matches[0].Inputs);
    }

    public IReadOnlyList<MockCallArgs> CallsTo(string token) => [.. Mocks.Calls.Where(c => c.Token == token)];

    public async Task<string> OutputAsync(string name)
    {
        Assert.True(Outputs.TryGetValue(name, out object? value), $"no stack output {name}");
        return await ResolveAsync(Assert.IsType<Output<string>>(value));
    }

    public static Task<T> ResolveAsync<T>(Output<T> output)
    {
        var result = new TaskCompletionSource<T>(TaskCreationOptions.RunContinuationsAsynchronously);
        output.Apply(value => { result.TrySetResult(value); return value; });
        return result.Task.WaitAsync(TimeSpan.FromSeconds(30));
    }
}
