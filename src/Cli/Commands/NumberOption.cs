using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;

namespace BitNet.Cli.Commands;

/// <summary>
/// Numeric options whose parse errors read "--seed expects an integer; got 'abc'" instead of
/// naming a .NET type such as System.Nullable`1[System.UInt64].
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

    private static T? Parse<T>(ArgumentResult result, string name) where T : struct, INumber<T>
    {
        string text = result.Tokens[^1].Value;
        bool integral = T.IsInteger(T.One / (T.One + T.One)); // 1/2 is 0 only for integer types
        NumberStyles styles = integral ? NumberStyles.Integer : NumberStyles.Float;
        if (T.TryParse(text, styles, CultureInfo.InvariantCulture, out T value))
            return value;
        result.AddError($"{name} expects {(integral ? "an integer" : "a number")}; got '{text}'");
        return null;
    }
}
