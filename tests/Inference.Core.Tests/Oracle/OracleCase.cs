using System.Globalization;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text.Json;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Oracle;

/// <summary>One bitnet.cpp reference run from shared/oracle: its tokens and its logits (see the oracle README).</summary>
internal sealed class OracleCase
{
    public const int VocabSize = 128256;
    public static readonly OracleCase Capital = Load("bitnet-small-i2_s.bitnetcpp.t1");
    public static readonly OracleCase Chat = Load("bitnet-small-i2_s.chat.bitnetcpp.t1");
    public static OracleCase ByName(string name) => name == "capital" ? Capital : name == "chat" ? Chat : throw new ArgumentException(name);

    private readonly Lazy<float[]> _logits;

    private OracleCase(string prefix, string prompt, string generatedText, int[] promptIds, int[] generatedIds, int rows)
    {
        Prefix = prefix;
        Prompt = prompt;
        GeneratedText = generatedText;
        PromptIds = promptIds;
        GeneratedIds = generatedIds;
        Rows = rows;
        _logits = new Lazy<float[]>(ReadLogits);
    }

    public string Prefix { get; }
    /// <summary>The prompt's text (special tokens written out) and the text of the 16 greedy tokens bitnet.cpp generated.</summary>
    public string Prompt { get; }
    public string GeneratedText { get; }
    public int[] PromptIds { get; }
    public int[] GeneratedIds { get; }
    /// <summary>PromptIds.Length + 15.</summary>
    public int Rows { get; }
    /// <summary>Rows × VocabSize floats, row-major.</summary>
    public float[] Logits => _logits.Value;
    public ReadOnlySpan<float> Row(int r) => Logits.AsSpan(r * VocabSize, VocabSize);

    /// <summary>The token fed to produce row r: the prompt, then generated_ids[k−1] for row n−1+k.</summary>
    public int[] FedTokens => [.. PromptIds, .. GeneratedIds.Take(Rows - PromptIds.Length)];

    private static OracleCase Load(string prefix)
    {
        using var json = JsonDocument.Parse(File.ReadAllText(SharedData.OracleFile(prefix + ".tokens.json")));
        var root = json.RootElement;
        int[] Ints(string name) => root.GetProperty(name).EnumerateArray().Select(e => e.GetInt32()).ToArray();
        string Text(string name) => root.GetProperty(name).GetString()!;
        return new OracleCase(prefix, Text("prompt"), Text("generated_text"), Ints("prompt_ids"), Ints("generated_ids"), root.GetProperty("logit_rows").GetInt32());
    }

    private float[] ReadLogits()
    {
        var result = new float[Rows * VocabSize];
        using var gz = new GZipStream(File.OpenRead(SharedData.OracleFile(Prefix + ".logits.f32.gz")), CompressionMode.Decompress);
        gz.ReadExactly(MemoryMarshal.AsBytes(result.AsSpan()));
        if (gz.ReadByte() != -1) throw new InvalidDataException($"{Prefix}: more logits than {Rows} rows");
        return result;
    }
}

/// <summary>How one row of our logits compares with the oracle's.</summary>
internal readonly record struct RowComparison(int Row, double MaxAbs, double Rms, double Std, int OracleTop1, int OurTop1, double OracleGap)
{
    public double MaxPercentOfStd => 100 * MaxAbs / Std;
    public double RmsPercentOfStd => 100 * Rms / Std;

    public static RowComparison Compare(int row, ReadOnlySpan<float> oracle, ReadOnlySpan<float> ours)
    {
        double max = 0, sq = 0, mean = 0;
        for (int i = 0; i < oracle.Length; i++) mean += oracle[i];
        mean /= oracle.Length;
        double variance = 0;
        for (int i = 0; i < oracle.Length; i++)
        {
            double d = Math.Abs((double)ours[i] - oracle[i]);
            max = Math.Max(max, d);
            sq += d * d;
            variance += (oracle[i] - mean) * (oracle[i] - mean);
        }
        var (top1, top2) = TopTwo(oracle);
        return new RowComparison(row, max, Math.Sqrt(sq / oracle.Length), Math.Sqrt(variance / oracle.Length),
            top1, ArgMax(ours), oracle[top1] - oracle[top2]);
    }

    /// <summary>Greedy choice: the highest logit, ties to the lowest id.</summary>
    public static int ArgMax(ReadOnlySpan<float> logits)
    {
        int best = 0;
        for (int i = 1; i < logits.Length; i++) if (logits[i] > logits[best]) best = i;
        return best;
    }

    private static (int, int) TopTwo(ReadOnlySpan<float> logits)
    {
        int first = ArgMax(logits), second = first == 0 ? 1 : 0;
        for (int i = 0; i < logits.Length; i++)
            if (i != first && logits[i] > logits[second]) second = i;
        return (first, second);
    }
}

/// <summary>
/// The acceptance of our logits for one oracle case, per row: max |Δ| ≤ 2.5 % and RMS Δ ≤ 0.25 % of
/// the row's standard deviation, and the same top-1 wherever the oracle's top-1/top-2 gap exceeds
/// twice that row's max |Δ|; over all rows, max |Δ| ≤ <see cref="ExactMaxAbs"/> (the engine reproduces
/// bitnet.cpp's arithmetic).
/// </summary>
internal static class OracleAcceptance
{
    /// <summary>
    /// The 2B4T oracle is bitnet.cpp's AVX-512 build; the engine sums attention as its AVX2 build does, and the two builds differ by 1.09e-4 (chat row 38).
    /// </summary>
    public const double ExactMaxAbs = 2e-4;

    /// <summary>Asserts it for <paramref name="ours"/> (Rows × VocabSize) and returns a one-line summary.</summary>
    public static string AssertWithinTolerance(string name, OracleCase oracle, ReadOnlySpan<float> ours)
    {
        Assert.Equal(oracle.Rows * OracleCase.VocabSize, ours.Length);
        var rows = new List<RowComparison>();
        for (int r = 0; r < oracle.Rows; r++)
            rows.Add(RowComparison.Compare(r, oracle.Row(r), ours.Slice(r * OracleCase.VocabSize, OracleCase.VocabSize)));

        var worstMax = rows.MaxBy(r => r.MaxPercentOfStd);
        var worstRms = rows.MaxBy(r => r.RmsPercentOfStd);
        string Fmt(double v) => v.ToString("G3", CultureInfo.InvariantCulture);
        string summary =
            $"oracle {name}: {rows.Count} rows; worst max |Δ| = {Fmt(worstMax.MaxAbs)} ({Fmt(worstMax.MaxPercentOfStd)} % of std, row {worstMax.Row}); " +
            $"worst RMS Δ = {Fmt(worstRms.Rms)} ({Fmt(worstRms.RmsPercentOfStd)} % of std, row {worstRms.Row}); " +
            $"top-1 equal on {rows.Count(r => r.OurTop1 == r.OracleTop1)}/{rows.Count} rows";

        Assert.True(rows.Max(r => r.MaxAbs) <= ExactMaxAbs, $"{summary} (expected an exact reproduction)");
        foreach (var row in rows)
        {
            Assert.True(row.MaxPercentOfStd <= 2.5, $"row {row.Row}: max |Δ| {row.MaxAbs} is {row.MaxPercentOfStd:F3} % of std {row.Std}");
            Assert.True(row.RmsPercentOfStd <= 0.25, $"row {row.Row}: RMS Δ {row.Rms} is {row.RmsPercentOfStd:F4} % of std {row.Std}");
            if (row.OracleGap > 2 * row.MaxAbs)
                Assert.True(row.OracleTop1 == row.OurTop1, $"row {row.Row}: top-1 {row.OurTop1}, oracle {row.OracleTop1} (gap {row.OracleGap})");
        }
        return summary;
    }
}
