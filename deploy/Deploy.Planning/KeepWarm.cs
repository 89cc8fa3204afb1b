namespace BitNet.Deploy.Planning;

/// <summary>
/// The keep-warm ping. On AWS an EventBridge rule invokes the function's alias with
/// <see cref="LambdaPayload"/>: it has the shape of a scheduled event (source aws.events,
/// detail-type "Scheduled Event"), so a host that recognises scheduled events answers it without
/// running the model, and <c>detail.bitnet</c> = <c>keep-warm</c> says why it came. On Azure a timer
/// function reads its schedule from the <see cref="AzureScheduleSetting"/> app setting
/// (the trigger's schedule is <c>%BITNET_KEEPWARM_SCHEDULE%</c>, resolved by the Functions host).
/// </summary>
public static class KeepWarm
{
    public const string LambdaPayload =
        """{"version":"0","source":"aws.events","detail-type":"Scheduled Event","detail":{"bitnet":"keep-warm"}}""";

    /// <summary>The app setting the Azure host's timer trigger reads (<c>%BITNET_KEEPWARM_SCHEDULE%</c>, see EnvVars.KeepWarmSchedule).</summary>
    public const string AzureScheduleSetting = "BITNET_KEEPWARM_SCHEDULE";

    /// <summary>A valid schedule that practically never fires: what "keep-warm off" means for a timer that must have one.</summary>
    public const string AzureScheduleWhenOff = "0 0 0 1 1 *";

    /// <summary>EventBridge rate expression; the unit is singular for 1 (<c>rate(1 minute)</c>), as EventBridge requires.</summary>
    public static string RateExpression(int minutes) =>
        minutes == 1 ? "rate(1 minute)"
        : minutes % 60 == 0 ? (minutes == 60 ? "rate(1 hour)" : $"rate({minutes / 60} hours)")
        : $"rate({minutes} minutes)";

    /// <summary>Whether a Lambda tier gets a keep-warm rule: explicit choice, else only where provisioned concurrency is off.</summary>
    public static bool IsOn(LambdaTierConfig tier) => tier.KeepWarm ?? tier.ProvisionedConcurrency == 0;
}
