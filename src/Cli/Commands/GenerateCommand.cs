using System.CommandLine;
using BitNet.Inference.Generation;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet generate -m MODEL -p TEXT -n N --temp T --seed S -t THREADS -c CTX [--top-k --top-p
/// --min-p --repeat-penalty] [--pre llama3|default]`: complete a prompt, streaming the text to
/// stdout as it is generated (the prompt first, like llama-cli) and timings to stderr.
/// </summary>
internal static class GenerateCommand
{
    public static Command Create() => Create(PipedOutput.OpenStandardOutput(), Console.Error);

    internal static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var options = new ModelCommandOptions();
        var prompt = new Option<string?>("--prompt", "-p") { Description = "Prompt text (special tokens such as <|eot_id|> are parsed)" };
        var file = ModelCommandOptions.PromptFileOption();
        var stop = new Option<string[]>("--stop", "-r")
        {
            Description = "Stop when this text is generated (repeatable); it is not printed",
            AllowMultipleArgumentsPerToken = false,
        };
        var ignoreEos = new Option<bool>("--ignore-eos") { Description = "Keep generating past end-of-generation tokens" };
        var noDisplayPrompt = new Option<bool>("--no-display-prompt") { Description = "Print only the generated text" };

        var command = new Command("generate", "Complete a prompt with a BitNet model, streaming the text");
        options.AddAllTo(command);
        command.Options.Add(prompt);
        command.Options.Add(file);
        command.Options.Add(stop);
        command.Options.Add(ignoreEos);
        command.Options.Add(noDisplayPrompt);

        command.SetAction(async (parse, cancellationToken) =>
        {
            bool lineOpen = false; // the prompt or generated text was printed without a line end
            try
            {
                int maxTokens = options.ParseMaxTokens(parse);
                SamplingOptions sampling = options.Sampling(parse);
                string text = ModelCommandOptions.PromptText(parse, prompt, file);
                using var engine = options.LoadEngine(parse);
                if (engine.Model.KvCacheNote is { } note)
                    await stderr.WriteLineAsync($"warning: {note}");
                var request = new GenerationRequest
                {
                    PromptTokens = engine.Tokenize(text),
                    MaxTokens = maxTokens,
                    Sampling = sampling,
                    Stop = parse.GetValue(stop) ?? [],
                    StopOnEndOfGeneration = !parse.GetValue(ignoreEos),
                };
                if (!parse.GetValue(noDisplayPrompt) && text.Length > 0)
                {
                    await stdout.WriteAsync(text);
                    lineOpen = true;
                }
                GenerationStats? stats = null;
                using var interrupt = Interrupt.Start(cancellationToken); // Ctrl+C stops the generation: the line ends, timings follow
                await foreach (var update in engine.GenerateAsync(request, interrupt.Token))
                {
                    if (update.Text.Length > 0)
                    {
                        await stdout.WriteAsync(update.Text);
                        await stdout.FlushAsync(CancellationToken.None);
                        lineOpen = true;
                    }
                    stats = update.Final ?? stats;
                }
                await stdout.WriteLineAsync();
                await stderr.WriteLineAsync(ModelCommandOptions.Timings(stats!));
                return stats!.FinishReason == FinishReason.Cancelled ? 130 : 0;
            }
            catch (OutputClosedException)
            {
                return 141; // what a shell reports for a writer ended by SIGPIPE: nobody reads, so nothing more is said
            }
            catch (Exception e) when (ModelCommandOptions.IsUserError(e))
            {
                if (lineOpen)
                    await stdout.WriteLineAsync(); // the error starts its own line, not glued to the echoed prompt
                await stderr.WriteLineAsync(ModelCommandOptions.ErrorLine(e));
                return 1;
            }
        });
        return command;
    }
}
