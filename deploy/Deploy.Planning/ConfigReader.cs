using System.Text.Json;

namespace BitNet.Deploy.Planning;

/// <summary>
/// Builds a <see cref="DeploymentConfig"/> from Pulumi stack settings (<c>bitnet:cloud</c>,
/// <c>bitnet:modelSource</c>, <c>bitnet:imageTag</c>, and the structured <c>bitnet:aws</c> /
/// <c>bitnet:azure</c> objects, which Pulumi hands over as JSON text). Unknown keys, wrong types and
/// bad enum values are errors with their path, collected together with the validation errors.
/// </summary>
public static class ConfigReader
{
    /// <param name="get">Reads one key of the <c>bitnet</c> namespace (Pulumi: <c>new Config("bitnet").Get</c>).</param>
    public static DeploymentConfig Read(string project, string stack, Func<string, string?> get)
    {
        var errors = new List<ConfigError>();
        var config = new DeploymentConfig { Project = project, Stack = stack };

        string? cloud = get("cloud");
        switch (cloud?.ToLowerInvariant())
        {
            case null or "aws": config = config with { Cloud = Cloud.Aws }; break;
            case "azure": config = config with { Cloud = Cloud.Azure }; break;
            default: errors.Add(new("cloud", $"'{cloud}' must be 'aws' or 'azure'")); break;
        }
        if (get("modelSource") is { } model) config = config with { ModelSource = model };
        // The model's real size for the memory check: bitnet:modelBytes, else the local file's.
        if (get("modelBytes") is { } sizeText)
        {
            if (long.TryParse(sizeText, System.Globalization.NumberStyles.None, System.Globalization.CultureInfo.InvariantCulture, out long size) && size > 0)
                config = config with { ModelBytes = size };
            else
                errors.Add(new("modelBytes", $"'{sizeText}' must be the model file's size in bytes"));
        }
        else if (!config.ModelSource.Contains("://", StringComparison.Ordinal) && File.Exists(config.ModelSource))
            config = config with { ModelBytes = new FileInfo(config.ModelSource).Length };
        if (get("imageTag") is { } tag) config = config with { ImageTag = tag };
        if (get("aws") is { } awsJson && Parse(awsJson, "aws", errors) is { } aws)
            config = config with { Aws = ReadAws(aws, errors) };
        if (get("azure") is { } azureJson && Parse(azureJson, "azure", errors) is { } azure)
            config = config with { Azure = ReadAzure(azure, errors) };

        // Validation runs on whatever could be read (an unreadable value keeps its default), so one run lists
        // every problem; a place the reader already reported is not reported a second time.
        var readErrors = errors.ToList();
        errors.AddRange(ConfigValidator.Validate(config).Where(v => !readErrors.Any(r => Within(v.Path, r.Path))));
        if (errors.Count > 0)
            throw new DeploymentConfigException(errors);
        return config;
    }

    private static bool Within(string path, string reported) =>
        path == reported || path.StartsWith(reported + ".", StringComparison.Ordinal) || path.StartsWith(reported + "[", StringComparison.Ordinal);

    private static JsonElement? Parse(string json, string path, List<ConfigError> errors)
    {
        try
        {
            using var document = JsonDocument.Parse(json);
            if (document.RootElement.ValueKind == JsonValueKind.Object)
                return document.RootElement.Clone();
            errors.Add(new(path, "must be an object"));
        }
        catch (JsonException e)
        {
            errors.Add(new(path, $"is not valid JSON ({e.Message})"));
        }
        return null;
    }

    private static AwsConfig ReadAws(JsonElement json, List<ConfigError> errors)
    {
        var c = new AwsConfig();
        foreach (var p in json.EnumerateObject())
        {
            string path = $"aws.{p.Name}";
            switch (p.Name)
            {
                case "region": c = c with { Region = Str(p.Value, path, errors) ?? c.Region }; break;
                case "architecture":
                    c = Str(p.Value, path, errors) switch
                    {
                        "arm64" => c with { Architecture = LambdaArchitecture.Arm64 },
                        "x86_64" => c with { Architecture = LambdaArchitecture.X86_64 },
                        null => c,
                        var other => Fail(c, errors, path, $"'{other}' must be 'arm64' or 'x86_64'"),
                    };
                    break;
                case "timeoutSeconds": c = c with { TimeoutSeconds = Int(p.Value, path, errors) ?? c.TimeoutSeconds }; break;
                case "ephemeralStorageMb": c = c with { EphemeralStorageMb = Int(p.Value, path, errors) ?? c.EphemeralStorageMb }; break;
                case "urlAuth":
                    c = Str(p.Value, path, errors) switch
                    {
                        "NONE" => c with { UrlAuth = UrlAuth.None },
                        "AWS_IAM" => c with { UrlAuth = UrlAuth.AwsIam },
                        null => c,
                        var other => Fail(c, errors, path, $"'{other}' must be 'NONE' or 'AWS_IAM'"),
                    };
                    break;
                case "cors": c = c with { Cors = ReadCors(p.Value, path, errors) }; break;
                case "keepWarmRateMinutes": c = c with { KeepWarmRateMinutes = Int(p.Value, path, errors) ?? c.KeepWarmRateMinutes }; break;
                case "logRetentionDays": c = c with { LogRetentionDays = Int(p.Value, path, errors) ?? c.LogRetentionDays }; break;
                case "keepImages": c = c with { KeepImages = Int(p.Value, path, errors) ?? c.KeepImages }; break;
                case "tiers":
                    c = c with { Tiers = Array(p.Value, path, errors).Select((e, i) => ReadLambdaTier(e, $"{path}[{i}]", errors)).ToList() };
                    break;
                default: errors.Add(new(path, "unknown setting")); break;
            }
        }
        return c;
    }

    private static LambdaTierConfig ReadLambdaTier(JsonElement e, string path, List<ConfigError> errors)
    {
        if (e.ValueKind == JsonValueKind.Number) // shorthand: tiers: [2048, 4096]
            return new LambdaTierConfig(Int(e, path, errors) ?? 0);
        var tier = new LambdaTierConfig(0);
        bool hasMemory = false;
        foreach (var p in Object(e, path, errors))
        {
            string at = $"{path}.{p.Name}";
            switch (p.Name)
            {
                case "memoryMb": tier = tier with { MemoryMb = Int(p.Value, at, errors) ?? 0 }; hasMemory = true; break;
                case "provisionedConcurrency": tier = tier with { ProvisionedConcurrency = Int(p.Value, at, errors) ?? 0 }; break;
                case "keepWarm": tier = tier with { KeepWarm = Bool(p.Value, at, errors) }; break;
                default: errors.Add(new(at, "unknown setting")); break;
            }
        }
        if (!hasMemory && e.ValueKind == JsonValueKind.Object)
            errors.Add(new($"{path}.memoryMb", "is required"));
        return tier;
    }

    private static CorsConfig ReadCors(JsonElement e, string path, List<ConfigError> errors)
    {
        var c = new CorsConfig();
        foreach (var p in Object(e, path, errors))
        {
            string at = $"{path}.{p.Name}";
            switch (p.Name)
            {
                case "allowOrigins": c = c with { AllowOrigins = Strings(p.Value, at, errors) }; break;
                case "allowMethods": c = c with { AllowMethods = Strings(p.Value, at, errors) }; break;
                case "allowHeaders": c = c with { AllowHeaders = Strings(p.Value, at, errors) }; break;
                case "exposeHeaders": c = c with { ExposeHeaders = Strings(p.Value, at, errors) }; break;
                case "allowCredentials": c = c with { AllowCredentials = Bool(p.Value, at, errors) ?? false }; break;
                case "maxAgeSeconds": c = c with { MaxAgeSeconds = Int(p.Value, at, errors) ?? c.MaxAgeSeconds }; break;
                default: errors.Add(new(at, "unknown setting")); break;
            }
        }
        return c;
    }

    private static AzureConfig ReadAzure(JsonElement json, List<ConfigError> errors)
    {
        var c = new AzureConfig();
        foreach (var p in json.EnumerateObject())
        {
            string path = $"azure.{p.Name}";
            switch (p.Name)
            {
                case "location": c = c with { Location = Str(p.Value, path, errors) ?? c.Location }; break;
                case "nameSuffix": c = c with { NameSuffix = Str(p.Value, path, errors) ?? "" }; break;
                case "keepWarm": c = c with { KeepWarm = Bool(p.Value, path, errors) ?? c.KeepWarm }; break;
                case "keepWarmSchedule": c = c with { KeepWarmSchedule = Str(p.Value, path, errors) ?? c.KeepWarmSchedule }; break;
                case "corsAllowedOrigins": c = c with { CorsAllowedOrigins = Strings(p.Value, path, errors) }; break;
                case "tiers":
                    c = c with { Tiers = Array(p.Value, path, errors).Select((e, i) => ReadAzureTier(e, $"{path}[{i}]", errors)).ToList() };
                    break;
                default: errors.Add(new(path, "unknown setting")); break;
            }
        }
        return c;
    }

    private static AzureTierConfig ReadAzureTier(JsonElement e, string path, List<ConfigError> errors)
    {
        if (e.ValueKind == JsonValueKind.String) // shorthand: tiers: ["EP1"]
            return new AzureTierConfig(e.GetString()!);
        var tier = new AzureTierConfig("");
        foreach (var p in Object(e, path, errors))
        {
            string at = $"{path}.{p.Name}";
            switch (p.Name)
            {
                case "sku": tier = tier with { Sku = Str(p.Value, at, errors) ?? "" }; break;
                case "alwaysReady": tier = tier with { AlwaysReady = Int(p.Value, at, errors) ?? tier.AlwaysReady }; break;
                case "preWarmed": tier = tier with { PreWarmed = Int(p.Value, at, errors) ?? tier.PreWarmed }; break;
                case "maximumElasticWorkers": tier = tier with { MaximumElasticWorkers = Int(p.Value, at, errors) ?? tier.MaximumElasticWorkers }; break;
                default: errors.Add(new(at, "unknown setting")); break;
            }
        }
        return tier;
    }

    private static T Fail<T>(T value, List<ConfigError> errors, string path, string message)
    {
        errors.Add(new(path, message));
        return value;
    }

    private static string? Str(JsonElement e, string path, List<ConfigError> errors) =>
        e.ValueKind == JsonValueKind.String ? e.GetString() : Fail<string?>(null, errors, path, $"must be a string, not {e.ValueKind}");

    private static int? Int(JsonElement e, string path, List<ConfigError> errors) =>
        e.ValueKind == JsonValueKind.Number && e.TryGetInt32(out int v) ? v
        // Pulumi config set with `pulumi config set` (no --path) arrives as strings.
        : e.ValueKind == JsonValueKind.String && int.TryParse(e.GetString(), out int s) ? s
        : Fail<int?>(null, errors, path, $"must be a whole number, not {e}");

    private static bool? Bool(JsonElement e, string path, List<ConfigError> errors) => e.ValueKind switch
    {
        JsonValueKind.True => true,
        JsonValueKind.False => false,
        JsonValueKind.String when bool.TryParse(e.GetString(), out bool b) => b,
        _ => Fail<bool?>(null, errors, path, $"must be true or false, not {e}"),
    };

    private static IEnumerable<JsonElement> Array(JsonElement e, string path, List<ConfigError> errors) =>
        e.ValueKind == JsonValueKind.Array ? e.EnumerateArray().ToList() : Fail<IEnumerable<JsonElement>>([], errors, path, "must be a list");

    private static IEnumerable<JsonProperty> Object(JsonElement e, string path, List<ConfigError> errors) =>
        e.ValueKind == JsonValueKind.Object ? e.EnumerateObject().ToList() : Fail<IEnumerable<JsonProperty>>([], errors, path, "must be an object");

    private static IReadOnlyList<string> Strings(JsonElement e, string path, List<ConfigError> errors) =>
        [.. Array(e, path, errors).Select((x, i) => Str(x, $"{path}[{i}]", errors)).OfType<string>()];
}
