using System.CommandLine;
using System.CommandLine.Parsing;

namespace BitNet.Cli.Commands;

/// <summary>
/// Options that take one of a set of words (--lm-head, --weights, --pre, --chat-template, --shape, --endpoint,
/// --arch): help and completions list the choices, and any other value is a parse error of one line in the
/// style of <see cref="NumberOption"/>, "--lm-head must be one of f16, q8, screened; got 'bogus'", where
/// System.CommandLine's own AcceptOnlyFromAmong prints a multi-line list.
/// </summary>
internal static class ChoiceOption
{
    public static Option<T> OneOf<T>(this Option<T> option, params string[] choices)
    {
        option.CompletionSources.Add(choices);
        option.Validators.Add(result => Check(result, option.Name, choices));
        return option;
    }

    private static void Check(OptionResult result, string name, string[] choices)
    {
        foreach (Token token in result.Tokens)
            if (Array.IndexOf(choices, token.Value) < 0)
                result.AddError($"{name} must be one of {string.Join(", ", choices)}; got '{token.Value}'");
    }
}
