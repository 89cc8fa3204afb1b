using System.CommandLine;
using BitNet.Hosts.Http;
using BitNet.Inference.Api;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet serve [-m MODEL] [--host H] [--port P] [--parallel N]`: the OpenAI-compatible server (the same Kestrel
/// app as bitnet-server and the Azure handler). Flags override the BITNET_* environment variables;
/// without -m the default model is used (BITNET_MODEL, then the Hugging Face cache).
/// </summary>
internal static class ServeCommand
{
    public static Command Create()
    {
        var model = new Option<string?>("--model", "-m") { Description = "GGUF model file (default: BITNET_MODEL, then the default model in the Hugging Face cache, downloaded if missing)" };
        var host = new Option<string?>("--host") { Description = "Address to bind (default BITNET_HOST or 127.0.0.1; 0.0.0.0 for all interfaces)" };
        var port = new Option<int?>("--port") { Description = "Port to bind (default BITNET_PORT or 8080)" };
        var threads = new Option<int?>("--threads", "-t") { Description = "Engine threads (default BITNET_THREADS or all cores)" };
        var context = new Option<int?>("--ctx-size", "-c") { Description = "Context window in tokens (default BITNET_CONTEXT_LENGTH or 4096)" };
        var apiKey = new Option<string?>("--api-key") { Description = "Require 'Authorization: Bearer KEY' (default BITNET_API_KEY)" };
        var parallel = new Option<int?>("--parallel", "-np") { Description = $"Most requests decoding together in one batch (default BITNET_PARALLEL or {ApiOptions.DefaultParallel})" };
        var kvTokens = new Option<long?>("--kv-cache-tokens") { Description = "KV cache positions shared by all requests (default BITNET_KV_CACHE_TOKENS, else parallel × context within the memory limit)" };
        var promptStep = new Option<int?>("--prompt-tokens-per-step") { Description = "Prompt tokens evaluated per batch step beside the decoding requests (default BITNET_PROMPT_TOKENS_PER_STEP or 64)" };

        var command = new Command("serve", "Serve the model over an OpenAI-compatible HTTP API (/v1/chat/completions, /v1/completions, /v1/models, /health, /metrics), decoding up to --parallel requests together");
        foreach (Option option in new Option[] { model, host, port, threads, context, apiKey, parallel, kvTokens, promptStep })
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
                await Console.Error.WriteLineAsync($"error: {ex.Message}");
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
                Parallel = parseResult.GetValue(parallel) ?? options.Parallel,
                KvCacheTokens = parseResult.GetValue(kvTokens) ?? options.KvCacheTokens,
                PromptTokensPerStep = parseResult.GetValue(promptStep) ?? options.PromptTokensPerStep,
            };
            if (options.Parallel < 0 || options.KvCacheTokens < 0 || options.PromptTokensPerStep < 3)
            {
                await Console.Error.WriteLineAsync("error: --parallel and --kv-cache-tokens must be 0 or more, --prompt-tokens-per-step at least 3");
                return 2;
            }
            if (options.ModelPath is { } path && !File.Exists(path))
            {
                // Fail fast on a missing file instead of serving 503s forever (no -m: the default model is downloaded if needed).
                await Console.Error.WriteLineAsync($"error: the model file '{path}' does not exist");
                return 1;
            }
            return await ServerRunner.RunAsync(options, cancellationToken: cancellationToken);
        });
        return command;
    }
}
