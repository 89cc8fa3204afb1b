using BitNet.Inference.Api;
using Microsoft.Azure.Functions.Worker;
using Microsoft.Extensions.Logging;

namespace BitNet.Hosts.AzureFunctions;

/// <summary>
/// The keep-warm timer. Its NCRONTAB schedule is the app setting <c>BITNET_KEEPWARM_SCHEDULE</c>
/// (a <c>%name%</c> binding expression, resolved by the Functions host), which the deployment sets.
/// A tick while the model still loads succeeds too: the ping reports the state and touches nothing.
/// </summary>
public sealed class KeepWarmFunction(InferenceApi api, ILogger<KeepWarmFunction> logger)
{
    public const string Name = "keepwarm";
    public const string Schedule = "%" + EnvVars.KeepWarmSchedule + "%";

    [Function(Name)]
    public async Task RunAsync([TimerTrigger(Schedule)] TimerInfo timer)
    {
        await using ApiResponse ping = api.KeepWarm();
        logger.LogInformation("keep-warm{PastDue}: {Result}", timer.IsPastDue ? " (past due)" : "", ping.BodyText);
    }
}
