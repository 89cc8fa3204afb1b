using System.Globalization;
using BitNet.Inference.Generation;

namespace BitNet.Inference.Api;

/// <summary>
/// The accepted range of every sampling setting, for the API and the CLI alike: each check
/// returns null when the value is fine, else the message both of them show (named by the API's field).
/// </summary>
public static class SamplingRules
{
    public static string? Temperature(float? value) => Range(value, 0f, 2f, "temperature");
    public static string? TopP(float? value) => Range(value, 0f, 1f, "top_p");
    public static string? MinP(float? value) => Range(value, 0f, 1f, "min_p");
    public static string? RepeatPenalty(float? value) => Range(value, 0.0001f, 10f, "repeat_penalty");
    public static string? PresencePenalty(float? value) => Range(value, -2f, 2f, "presence_penalty");
    public static string? FrequencyPenalty(float? value) => Range(value, -2f, 2f, "frequency_penalty");

    public static string? RepeatLastN(int? value) => value is < -1
        ? $"repeat_last_n must be -1 (the whole context), 0 (off) or a positive count; got {value}"
        : null;

    public static string? Seed(long? value) => value is < -1
        ? $"seed must be -1 (random) or a non-negative integer; got {value}"
        : null;

    /// <summary>The sampler's seed for a valid <see cref="Seed"/> value: -1 or none draws a random one (llama.cpp).</summary>
    public static ulong? SeedValue(long? value) => value is >= 0 ? (ulong)value.Value : null;

    /// <summary>Every problem of a complete set of settings (the CLI checks its flags at once).</summary>
    public static IEnumerable<(string Field, string Message)> Problems(SamplingOptions options, long? seed)
    {
        (string, string?)[] checks =
        [
            ("temperature", Temperature(options.Temperature)),
            ("top_p", TopP(options.TopP)),
            ("min_p", MinP(options.MinP)),
            ("repeat_penalty", RepeatPenalty(options.RepeatPenalty)),
            ("presence_penalty", PresencePenalty(options.PresencePenalty)),
            ("frequency_penalty", FrequencyPenalty(options.FrequencyPenalty)),
            ("repeat_last_n", RepeatLastN(options.RepeatLastN)),
            ("seed", Seed(seed)),
        ];
        foreach (var (field, message) in checks)
            if (message is not null)
                yield return (field, message);
    }

    private static string? Range(float? value, float min, float max, string name) =>
        value is { } v && (float.IsNaN(v) || v < min || v > max)
            ? string.Create(CultureInfo.InvariantCulture, $"{name} must be between {min} and {max}; got {v}")
            : null;
}
