namespace BitNet.Inference.Hub;

/// <summary>
/// One progress report of a download. <see cref="ResumedFrom"/> is the byte offset the transfer
/// restarted from (0 for a fresh download), so rates can be computed on this run's bytes only.
/// </summary>
public readonly record struct DownloadProgress(string File, long BytesDone, long? TotalBytes, long ResumedFrom)
{
    public double? Fraction => TotalBytes is > 0 ? (double)BytesDone / TotalBytes.Value : null;
}

/// <summary>
/// Plain-text progress for hosts without a terminal UI (the server, logs): one line at most every
/// <paramref name="interval"/> and one at the end, each with a text progress bar when the size is
/// known, e.g. <c>ggml-model-i2_s.gguf: 512.0 / 1187.3 MB (43%) [#########...........]</c>.
/// </summary>
public sealed class TextDownloadProgress(TextWriter writer, TimeSpan? interval = null) : IProgress<DownloadProgress>
{
    private readonly TimeSpan _interval = interval ?? TimeSpan.FromSeconds(2);
    private long _lastTicks = long.MinValue;

    public void Report(DownloadProgress value)
    {
        long now = Environment.TickCount64;
        bool finished = value.TotalBytes is { } total && value.BytesDone >= total;
        if (!finished && _lastTicks != long.MinValue && now - _lastTicks < _interval.TotalMilliseconds)
            return;
        _lastTicks = now;
        string percent = value.Fraction is { } f ? $" ({f * 100:0}%)" : "";
        string total2 = value.TotalBytes is { } t ? $" / {t / 1048576.0:0.0} MB" : " MB";
        writer.WriteLine($"{value.File}: {value.BytesDone / 1048576.0:0.0}{total2}{percent}{Bar(value.Fraction)}");
    }

    /// <summary>A 20-cell bar, " [#####...............]", or nothing when the total is unknown.</summary>
    internal static string Bar(double? fraction)
    {
        if (fraction is not { } f) return "";
        int filled = (int)Math.Round(Math.Clamp(f, 0, 1) * BarCells);
        return $" [{new string('#', filled)}{new string('.', BarCells - filled)}]";
    }

    private const int BarCells = 20;
}
