using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace BitNet.Inference.Kernels;

/// <summary>
/// The float order of the attention soft-max and of the probabilities · values sums, as bitnet.cpp's
/// AVX2 build (the reference the arch oracles come from) evaluates them; scalar, one output at a time.
/// This is the spec: the attention loops of every kernel set must give these bits (docs/kernels.md).
/// <list type="bullet">
/// <item>Soft-max (ggml_vec_soft_max_f32): exp(x − max) by ggml's polynomial exp; each group of 8
/// positions summed in float by <see cref="SumOfEight"/>, the group sums added in double.</item>
/// <item>V·p for a single-row product (ggml_vec_dot_f16, decode): position j goes to partial sum
/// j mod 32 (4 accumulators × 8 lanes), each an FMA chain in position order, then
/// <see cref="CombineDecodePartials"/>.</item>
/// <item>V·p for a multi-row product (llamafile's tinyBLAS, prompt batches): position j goes to partial
/// j mod 8, then <see cref="SumOfEight"/>.</item>
/// </list>
/// ggml pads the KV window to 32 positions with zeros; a zero term leaves every sum unchanged, so the
/// padding needs no emulation.
/// </summary>
internal static class AttentionOrder
{
    /// <summary>Partial sums of a single-row V·p: ggml_vec_dot_f16's 4 accumulators of 8 lanes.</summary>
    public const int DecodePartials = 32;

    /// <summary>Partial sums of a multi-row V·p: tinyBLAS's 8 lanes.</summary>
    public const int PromptPartials = 8;

    /// <summary>
    /// The partial sums for a V·p product: the single-row one (probabilities rounded to F16, see
    /// <c>Precision</c>) or the multi-row one; both choices follow the same ggml dispatch.
    /// </summary>
    public static int PartialsFor(bool singleRow) => singleRow ? DecodePartials : PromptPartials;

    /// <summary>The soft-max of <paramref name="scores"/> in place (already scaled; no masked entries).</summary>
    public static void SoftMax(Span<float> scores)
    {
        float max = float.NegativeInfinity;
        foreach (float v in scores) max = Math.Max(max, v);
        double sum = 0;
        int i = 0;
        if (Vector128.IsHardwareAccelerated)
        {
            // Whole groups of 8 as two vectors of 4: the exponentials lane by lane (the same bits), and
            // SumOfEight's tree from high + low, whose lanes are v4 + v0, v5 + v1, v6 + v2, v7 + v3.
            ref float first = ref MemoryMarshal.GetReference(scores);
            var m = Vector128.Create(max);
            for (; i + 8 <= scores.Length; i += 8)
            {
                Vector128<float> low = VectorMath.PolynomialExp(Vector128.LoadUnsafe(ref first, (nuint)i) - m);
                Vector128<float> high = VectorMath.PolynomialExp(Vector128.LoadUnsafe(ref first, (nuint)i + 4) - m);
                low.StoreUnsafe(ref first, (nuint)i);
                high.StoreUnsafe(ref first, (nuint)i + 4);
                Vector128<float> t = high + low;
                sum += (t[0] + t[2]) + (t[1] + t[3]);
            }
        }
        Span<float> group = stackalloc float[8];
        for (; i < scores.Length; i += 8)
        {
            for (int r = 0; r < 8; r++)
                group[r] = i + r < scores.Length ? (scores[i + r] = VectorMath.PolynomialExp(scores[i + r] - max)) : 0f;
            sum += SumOfEight(group);
        }
        VectorMath.Scale(scores, (float)(1.0 / sum));
    }

    /// <summary>
    /// One 8-lane register summed as the AVX2 build does (high half + low half, then movehl, then
    /// movehdup): ((v4 + v0) + (v6 + v2)) + ((v5 + v1) + (v7 + v3)).
    /// </summary>
    public static float SumOfEight(ReadOnlySpan<float> v) => ((v[4] + v[0]) + (v[6] + v[2])) + ((v[5] + v[1]) + (v[7] + v[3]));

    /// <summary>
    /// ggml_vec_dot_f16's reduction of its 32 partials p: accumulators 0 + 2 and 1 + 3 (each 8 lanes),
    /// their sum s, then s's lanes as ((s0 + s4) + (s1 + s5)) + ((s2 + s6) + (s3 + s7)).
    /// </summary>
    public static float CombineDecodePartials(ReadOnlySpan<float> p)
    {
        Span<float> s = stackalloc float[8];
        for (int r = 0; r < 8; r++) s[r] = (p[r] + p[16 + r]) + (p[8 + r] + p[24 + r]);
        return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
    }

    /// <summary>Σ_j p[j]·v[j] over p.Length positions in the order of a product with <paramref name="partials"/> partial sums.</summary>
    public static float ValueDot(ReadOnlySpan<float> p, ReadOnlySpan<float> v, int partials)
    {
        if (partials is not (DecodePartials or PromptPartials)) throw new ArgumentOutOfRangeException(nameof(partials));
        Span<float> acc = stackalloc float[DecodePartials];
        acc.Clear();
        for (int j = 0; j < p.Length; j++) acc[j % partials] = MathF.FusedMultiplyAdd(p[j], v[j], acc[j % partials]);
        return partials == DecodePartials ? CombineDecodePartials(acc) : SumOfEight(acc);
    }

    /// <summary>
    /// <see cref="CombineDecodePartials"/> or <see cref="SumOfEight"/> for every element of a row at once:
    /// <paramref name="partialRows"/> holds the partials' rows of <paramref name="width"/> values each
    /// (partial m at m · width); the result goes to <paramref name="output"/>. The same adds element-wise
    /// on whole vectors, so any vector width gives the scalar bits.
    /// </summary>
    public static void CombinePartialRows(ReadOnlySpan<float> partialRows, int partials, int width, Span<float> output)
    {
        if (partials is not (DecodePartials or PromptPartials)) throw new ArgumentOutOfRangeException(nameof(partials));
        if (partialRows.Length < partials * width || output.Length < width) throw new ArgumentException("fewer values than partials × width");
        ref float rows = ref MemoryMarshal.GetReference(partialRows);
        int i = 0;
        if (Vector512.IsHardwareAccelerated)
            for (; i + Vector512<float>.Count <= width; i += Vector512<float>.Count)
            {
                Vector512<float> sum = partials == DecodePartials ? CombineDecodeVectors512(ref rows, width, i) : SumOfEightVectors512(ref rows, width, i);
                sum.StoreUnsafe(ref MemoryMarshal.GetReference(output), (nuint)i);
            }
        if (Vector.IsHardwareAccelerated)
            for (; i + Vector<float>.Count <= width; i += Vector<float>.Count)
            {
                Vector<float> sum = partials == DecodePartials ? CombineDecodeVectors(ref rows, width, i) : SumOfEightVectors(ref rows, width, i);
                sum.CopyTo(output[i..]);
            }
        Span<float> lanes = stackalloc float[DecodePartials];
        for (; i < width; i++)
        {
            for (int m = 0; m < partials; m++) lanes[m] = Unsafe.Add(ref rows, m * width + i);
            output[i] = partials == DecodePartials ? CombineDecodePartials(lanes) : SumOfEight(lanes);
        }
    }

    private static Vector512<float> Load512(ref float rows, int width, int m, int i) => Vector512.LoadUnsafe(ref rows, (nuint)(m * width + i));

    private static Vector512<float> SumOfEightVectors512(ref float rows, int width, int i) =>
        ((Load512(ref rows, width, 4, i) + Load512(ref rows, width, 0, i)) + (Load512(ref rows, width, 6, i) + Load512(ref rows, width, 2, i))) +
        ((Load512(ref rows, width, 5, i) + Load512(ref rows, width, 1, i)) + (Load512(ref rows, width, 7, i) + Load512(ref rows, width, 3, i)));

    private static Vector512<float> CombineDecodeVectors512(ref float rows, int width, int i)
    {
        Vector512<float> S(ref float rows, int r) =>
            (Load512(ref rows, width, r, i) + Load512(ref rows, width, 16 + r, i)) + (Load512(ref rows, width, 8 + r, i) + Load512(ref rows, width, 24 + r, i));
        return ((S(ref rows, 0) + S(ref rows, 4)) + (S(ref rows, 1) + S(ref rows, 5))) + ((S(ref rows, 2) + S(ref rows, 6)) + (S(ref rows, 3) + S(ref rows, 7)));
    }

    private static Vector<float> Load(ref float rows, int width, int m, int i) => Vector.LoadUnsafe(ref rows, (nuint)(m * width + i));

    private static Vector<float> SumOfEightVectors(ref float rows, int width, int i) =>
        ((Load(ref rows, width, 4, i) + Load(ref rows, width, 0, i)) + (Load(ref rows, width, 6, i) + Load(ref rows, width, 2, i))) +
        ((Load(ref rows, width, 5, i) + Load(ref rows, width, 1, i)) + (Load(ref rows, width, 7, i) + Load(ref rows, width, 3, i)));

    private static Vector<float> CombineDecodeVectors(ref float rows, int width, int i)
    {
        Vector<float> S(ref float rows, int r) =>
            (Load(ref rows, width, r, i) + Load(ref rows, width, 16 + r, i)) + (Load(ref rows, width, 8 + r, i) + Load(ref rows, width, 24 + r, i));
        return ((S(ref rows, 0) + S(ref rows, 4)) + (S(ref rows, 1) + S(ref rows, 5))) + ((S(ref rows, 2) + S(ref rows, 6)) + (S(ref rows, 3) + S(ref rows, 7)));
    }
}
