using System.Globalization;

namespace BitNet.Cli.Commands;

/// <summary>
/// The comma-separated whole numbers of every list option (logits --tokens, bench --parallel,
/// bench-cost --sweep, tiers --tiers and --n-predict), read by one rule: at least one number, each
/// in the option's range, no empty item ("1,,2" is a typo, not "1,2"); spaces around items are allowed.
/// </summary>
internal static class NumberList
{
    /// <summary>The numbers in the order given; throws an <see cref="ArgumentException"/> naming <paramref name="flag"/> and what it takes.</summary>
    public static int[] Parse(string text, string flag, string what, int min, int max)
    {
        string[] items = text.Split(',', StringSplitOptions.TrimEntries);
        if (items.All(item => item.Length == 0))
            throw new ArgumentException($"{flag} needs at least one {what}");
        if (items.Any(item => item.Length == 0))
            throw new ArgumentException($"{flag} '{text}' has an empty item between commas");
        string range = max == int.MaxValue ? $"{min} or more" : $"{min}-{max}";
        return [.. items.Select(item =>
            int.TryParse(item, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out int value) && value >= min && value <= max
                ? value
                : throw new ArgumentException($"{flag}: '{item}' is not {Article(what)} {what} (a whole number, {range})"))];
    }

    private static string Article(string noun) => "aeiou".Contains(noun[0], StringComparison.Ordinal) || noun.StartsWith("n_", StringComparison.Ordinal) ? "an" : "a";
}
