using System.CommandLine;
using BitNet.Inference.Hub;
using Spectre.Console;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet pull [REPO[:FILE][@REV]]`: download a model into the Hugging Face cache (resumable,
/// verified), so every other command finds it without -m.
/// </summary>
internal static class PullCommand
{
    public static Command Create() => Create(ProcessEnvironment.Instance, Console.Out, Console.Error, interactive: !Console.IsOutputRedirected);

    internal static Command Create(IEnvironment env, TextWriter stdout, TextWriter stderr, bool interactive)
    {
        var model = new Argument<string?>("model")
        {
            Arity = ArgumentArity.ZeroOrOne,
            Description = $"org/name[:file][@revision] on the Hugging Face hub (default {ModelReference.Default})",
        };
        var printPath = new Option<bool>("--print-path") { Description = "Print where the model is (or would be) in the cache and exit: 0 if present, 1 if not" };
        var dryRun = new Option<bool>("--dry-run") { Description = "Ask the hub about the file (size, hash, commit, destination) without downloading" };

        var command = new Command("pull", "Download a model from the Hugging Face hub into its cache (resumes, verifies SHA-256; HF_TOKEN, HF_HOME, HF_ENDPOINT honoured)");
        command.Arguments.Add(model);
        command.Options.Add(printPath);
        command.Options.Add(dryRun);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            ModelReference reference;
            try
            {
                reference = parseResult.GetValue(model) is { } text ? ModelReference.Parse(text) : ModelReference.Default;
            }
            catch (FormatException e)
            {
                await stderr.WriteLineAsync(ModelCommandOptions.ErrorLine(e));
                return 2;
            }

            if (parseResult.GetValue(printPath))
            {
                bool present = ModelLocator.TryFindLocal(reference, out string path, env);
                await stdout.WriteLineAsync(path);
                return present ? 0 : 1;
            }

            using var downloader = new HubDownloader(env);
            try
            {
                if (parseResult.GetValue(dryRun))
                {
                    HubFileMetadata meta = await downloader.GetMetadataAsync(reference, cancellationToken);
                    bool present = ModelLocator.TryFindLocal(reference, out string local, env);
                    await stdout.WriteLineAsync($"url:      {downloader.ResolveUri(reference)}");
                    await stdout.WriteLineAsync($"size:     {(meta.Size is { } s ? $"{s:N0} bytes ({s / 1048576.0:0.0} MB)" : "unknown")}");
                    await stdout.WriteLineAsync($"{(meta.ETagIsSha256 ? "sha256:  " : "etag:    ")} {meta.ETag}");
                    await stdout.WriteLineAsync($"commit:   {meta.Commit ?? "unknown"}");
                    await stdout.WriteLineAsync($"cache:    {local}{(present ? " (present)" : "")}");
                    return 0;
                }

                string result = interactive
                    ? await PullWithProgressBarAsync(downloader, reference, cancellationToken)
                    : await downloader.PullAsync(reference, new TextDownloadProgress(stderr), cancellationToken);
                await stdout.WriteLineAsync(result);
                return 0;
            }
            catch (HubException e)
            {
                await stderr.WriteLineAsync(ModelCommandOptions.ErrorLine(e));
                return 1;
            }
        });
        return command;
    }

    private static async Task<string> PullWithProgressBarAsync(HubDownloader downloader, ModelReference reference, CancellationToken cancellationToken)
    {
        string path = "";
        await AnsiConsole.Progress()
            .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new DownloadedColumn(),
                new TransferSpeedColumn(), new RemainingTimeColumn())
            .StartAsync(async context =>
            {
                var task = context.AddTask(reference.File, maxValue: 1);
                var progress = new SynchronousProgress(p =>
                {
                    if (p.TotalBytes is { } total)
                        task.MaxValue = total;
                    task.Value = p.BytesDone;
                });
                path = await downloader.PullAsync(reference, progress, cancellationToken);
                task.Value = task.MaxValue;
            });
        return path;
    }

    private sealed class SynchronousProgress(Action<DownloadProgress> report) : IProgress<DownloadProgress>
    {
        public void Report(DownloadProgress value) => report(value);
    }
}
