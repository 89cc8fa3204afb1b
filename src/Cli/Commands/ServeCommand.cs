using System.CommandLine;
using BitNet.Hosts.Http;
using BitNet.Inference.Api;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet serve [-m MODEL] [--host H] [--port P] [--parallel N] [--strict-model]`: the OpenAI-compatible server (the same Kestrel
/// app as bitnet-server). Flags override the BITNET_* environment variables;
/// without -m the default model is used (BITNET_MODEL, then the Hugging Face cache).
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model", "-m") { Description = "GGUF model file (default: BITNET_MODEL, then the default model in the Hugging Face cache, downloaded if missing)" };
        var host = new Option<string?>("--host") { Description = "Address to bind: an IP address of this machine, localhost, or a name resolving to one (default BITNET_HOST or 127.0.0.1; 0.0.0.0 for all interfaces)" };
        var port = NumberOption.Optional<int>("--port", "Port to bind, 1 to 65535 or 0 for any free port (default BITNET_PORT or 8080)");
        var threads = NumberOption.Optional<int>("--threads", $"Engine threads, 1 to {Environment.ProcessorCount} (default BITNET_THREADS or all cores)", "-t");
        var context = ModelCommandOptions.ContextOption("BITNET_CONTEXT_LENGTH or 4096");
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' (default BITNET_API_KEY)" };
        var strictModel = new Option<bool>("--strict-model")
        {
            Description = "Refuse a request whose \"model\" names another model with 404 model_not_found (default BITNET_STRICT_MODEL; otherwise any name is answered by the loaded model)",
        };

        var chatTemplate = ModelCommandOptions.ChatTemplateOption();
        var parallel = NumberOption.Optional<int>("--parallel", $"Most requests decoding together in one batch, 1 to {ApiOptions.MaxParallel} (default BITNET_PARALLEL or {ApiOptions.DefaultParallel})", "-np");
        var kvTokens = NumberOption.Optional<long>("--kv-cache-tokens", "KV cache positions shared by all requests (default BITNET_KV_CACHE_TOKENS, else parallel × context within the memory limit)");
        var promptStep = NumberOption.Optional<int>("--prompt-tokens-per-step", $"Prompt tokens evaluated per batch step beside the decoding requests, {ApiOptions.MinPromptTokensPerStep} to {ApiOptions.MaxPromptTokensPerStep} (default BITNET_PROMPT_TOKENS_PER_STEP or 64)");

        var command = new Command("serve", "Serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health, /metrics), decoding up to --parallel requests together");
        foreach (Option option in new Option[] { model, host, port, threads, context, apiKey, strictModel, chatTemplate, parallel, kvTokens, promptStep })
            command.Options.Add(option);
        command.SetAction(async (parseResult, cancellationToken) =>
        {
            ApiOptions options;
            try
            {
                options = ApiOptions.FromEnvironment();
            }
            catch (ConfigurationException ex)
            {
                await Console.Error.WriteLineAsync(ModelCommandOptions.ErrorLine(ex));
                return 2;
            }
            options = options with
            {
                ModelPath = parseResult.GetValue(model) ?? options.ModelPath,
                Host = parseResult.GetValue(host) ?? options.Host,
                Port = parseResult.GetValue(port) ?? options.Port,
                Threads = parseResult.GetValue(threads) ?? options.Threads,
                ContextLength = parseResult.GetValue(context) ?? options.ContextLength,
                ApiKey = parseResult.GetValue(apiKey) ?? options.ApiKey,
                StrictModel = parseResult.GetValue(strictModel) || options.StrictModel,
                ChatTemplate = parseResult.GetValue(chatTemplate) ?? options.ChatTemplate,
                Parallel = parseResult.GetValue(parallel) ?? options.Parallel,
                KvCacheTokens = parseResult.GetValue(kvTokens) ?? options.KvCacheTokens,
                PromptTokensPerStep = parseResult.GetValue(promptStep) ?? options.PromptTokensPerStep,
            };
            // The flags take what the BITNET_* variables take (and 0 for "the default" where the variable may be left unset).
            string? problem =
                options.Parallel is < 0 or > ApiOptions.MaxParallel
                    ? $"--parallel must be from 1 to {ApiOptions.MaxParallel} (0: the default, {ApiOptions.DefaultParallel}); got {options.Parallel}"
                : options.KvCacheTokens is not 0 and (< ApiOptions.MinKvCacheTokens or > ApiOptions.MaxKvCacheTokens)
                    ? $"--kv-cache-tokens must be from {ApiOptions.MinKvCacheTokens} to {ApiOptions.MaxKvCacheTokens} (0: parallel × context within the memory limit); got {options.KvCacheTokens}"
                : options.PromptTokensPerStep is < ApiOptions.MinPromptTokensPerStep or > ApiOptions.MaxPromptTokensPerStep
                    ? $"--prompt-tokens-per-step must be from {ApiOptions.MinPromptTokensPerStep} to {ApiOptions.MaxPromptTokensPerStep}; got {options.PromptTokensPerStep}"
                : null;
            if (problem is not null)
            {
                await Console.Error.WriteLineAsync($"error: {problem}");
                return 2;
            }
            try
            {
                // Unlike generate and chat, serve has no 0 for "the default": leaving the flag out is.
                if (parseResult.GetValue(threads) is { } t && (t < 1 || t > Environment.ProcessorCount))
                    throw new ArgumentException($"--threads must be from 1 to {Environment.ProcessorCount} (the processors of this machine); got {t}");
                ModelCommandOptions.CheckContext(parseResult.GetValue(context));
                // Fail fast on a missing file instead of serving 503s forever (no -m: the default model is downloaded if needed).
                if (options.ModelPath is { } path)
                    ModelCommandOptions.ResolveModelPath(path);
            }
            catch (Exception ex) when (ex is ArgumentException or IOException)
            {
                await Console.Error.WriteLineAsync(ModelCommandOptions.ErrorLine(ex));
                return ex is FileNotFoundException ? 1 : 2;
            }
            return await ServerRunner.RunAsync(options, cancellationToken: cancellationToken);
        });
        return command;
    }
}
