using System.Text.Json;
using System.Text.Json.Serialization;

namespace BitNet.Cli.Cost;

/// <summary>How a piece of hardware is billed.</summary>
public enum PriceKind
{
    /// <summary>A fixed price per hour whether busy or idle (a VM, an Azure Premium instance).</summary>
    Hourly,
    /// <summary>AWS Lambda: per GB-second of execution plus per request; idle costs nothing.</summary>
    Lambda,
}

/// <summary>One row of the price table. Lambda rows are per architecture; the memory comes from the hardware name.</summary>
public sealed record PriceEntry
{
    public required string Name { get; init; }
    public PriceKind Kind { get; init; } = PriceKind.Hourly;
    public double HourlyUsd { get; init; }
    public double PerGbSecondUsd { get; init; }
    public double PerMillionRequestsUsd { get; init; }
    public string Description { get; init; } = "";
    public string Source { get; init; } = "";
}

/// <summary>What a benchmark run is billed at, resolved from the table (and the tier memory for Lambda).</summary>
public sealed record ResolvedPrice(string Hardware, PriceKind Kind, double HourlyUsd, double PerGbSecondUsd, double PerRequestUsd, double? MemoryGb, string Source);

/// <summary>
/// Built-in prices (us-east-1 / East US list prices, see docs/serverless-platforms.md §A8 and §C6;
/// the VM rows are on-demand list prices to verify before quoting), overridable from a JSON file
/// (<c>--prices FILE</c>: an array of entries, which replace built-in rows of the same name).
/// </summary>
public sealed class PriceTable
{
    public static IReadOnlyList<PriceEntry> BuiltIn { get; } =
    [
        new() { Name = "lambda-arm64", Kind = PriceKind.Lambda, PerGbSecondUsd = 0.0000133334, PerMillionRequestsUsd = 0.20,
            Description = "AWS Lambda arm64 (Graviton2); name as lambda-arm64-<MB>", Source = "AWS Lambda pricing, us-east-1" },
        new() { Name = "lambda-x86_64", Kind = PriceKind.Lambda, PerGbSecondUsd = 0.0000166667, PerMillionRequestsUsd = 0.20,
            Description = "AWS Lambda x86_64; name as lambda-x86_64-<MB>", Source = "AWS Lambda pricing, us-east-1" },
        new() { Name = "azure-ep1", HourlyUsd = 0.205, Description = "Azure Functions Elastic Premium EP1 (1 core, 3.5 GB), one always-ready instance", Source = "third-party estimate (c3x.dev), verify" },
        new() { Name = "azure-ep2", HourlyUsd = 0.410, Description = "Azure Functions Elastic Premium EP2 (2 cores, 7 GB)", Source = "2 x EP1 estimate, verify" },
        new() { Name = "azure-ep3", HourlyUsd = 0.820, Description = "Azure Functions Elastic Premium EP3 (4 cores, 14 GB)", Source = "4 x EP1 estimate, verify" },
        new() { Name = "aws-c7g.xlarge", HourlyUsd = 0.145, Description = "4 Graviton3 vCPU, 8 GiB", Source = "EC2 on-demand list price us-east-1 (approx.), verify" },
        new() { Name = "aws-c7i.xlarge", HourlyUsd = 0.1785, Description = "4 x86 vCPU, 8 GiB", Source = "EC2 on-demand list price us-east-1 (approx.), verify" },
        new() { Name = "aws-g4dn.xlarge", HourlyUsd = 0.526, Description = "NVIDIA T4 GPU, 4 vCPU, 16 GiB", Source = "EC2 on-demand list price us-east-1 (approx.), verify" },
        new() { Name = "aws-g5.xlarge", HourlyUsd = 1.006, Description = "NVIDIA A10G GPU, 4 vCPU, 16 GiB", Source = "EC2 on-demand list price us-east-1 (approx.), verify" },
        new() { Name = "local", HourlyUsd = 0, Description = "your own machine (pass --price-per-hour to charge for it)", Source = "none" },
    ];

    private readonly Dictionary<string, PriceEntry> _entries;

    public PriceTable(IEnumerable<PriceEntry> entries) =>
        _entries = entries.ToDictionary(e => e.Name, StringComparer.OrdinalIgnoreCase);

    public static PriceTable Default { get; } = new(BuiltIn);

    public IEnumerable<PriceEntry> Entries => _entries.Values.OrderBy(e => e.Name, StringComparer.Ordinal);

    /// <summary>The built-in table with the file's rows added or replacing rows of the same name.</summary>
    public static PriceTable WithOverrides(string path)
    {
        if (path.Length == 0)
            throw new ArgumentException("--prices is empty; give a JSON price file");
        if (Directory.Exists(path))
            throw new ArgumentException($"'{path}' is a directory; --prices takes a JSON price file");
        if (!File.Exists(path))
            throw new FileNotFoundException($"price file '{path}' not found", path);
        List<PriceEntry>? overrides;
        try
        {
            overrides = JsonSerializer.Deserialize(File.ReadAllText(path), CostJsonContext.Default.ListPriceEntry);
        }
        catch (JsonException e)
        {
            // The message, not JsonException's: that names the .NET type it was converting to.
            string where = e.LineNumber is long line ? $" (line {line + 1}, byte {e.BytePositionInLine + 1})" : "";
            throw new InvalidDataException($"price file {path} is not a JSON array of {{\"name\", \"kind\": \"hourly\"|\"lambda\", \"hourlyUsd\" | \"perGbSecondUsd\", \"perMillionRequestsUsd\"}}{where}", e);
        }
        var merged = BuiltIn.ToDictionary(e => e.Name, StringComparer.OrdinalIgnoreCase);
        foreach (var entry in overrides ?? [])
        {
            if (string.IsNullOrWhiteSpace(entry.Name))
                throw new InvalidDataException($"price file {path}: an entry has no name");
            merged[entry.Name] = entry;
        }
        return new PriceTable(merged.Values);
    }

    /// <summary>
    /// Resolves a hardware name. <c>lambda-arm64-4096</c> = the lambda-arm64 row at 4,096 MB. An explicit
    /// <paramref name="pricePerHour"/> wins and makes any name (even unknown) an hourly machine.
    /// </summary>
    public ResolvedPrice Resolve(string hardware, double? pricePerHour = null)
    {
        if (pricePerHour is { } hourly)
        {
            if (hourly < 0)
                throw new ArgumentException($"--price-per-hour {hourly} is negative");
            return new ResolvedPrice(hardware, PriceKind.Hourly, hourly, 0, 0, null, "--price-per-hour");
        }
        if (_entries.TryGetValue(hardware, out var entry))
        {
            if (entry.Kind == PriceKind.Lambda)
                throw new ArgumentException($"'{hardware}' needs the memory size: {hardware}-<MB>, e.g. {hardware}-2048");
            return new ResolvedPrice(hardware, PriceKind.Hourly, entry.HourlyUsd, 0, 0, null, entry.Source);
        }
        int dash = hardware.LastIndexOf('-');
        if (dash > 0 && _entries.TryGetValue(hardware[..dash], out var lambda) && lambda.Kind == PriceKind.Lambda)
        {
            if (!int.TryParse(hardware[(dash + 1)..], out int memoryMb) || memoryMb is < 128 or > 10240)
                throw new ArgumentException($"'{hardware}': the memory after '-' must be 128-10240 MB");
            double gb = memoryMb / 1024.0;
            // A Lambda environment busy for a whole hour: the comparable "hourly" figure.
            return new ResolvedPrice(hardware, PriceKind.Lambda, gb * 3600 * lambda.PerGbSecondUsd, lambda.PerGbSecondUsd,
                lambda.PerMillionRequestsUsd / 1e6, gb, lambda.Source);
        }
        throw new ArgumentException(
            $"unknown hardware '{hardware}'; known: {string.Join(", ", Entries.Select(e => e.Kind == PriceKind.Lambda ? e.Name + "-<MB>" : e.Name))}; " +
            "or pass --price-per-hour, or add it with --prices FILE");
    }
}
