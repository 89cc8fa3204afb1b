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
        if (_shuttingDown)
            return Error(ApiException.Unavailable("the server is shutting down", "shutting_down", TimeSpan.FromSeconds(5)));
        return _provider.State switch
        {
            GeneratorState.Ready => ApiResponse.Json(200, JsonSerializer.SerializeToUtf8Bytes(
                new HealthResponse("ok", _provider.Generator!.Model.Id, _provider.LoadTime?.TotalSeconds, _queue.Waiting, _queue.Busy,
                    ProcessMemory.ResidentBytes(), ProcessMemory.PeakResidentBytes()),
                ApiJsonContext.Wire.HealthResponse)),
            GeneratorState.Failed => Error(ApiException.Unavailable($"the model failed to load: {_provider.FailureReason}", "model_load_failed", null)),
            _ => Error(ApiException.Unavailable("Loading model", "model_loading", TimeSpan.FromSeconds(5))),
        };
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
            throw new ApiException(404, $"The model '{id}' does not exist", "invalid_request_error", "model", "model_not_found");
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
