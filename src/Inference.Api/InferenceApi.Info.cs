using System.Diagnostics;
using System.Text.Json;
using BitNet.Inference.Api.Json;
using BitNet.Inference.Generation;
using BitNet.Inference.Memory;

namespace BitNet.Inference.Api;

// GET /health, GET /v1/models, keep-warm pings.
public sealed partial class InferenceApi
{
    /// <summary>200 {"status":"ok",...} when the model is loaded; 503 in the OpenAI error shape with the reason otherwise.</summary>
    public ApiResponse Health()
    {
        if (ShuttingDown)
            return Error(ApiException.ShuttingDown());
        return _provider.State switch
        {
            GeneratorState.Ready => ApiResponse.Json(200, JsonSerializer.SerializeToUtf8Bytes(
                new HealthResponse("ok", _provider.Generator!.Model.Id, _provider.LoadTime?.TotalSeconds, _queue.Waiting, _queue.Busy,
                    ProcessMemory.ResidentBytes(), ProcessMemory.PeakResidentBytes(), Batching(_provider.Generator.CurrentLoad)),
                ApiJsonContext.Wire.HealthResponse)),
            GeneratorState.Failed => Error(ApiException.Unavailable($"the model failed to load: {_provider.FailureReason}", "model_load_failed", null)),
            _ => Error(ApiException.Unavailable("Loading model", "model_loading", TimeSpan.FromSeconds(5))),
        };
    }

    private BatchingHealth? Batching(GeneratorLoad? load) => load is null ? null : new BatchingHealth(
        load.Parallel, load.Running, load.Waiting + _queue.Waiting, load.KvBlocksUsed, load.KvBlocksFree, load.KvBlockTokens,
        Math.Round(load.TokensPerSecond, 2), load.PromptTokensEvaluated, load.PromptTokensReused);

    /// <summary>
    /// GET /metrics: the same figures as /health in Prometheus' text format (gauges and counters), for a
    /// scraper or the cost benchmark. Answers 200 whatever the model's state (bitnet_model_ready says it).
    /// </summary>
    public ApiResponse Metrics()
    {
        var text = new System.Text.StringBuilder();
        void Metric(string name, string type, string help, double value)
        {
            text.Append("# HELP ").Append(name).Append(' ').Append(help).Append('\n');
            text.Append("# TYPE ").Append(name).Append(' ').Append(type).Append('\n');
            text.Append(name).Append(' ').Append(value.ToString("R", System.Globalization.CultureInfo.InvariantCulture)).Append('\n');
        }
        bool ready = _provider.State == GeneratorState.Ready && !ShuttingDown;
        Metric("bitnet_model_ready", "gauge", "1 when the model is loaded and requests are served.", ready ? 1 : 0);
        Metric("bitnet_queue_waiting", "gauge", "Requests waiting in the API queue for a generation slot.", _queue.Waiting);
        Metric("bitnet_queue_running", "gauge", "Requests holding a generation slot.", _queue.Running);
        if (_provider.State == GeneratorState.Ready && _provider.Generator!.CurrentLoad is { } load)
        {
            Metric("bitnet_parallel", "gauge", "Most sequences decoding together.", load.Parallel);
            Metric("bitnet_sequences_running", "gauge", "Sequences decoding together now.", load.Running);
            Metric("bitnet_sequences_waiting", "gauge", "Sequences waiting for a slot or KV blocks (API queue included).", load.Waiting + _queue.Waiting);
            Metric("bitnet_kv_blocks_used", "gauge", "KV cache blocks held by sequences.", load.KvBlocksUsed);
            Metric("bitnet_kv_blocks_free", "gauge", "KV cache blocks free (cached prompt prefixes included).", load.KvBlocksFree);
            Metric("bitnet_kv_block_tokens", "gauge", "Positions per KV cache block.", load.KvBlockTokens);
            Metric("bitnet_tokens_per_second", "gauge", "Tokens sampled per second over the last few seconds.", Math.Round(load.TokensPerSecond, 3));
            Metric("bitnet_generated_tokens_total", "counter", "Tokens decoded since start.", load.GeneratedTokens);
            Metric("bitnet_prompt_tokens_evaluated_total", "counter", "Prompt tokens evaluated since start.", load.PromptTokensEvaluated);
            Metric("bitnet_prompt_tokens_reused_total", "counter", "Prompt tokens taken from shared prefix blocks instead of being evaluated.", load.PromptTokensReused);
        }
        if (ProcessMemory.ResidentBytes() is long resident)
            Metric("bitnet_resident_bytes", "gauge", "Resident memory of the process.", resident);
        return ApiResponse.Text(200, "text/plain; version=0.0.4; charset=utf-8", System.Text.Encoding.UTF8.GetBytes(text.ToString()));
    }

    private ApiResponse Models()
    {
        ITextGenerator generator = ReadyGenerator();
        var list = new ModelList("list", [Entry(generator.Model)]);
        return ApiResponse.Json(200, JsonSerializer.SerializeToUtf8Bytes(list, ApiJsonContext.Wire.ModelList));
    }

    private ApiResponse Model(string id)
    {
        ITextGenerator generator = ReadyGenerator();
        if (!id.Equals(generator.Model.Id, StringComparison.OrdinalIgnoreCase))
            throw new ApiException(404, $"The model '{id}' does not exist", "invalid_request_error", "model_not_found", param: "model");
        return ApiResponse.Json(200, JsonSerializer.SerializeToUtf8Bytes(Entry(generator.Model), ApiJsonContext.Wire.ModelEntry));
    }

    private static ModelEntry Entry(ModelInfo model)
    {
        long created = File.Exists(model.Path) ? new DateTimeOffset(File.GetLastWriteTimeUtc(model.Path)).ToUnixTimeSeconds() : 0;
        return new ModelEntry(model.Id, "model", created, "bitnet",
            new ModelMeta(model.Architecture, model.ContextLength, model.ContextLength, model.VocabSize, model.EmbeddingLength,
                model.LayerCount, model.FileSizeBytes, model.KernelName, model.Threads));
    }

    /// <summary>
    /// A keep-warm ping (Lambda {"keep_warm": true} or an EventBridge scheduled event, the Azure timer,
    /// POST /keep-warm): answers at once without generating. The first ping after start (or every
    /// ping, per BITNET_KEEPWARM_TOUCH) also reads every weight page, so the request after a long
    /// idle spell does not fault the model in from a cold page cache or a lazily loaded image.
    /// </summary>
    public ApiResponse KeepWarm()
    {
        long start = Stopwatch.GetTimestamp();
        long touched = 0;
        GeneratorState state = _provider.State;
        if (state == GeneratorState.Ready)
        {
            bool touch = Options.KeepWarmTouch switch
            {
                KeepWarmTouch.Always => true,
                KeepWarmTouch.First => Interlocked.Exchange(ref _touchedOnce, 1) == 0,
                _ => false,
            };
            if (touch)
                touched = _provider.Generator!.TouchWeights();
        }
        var body = new KeepWarmResponse("warm", state.ToString().ToLowerInvariant(), touched,
            Math.Round(Stopwatch.GetElapsedTime(start).TotalMilliseconds, 3));
        return ApiResponse.Json(200, JsonSerializer.SerializeToUtf8Bytes(body, ApiJsonContext.Wire.KeepWarmResponse));
    }
}
