using System.Text.Json.Serialization;

namespace BitNet.Cli.Cost;

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
