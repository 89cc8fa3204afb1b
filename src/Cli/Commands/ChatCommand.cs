using System.CommandLine;
using BitNet.Inference.Generation;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet chat -m MODEL [-sys SYSTEM]`: an interactive conversation like `run_inference.py -cnv`
/// (spec §6.5; the token stream is built by <see cref="ChatConversation"/>, and the engine keeps
/// the KV cache across turns). `/exit` or end of input ends the chat; works with piped stdin.
/// </summary>
internal static class ChatCommand
{
    public static Command Create() => Create(Console.In, Console.Out, Console.Error);

    internal static Command Create(TextReader stdin, TextWriter stdout, TextWriter stderr)
    {
        var options = new ModelCommandOptions();
        // llama.cpp's flags: -s is the seed, -sys the system prompt.
        var system = new Option<string?>("--system", "-sys") { Description = "System prompt (the first text evaluated, as `System: …`)" };
        var command = new Command("chat", "Chat with a BitNet model in the 2B4T chat format (type /exit or end input to quit)");
        options.AddAllTo(command);
        command.Options.Add(system);

        command.SetAction(async (parse, cancellationToken) =>
        {
            try
            {
                int maxTokens = options.ParseMaxTokens(parse);
                var sampling = options.Sampling(parse);
                using var engine = options.LoadEngine(parse);
                if (engine.Model.KvCacheNote is { } note)
                    await stderr.WriteLineAsync($"warning: {note}");

                var conversation = new ChatConversation(engine, parse.GetValue(system));
                if (!conversation.Fits(""))   // every turn would fail: say so once, before the prompt
                    throw new ArgumentException($"the system prompt (-sys) takes {conversation.SystemTokens} of the {engine.ContextLength} tokens of context, " +
                        "leaving no room for a turn; shorten it or raise --ctx-size");

                await stderr.WriteLineAsync($"chat with {engine.Model.Id} ({engine.ContextLength} tokens of context); /exit or end of input to quit");
                while (!cancellationToken.IsCancellationRequested)
                {
                    await stdout.WriteAsync("> ");
                    await stdout.FlushAsync(CancellationToken.None);
                    string? line = await stdin.ReadLineAsync(cancellationToken);
                    if (line is null || line.Trim() == "/exit")
                        break;
                    if (line.Trim().Length == 0)
                        continue;

                    GenerationStats? stats = null;
                    // Ctrl+C during a reply stops the reply and returns to the prompt (llama-cli's interactive mode);
                    // at the prompt it ends the chat.
                    using var interrupt = Interrupt.Start(cancellationToken);
                    try
                    {
                        await foreach (var update in conversation.SendAsync(line, maxTokens, sampling, interrupt.Token))
                        {
                            if (update.Text.Length > 0)
                            {
                                await stdout.WriteAsync(update.Text);
                                await stdout.FlushAsync(CancellationToken.None);
                            }
                            stats = update.Final ?? stats;
                        }
                    }
                    catch (ContextLengthExceededException e)
                    {
                        await stderr.WriteLineAsync(ModelCommandOptions.ErrorLine(e));
                        continue;
                    }
                    await stdout.WriteLineAsync();
                    if (conversation.LastTurnRestarted)
                        await stderr.WriteLineAsync("[the context was full: the conversation restarted from the system prompt]");
                    if (stats is { FinishReason: FinishReason.Cancelled } && !interrupt.Pressed)
                        break;
                }
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
