using System.Text.Json.Serialization;

namespace BitNet.Cli.Cost;

/// <summary>The server sent nothing for <see cref="BenchSettings.IdleTimeout"/>: the run stops, since every later request would wait as long.</summary>
public sealed class ServerSilentException(Uri url, TimeSpan limit) : HttpRequestException(
    string.Create(System.Globalization.CultureInfo.InvariantCulture,
        $"{url} sent nothing for {limit.TotalSeconds:0.###} s; stopped waiting (--idle-timeout sets how long a server may stay silent)"));

/// <summary>
/// Why a run of several measurements (a sweep's levels, the tiers) stopped before its last one. What was
/// measured before it is still reported, marked partial: a sweep can take many minutes.
/// </summary>
public static class RunInterruption
{
    /// <summary>The reason given when the user stops the run (Ctrl-C or SIGTERM).</summary>
    public const string CancelledReason = "the run was cancelled (Ctrl-C or a termination signal)";

    /// <summary>The shell's code for a run ended by Ctrl-C, which `generate` returns too.</summary>
    public const int CancelledExitCode = 130;

    /// <summary>Whether <paramref name="e"/> is the cancellation the user asked for through <paramref name="token"/>.</summary>
    public static bool IsCancellation(Exception e, CancellationToken token) => e is OperationCanceledException && token.IsCancellationRequested;

    /// <summary>The reason for a report: once the user cancelled, whatever failed failed because of it; else the error's message.</summary>
    public static string Reason(Exception e, CancellationToken token) => token.IsCancellationRequested ? CancelledReason : e.Message;

    /// <summary>"reason." without doubling a final full stop.</summary>
    public static string Sentence(string reason) => reason.TrimEnd('.') + ".";
}

/// <summary>A concurrency sweep that stopped at <paramref name="Concurrency"/>: why, and the levels never run.</summary>
public sealed record SweepInterruption(int Concurrency, string Reason, IReadOnlyList<int> NotRun);

/// <summary>A tier table that stopped at the tier of <paramref name="MemoryMb"/>: why, and the tiers never measured.</summary>
public sealed record TierInterruption(int MemoryMb, string Reason, IReadOnlyList<int> NotMeasured);

/// <summary>One measured request.</summary>
public sealed record RequestSample(double LatencySeconds, double? TtftSeconds, int Tokens, string? Error);

/// <summary>What a cost benchmark asks for.</summary>
public sealed record BenchSettings
{
    public required Uri Url { get; init; }
    public string Endpoint { get; init; } = "completions";
    public string Prompt { get; init; } = "Explain in a few sentences why the sky is blue.";
    public int MaxTokens { get; init; } = 64;
    public int Requests { get; init; } = 8;
    public int Concurrency { get; init; } = 1;
    public int Warmup { get; init; } = 2;
    public string? ApiKey { get; init; }
    public int? Pid { get; init; }
    public TimeSpan RequestTimeout { get; init; } = TimeSpan.FromMinutes(10);
    /// <summary>How long the server may send nothing, before its answer starts or between bytes of it (--idle-timeout).</summary>
    public TimeSpan IdleTimeout { get; init; } = TimeSpan.FromSeconds(DefaultIdleTimeoutSeconds);
    /// <summary>Longer than our server keeps a request silent: queued and starting, it answers (or refuses with 503) within
    /// its request deadline, <see cref="BitNet.Inference.Api.ApiOptions.DefaultRequestTimeoutSeconds"/> unless configured.</summary>
    public const int DefaultIdleTimeoutSeconds = BitNet.Inference.Api.ApiOptions.DefaultRequestTimeoutSeconds + 60;
    /// <summary>The most the peak-memory probes (/metrics, then /health) may take together.</summary>
    public TimeSpan ProbeTimeout { get; init; } = TimeSpan.FromSeconds(5);

    /// <summary>An http(s) base URL, ending in '/' so endpoints resolve under it; else an ArgumentException naming <paramref name="what"/>.</summary>
    public static Uri BaseUrl(string text, string what) =>
        Uri.TryCreate(text.TrimEnd('/') + "/", UriKind.Absolute, out Uri? uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0
            ? uri
            : throw new ArgumentException($"{what} '{text}' is not an http(s) URL");
}

public sealed record PriceInfo(string Kind, double HourlyUsd, double PerGbSecondUsd, double PerRequestUsd, double? MemoryGb, string Source);

public sealed record CostAtUtilisation(double Utilisation, double UsdPerMillionTokens);

public sealed record BenchNumbers(
    int Requests, int Errors, int Concurrency, int MaxTokens, long TotalTokens, double WallSeconds,
    double TokensPerSecond, double PerRequestTokensPerSecondP50, double TtftP50Ms, double LatencyP50Ms, double LatencyP99Ms,
    long? PeakMemoryBytes, string PeakMemorySource);

/// <summary>The file written to results/raw/{RunId}.json.</summary>
public sealed record BenchRun(
    string RunId, DateTimeOffset StartedAt, string Url, string Endpoint, string Model, string Hardware, PriceInfo Price,
    BenchNumbers Results, double HourlyUsd, IReadOnlyList<CostAtUtilisation> Cost, string Note);

[JsonSourceGenerationOptions(WriteIndented = true, PropertyNamingPolicy = JsonKnownNamingPolicy.CamelCase,
    UseStringEnumConverter = true, NumberHandling = JsonNumberHandling.AllowNamedFloatingPointLiterals,
    PropertyNameCaseInsensitive = true, ReadCommentHandling = System.Text.Json.JsonCommentHandling.Skip)]
[JsonSerializable(typeof(BenchRun))]
[JsonSerializable(typeof(List<PriceEntry>))]
[JsonSerializable(typeof(TierReport))]
internal sealed partial class CostJsonContext : JsonSerializerContext;
