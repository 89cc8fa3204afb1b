namespace BitNet.Inference.Api;

/// <summary>
/// Every environment variable the hosts read, in one place. The same table configures the plain
/// server, `bitnet serve`, the Lambda bootstrap and the Azure Functions worker; it is
/// parsed once into <see cref="ApiOptions"/> (see <see cref="ApiOptions.FromEnvironment"/>).
/// </summary>
public static class EnvVars
{
    // ---- The model -------------------------------------------------------------------------

    /// <summary>Path of the GGUF model file. Unset: the default model in the Hugging Face cache
    /// (BitNet.Inference.Hub.ModelLocator). Shared with the CLI.</summary>
    public const string Model = "BITNET_MODEL";

    /// <summary>The model id served by /v1/models and accepted in "model". Default: the file name without ".gguf".</summary>
    public const string ModelId = "BITNET_MODEL_ID";

    /// <summary>Worker threads of the engine. Default: the number of processors the process may use.</summary>
    public const string Threads = "BITNET_THREADS";

    /// <summary>Context window in tokens (prompt + completion). Default 4096, capped by the model's own.</summary>
    public const string ContextLength = "BITNET_CONTEXT_LENGTH";

    /// <summary>
    /// How the output head is computed: "f16" (exact, the reference), "q8" (int8, faster, slightly
    /// different logits) or "screened" (int8 bounds, exact F16 logits for the tokens that can be
    /// sampled: f16's output at about q8's speed, for extra work at load). Default screened (f16 on Lambda,
    /// where a cold start waits for the load).
    /// </summary>
    public const string LmHead = "BITNET_LM_HEAD";

    /// <summary>
    /// Where the weights each token reads live: "auto" (default: "move" when the page cache holds the
    /// file in 2 MB folios, else "memory"), "memory" (copied into private memory at load; slower when the
    /// OS must supply fresh memory), "mapped" (used in place through the memory-mapped file, shared with
    /// other processes; on some virtual machines many times slower to stream from 4 KB pages) or "move"
    /// (mapped at load, moved into private memory in the background after the first token).
    /// </summary>
    public const string Weights = "BITNET_WEIGHTS";

    /// <summary>Pre-tokenizer override: "llama3" or "default". Unset: what the GGUF file names.</summary>
    public const string PreTokenizer = "BITNET_PRE_TOKENIZER";

    /// <summary>Chat template override: "bitnet", "llama3", "falcon3" or "falcon_e". Unset: the one the GGUF file names
    /// or implies; a file whose template is unknown answers chat requests with 400 until this is set.</summary>
    public const string ChatTemplate = "BITNET_CHAT_TEMPLATE";

    /// <summary>"true" (default): read the model file once, sequentially, before loading it, so a Lambda
    /// container image's lazily loaded layers stream in with large reads instead of random page faults.</summary>
    public const string PrefetchModel = "BITNET_PREFETCH_MODEL";

    // ---- Requests --------------------------------------------------------------------------

    /// <summary>"true": a request whose "model" names another model than the loaded one gets 404
    /// model_not_found, as OpenAI answers. Default false: any name is accepted (clients written for
    /// OpenAI send "gpt-4o-mini", llama.cpp's examples "bitnet") and responses name the real id.</summary>
    public const string StrictModel = "BITNET_STRICT_MODEL";

    /// <summary>How many requests may wait behind the running one (FIFO). A request beyond that gets 429. Default 32.</summary>
    public const string QueueDepth = "BITNET_QUEUE_DEPTH";

    /// <summary>Most generations decoding together in one batch (continuous batching); more wait in the queue.
    /// Default: 1 on Lambda (one environment takes one event at a time), 4 on the server, `bitnet serve` and Azure.</summary>
    public const string Parallel = "BITNET_PARALLEL";

    /// <summary>Positions of the KV cache shared by all generations (77 KB each for 2B4T, 320 MB per 4096).
    /// Default: BITNET_PARALLEL × the context, capped by the memory the process may use less the model;
    /// never less than one context.</summary>
    public const string KvCacheTokens = "BITNET_KV_CACHE_TOKENS";

    /// <summary>Prompt tokens evaluated per batch step beside the decoding generations' tokens: a long prompt
    /// comes in over several steps while the others keep streaming. Default 64 (at least 3).</summary>
    public const string PromptTokensPerStep = "BITNET_PROMPT_TOKENS_PER_STEP";

    /// <summary>When set, every route except /health needs "Authorization: Bearer &lt;key&gt;".</summary>
    public const string ApiKey = "BITNET_API_KEY";

    /// <summary>Completion tokens when the request names none (max_tokens / n_predict). Default 512, capped by the context.</summary>
    public const string DefaultMaxTokens = "BITNET_DEFAULT_MAX_TOKENS";

    /// <summary>Seconds between the SSE comments a streamed request gets until its first token, while it waits in the queue
    /// or in the engine (its response starts at once), so that a proxy or load balancer with an idle limit keeps the
    /// connection. Default 10.</summary>
    public const string QueueKeepAliveSeconds = "BITNET_QUEUE_KEEPALIVE_SECONDS";

    /// <summary>Longest a request may take, queue wait included, in seconds. Generation past it ends with
    /// finish_reason "length". Default 300.</summary>
    public const string RequestTimeoutSeconds = "BITNET_REQUEST_TIMEOUT_SECONDS";

    /// <summary>Largest request body in bytes; larger bodies get 413. Default 1048576 (1 MiB).</summary>
    public const string MaxRequestBytes = "BITNET_MAX_REQUEST_BYTES";

    /// <summary>Comma-separated origins allowed by CORS ("*" = any). Unset: no CORS headers. HTTP hosts only
    /// (a Lambda function URL and Azure Functions configure CORS on the platform).</summary>
    public const string CorsOrigins = "BITNET_CORS_ORIGINS";

    // ---- Keep-warm -------------------------------------------------------------------------

    /// <summary>What a keep-warm ping does besides answering: "first" (default) touches every weight page on the
    /// first ping after start, "always" on every ping, "never" not at all.</summary>
    public const string KeepWarmTouch = "BITNET_KEEPWARM_TOUCH";

    /// <summary>Azure only: NCRONTAB schedule of the keep-warm timer trigger (its binding reads it as
    /// %BITNET_KEEPWARM_SCHEDULE%), e.g. "0 */5 * * * *". Read by the Functions host, not by our code.</summary>
    public const string KeepWarmSchedule = "BITNET_KEEPWARM_SCHEDULE";

    // ---- HTTP hosts (plain server, bitnet serve) -------------------------------------------

    /// <summary>Address the plain server binds. Default 127.0.0.1 (use 0.0.0.0 in a container).</summary>
    public const string Host = "BITNET_HOST";

    /// <summary>Port the plain server binds. Default 8080.</summary>
    public const string Port = "BITNET_PORT";

    /// <summary>Seconds in-flight requests get to finish on SIGTERM before they are cancelled. Default 30.</summary>
    public const string ShutdownTimeoutSeconds = "BITNET_SHUTDOWN_TIMEOUT_SECONDS";

    // ---- Lambda ----------------------------------------------------------------------------

    /// <summary>"true" when the function URL's InvokeMode is RESPONSE_STREAM: every function-URL invocation is
    /// answered through the streaming response (HTTP-integration prelude + 8 NUL bytes + body). Lambda does not
    /// tell the runtime the invoke mode, so the deployment must set this to match. Default false (BUFFERED).</summary>
    public const string LambdaStreaming = "BITNET_LAMBDA_STREAMING";

    /// <summary>Milliseconds kept free before the invocation deadline to finish the response. Default 1000.</summary>
    public const string LambdaDeadlineMarginMs = "BITNET_LAMBDA_DEADLINE_MARGIN_MS";

    // ---- Set by the platforms (read, never set by us) --------------------------------------

    /// <summary>Lambda: host:port of the Runtime API.</summary>
    public const string AwsLambdaRuntimeApi = "AWS_LAMBDA_RUNTIME_API";

    /// <summary>Lambda: the X-Ray trace header of the current invocation; the runtime sets it from
    /// Lambda-Runtime-Trace-Id before each invocation.</summary>
    public const string AmznTraceId = "_X_AMZN_TRACE_ID";

    /// <summary>Lambda: the function's name (used as the default model owner in logs only).</summary>
    public const string AwsLambdaFunctionName = "AWS_LAMBDA_FUNCTION_NAME";
}
