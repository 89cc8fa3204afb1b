using System.CommandLine;
using BitNet.Inference.Gguf;
using BitNet.Inference.Tokenization;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet tokenize -m MODEL (-p TEXT | -f FILE) [--no-bos] [--no-parse-special] [--pre llama3|default]`:
/// print the token ids as a JSON array. Reads only the tokenizer, not the weights.
/// </summary>
internal static class TokenizeCommand
{
    public static Command Create() => Create(Console.Out, Console.Error);

    internal static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var options = new ModelCommandOptions();
        var prompt = new Option<string?>("--prompt", "-p") { Description = "Text to tokenize" };
        var file = ModelCommandOptions.PromptFileOption();
        var noBos = new Option<bool>("--no-bos") { Description = "Do not prepend BOS (by default it is added when the file says add_bos_token)" };
        var noParseSpecial = new Option<bool>("--no-parse-special") { Description = "Treat special-token text such as <|eot_id|> as plain text" };

        var command = new Command("tokenize", "Print the token ids of a text as a JSON array");
        options.AddModelOptionsTo(command);
        command.Options.Add(prompt);
        command.Options.Add(file);
        command.Options.Add(noBos);
        command.Options.Add(noParseSpecial);

        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                string path = options.ResolveModelPath(parse);
                string? pre = parse.GetValue(options.Pre);
                string text = ModelCommandOptions.PromptText(parse, prompt, file);
                Tokenizer tokenizer;
                using (var gguf = GgufFile.Open(path))
                    tokenizer = Tokenizer.FromGguf(gguf, pre is null ? null : Tokenizer.ParsePreTokenizer(pre));
                int[] ids = tokenizer.Encode(text, addBos: tokenizer.AddBos && !parse.GetValue(noBos),
                    parseSpecial: !parse.GetValue(noParseSpecial));
                await stdout.WriteLineAsync("[" + string.Join(", ", ids) + "]");
                return 0;
            }
            catch (Exception e) when (ModelCommandOptions.IsUserError(e))
            {
                await stderr.WriteLineAsync(ModelCommandOptions.ErrorLine(e));
                return 1;
            }
        });
        return command;
    }
}
