using BitNet.Inference.Kernels;

namespace BitNet.Inference.Model;

/// <summary>
/// The screened LM head (<see cref="LmHeadMode.Screened"/>): from the int8 copy of the head, an
/// interval [lower, upper] per vocabulary row that is guaranteed to hold the logit the exact F16 head
/// would compute — bit for bit the F16 kernel's float result, rounding included. The sampler then
/// needs exact logits only for the rows whose interval reaches its top k; the other rows cannot be
/// chosen, whatever their exact values (see <see cref="Sampling.Sampler.SelectCandidates"/>).
///
/// The bound, for row v with F16 weights w, int8 codes q and scale s (w ≈ s·q), and the input y
/// rounded to int16 as y ≈ t·y16:
///   Σ w·y = s·t·Σ q·y16 + s·Σ q·(y − t·y16) + Σ (w − s·q)·y
/// so with the exact integer dot D = Σ q·y16, a = s·t·D, δ = max|y − t·y16|, ε = max|w − s·q|:
///   |Σ w·y − a| ≤ s·δ·Σ|q| + ε·Σ|y|.
/// The F16 kernel's float sum differs from the real Σ w·y by at most γ·Σ|w·y| ≤ γ·max|w|·Σ|y|, with
/// γ = n·u/(1 − n·u), u = 2^−24, n = columns + 2 (any summation order, fused or not). So
///   |F16 logit − a| ≤ (ε + γ·max|w|)·Σ|y| + s·Σ|q|·δ,
/// which is rigorous, not statistical: it holds for every row and every input. (The 1e-37 added to
/// each bound covers float underflow in the F16 kernel's sum, ≤ n·2^−150 for n ≤ 2^20 columns.)
/// </summary>
internal sealed class LogitScreen
{
    private const double Unit = 1.0 / (1 << 24);
    /// <summary>Per row: ε + γ·max|w| (rounded up), the bound's factor of Σ|y|.</summary>
    private readonly float[] _perInputMass;
    /// <summary>Per row: s·Σ|q| (rounded up), the bound's factor of δ.</summary>
    private readonly float[] _perInputRounding;

    public LogitScreen(LmHeadQ8 head)
    {
        ArgumentNullException.ThrowIfNull(head);
        RowErrorFacts facts = head.ErrorFacts
            ?? throw new ArgumentException("the int8 head was quantized without its error facts", nameof(head));
        Head = head;
        double n = head.Columns + 2;
        double gamma = n * Unit / (1 - n * Unit);
        _perInputMass = new float[head.Rows];
        _perInputRounding = new float[head.Rows];
        for (int v = 0; v < head.Rows; v++)
        {
            _perInputMass[v] = RoundUp(facts.MaxError[v] + gamma * facts.MaxAbs[v]);
            _perInputRounding[v] = RoundUp((double)head.Scales[v] * facts.CodeAbsSum[v]);
        }
    }

    public LmHeadQ8 Head { get; }
    public int Rows => Head.Rows;
    public int Columns => Head.Columns;

    /// <summary>What the bound needs to know of one input vector y.</summary>
    /// <param name="Step">t: y16 = round(y / t).</param>
    /// <param name="MaxRounding">δ = max |y − t·y16|, rounded up.</param>
    /// <param name="Mass">Σ|y|, rounded up.</param>
    /// <param name="IsUsable">False when y is not finite (the caller falls back to the full head).</param>
    public readonly record struct Input(float Step, float MaxRounding, float Mass, bool IsUsable);

    /// <summary>Round y to int16 (y16 = round(y·32767 / max|y|)) and measure what the bound needs.</summary>
    public static Input Prepare(ReadOnlySpan<float> y, Span<short> y16)
    {
        if (y16.Length < y.Length) throw new ArgumentException("the int16 buffer is shorter than the input", nameof(y16));
        float maxAbs = 0;
        foreach (float v in y) maxAbs = Math.Max(maxAbs, Math.Abs(v));
        if (!float.IsFinite(maxAbs)) return new Input(0, 0, 0, false);
        if (maxAbs == 0)
        {
            y16[..y.Length].Clear();
            return new Input(1, 0, 0, true);
        }
        float toInt = 32767f / maxAbs, step = maxAbs / 32767f;
        double maxRounding = 0, mass = 0;
        for (int k = 0; k < y.Length; k++)
        {
            // |y·toInt| ≤ 32767·(1 + 2^−23) rounds to at most 32767: the cast cannot overflow.
            short q = (short)MathF.Round(y[k] * toInt);
            y16[k] = q;
            // step·q is exact in double (24 × 16 bits) and close to y, so the difference is exact too.
            maxRounding = Math.Max(maxRounding, Math.Abs(y[k] - (double)step * q));
            mass += Math.Abs(y[k]);
        }
        // The double sum of ≤ 2^20 floats is within n·2^−53 of the exact one: widen it a little.
        return new Input(step, RoundUp(maxRounding), RoundUp(mass * (1 + 1e-9)), true);
    }

    /// <summary>
    /// Bounds of rows rowStart … from their exact int8 × int16 dots (<paramref name="dots"/>[i] for row
    /// rowStart + i): lower[i] ≤ F16 logit ≤ upper[i].
    /// </summary>
    public void Bounds(in Input input, int rowStart, ReadOnlySpan<long> dots, Span<float> lower, Span<float> upper)
    {
        // In float, a handful of operations per row (this runs for every row of every token). Each
        // rounding is within 2^−24 of its exact result, so a = s·(t·D) is within ~3·2^−24·|a| of s·t·D,
        // e within ~4·2^−24·e of the bound, and a ∓ e within 2^−24·(|a| + e) of the exact sum: widening
        // e by 2^−16·(e + |a|) covers all of them with room to spare.
        ReadOnlySpan<float> scales = Head.Scales.AsSpan(rowStart, dots.Length);
        ReadOnlySpan<float> perMass = _perInputMass.AsSpan(rowStart, dots.Length);
        ReadOnlySpan<float> perRounding = _perInputRounding.AsSpan(rowStart, dots.Length);
        lower = lower[..dots.Length];
        upper = upper[..dots.Length];
        float step = input.Step, mass = input.Mass, rounding = input.MaxRounding;
        const float widen = 1f / 65536;
        for (int i = 0; i < dots.Length; i++)
        {
            float a = scales[i] * (step * dots[i]);
            float e = perMass[i] * mass + perRounding[i] * rounding;
            e += (e + Math.Abs(a)) * widen + 1e-37f;
            lower[i] = a - e;
            upper[i] = a + e;
        }
    }

    private static float RoundUp(double value)
    {
        float f = (float)value;
        return f < value ? MathF.BitIncrement(f) : f;
    }

}
