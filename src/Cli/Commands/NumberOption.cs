using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;

namespace BitNet.Cli.Commands;

/// <summary>
/// Numeric options whose parse errors read "--seed expects an integer; got 'abc'" instead of
/// naming a .NET type such as System.Nullable`1[System.UInt64]. Every numeric option of every
/// command is made here; <see cref="Must{T}(Option{T}, Func{T, bool}, string)"/> adds the range a
/// value must fall in ("--cores must be 1 or more; got 0"), checked while parsing like the type.
/// </summary>
internal static class NumberOption
{
    public static Option<T> Create<T>(string name, string description, T defaultValue, params string[] aliases) where T : struct, INumber<T>
    {
        var option = new Option<T>(name, aliases) { Description = description, DefaultValueFactory = _ => defaultValue };
        option.CustomParser = result => result.Tokens.Count == 0 ? defaultValue : Parse<T>(result, name) ?? defaultValue;
        return option;
    }

    public static Option<T?> Optional<T>(string name, string description, params string[] aliases) where T : struct, INumber<T>
    {
        var option = new Option<T?>(name, aliases) { Description = description };
        option.CustomParser = result => result.Tokens.Count == 0 ? null : Parse<T>(result, name);
        return option;
    }

    /// <summary>A given value must satisfy <paramref name="rule"/>, described as e.g. "from 1 to 8" or "0 or more" (NaN never does).</summary>
    public static Option<T> Must<T>(this Option<T> option, Func<T, bool> rule, string described) where T : struct, INumber<T>
    {
        option.Validators.Add(result => Check(result, option.Name, rule, described));
        return option;
    }

    /// <inheritdoc cref="Must{T}(Option{T}, Func{T, bool}, string)"/>
    public static Option<T?> Must<T>(this Option<T?> option, Func<T, bool> rule, string described) where T : struct, INumber<T>
    {
        option.Validators.Add(result => Check(result, option.Name, rule, described));
        return option;
    }

    private static void Check<T>(OptionResult result, string name, Func<T, bool> rule, string described) where T : struct, INumber<T>
    {
        // Only a value typed on the command line is checked (a default is in range), and only one that parsed:
        // a value that did not parse already has its error, and asking the result for it would throw.
        if (result.Implicit || result.Tokens.Count == 0 || !TryParse(result.Tokens[^1].Value, out T value))
            return;
        if (T.IsNaN(value) || !rule(value))
            result.AddError($"{name} must be {described}; got {result.Tokens[^1].Value}");
    }

    private static bool IsIntegral<T>() where T : struct, INumber<T> => T.IsInteger(T.One / (T.One + T.One)); // 1/2 is 0 only for integer types

    private static bool TryParse<T>(string text, out T value) where T : struct, INumber<T> =>
        T.TryParse(text, IsIntegral<T>() ? NumberStyles.Integer : NumberStyles.Float, CultureInfo.InvariantCulture, out value);

    private static T? Parse<T>(ArgumentResult result, string name) where T : struct, INumber<T>
    {
        string text = result.Tokens[^1].Value;
        if (TryParse(text, out T value))
            return value;
        result.AddError($"{name} expects {(IsIntegral<T>() ? "an integer" : "a number")}; got '{text}'");
        return null;
    }
}
