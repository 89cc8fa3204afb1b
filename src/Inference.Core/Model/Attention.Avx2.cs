using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using BitNet.Inference.Kernels;

namespace BitNet.Inference.Model;

// The AVX2 + FMA attention loops: scores and value sums for four heads of a KV group.
internal static partial class Attention
{
    /// <summary>
    /// scores[h·positions + j] = (q_h · k_j) · scale for 4 heads; q pre-scaled by 2^112, k read as k·2^−112.
    /// Two positions per pass: each head's sum is a chain of dependent FMAs (4 cycles apiece on current
    /// x86 cores), so with one position the 4 chains leave the FMA units mostly idle; 8 chains fill them,
    /// and each q vector loaded serves both rows. Every score is still summed in the same order.
    /// </summary>
    private static unsafe void FourHeadScores(ReadOnlySpan<float> q, ReadOnlySpan<Half> keys, int kvDim, int headDim, int positions,
        int count, float scale, Span<float> scores)
    {
        fixed (float* q0 = q)
        fixed (Half* k0 = keys)
        fixed (float* s = scores)
        {
            float* q1 = q0 + headDim, q2 = q1 + headDim, q3 = q2 + headDim;
            var mask = Vector256.Create(F16.ScaledValueMask);
            for (int j = 0; j < count; j += 2)
            {
                bool pair = j + 1 < count;   // an odd last position is paired with itself, its copy not stored
                short* k = (short*)(k0 + (long)j * kvDim), kNext = pair ? k + kvDim : k;
                Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
                for (int d = 0; d < headDim; d += 8)
                {
                    if (Sse.IsSupported) Sse.Prefetch0((byte*)k + KeyPrefetchBytes + 4 * d);
                    Vector256<float> ka = F16.ScaledValues256(k + d, mask), kb = F16.ScaledValues256(kNext + d, mask);
                    Vector256<float> x0 = Vector256.Load(q0 + d), x1 = Vector256.Load(q1 + d);
                    Vector256<float> x2 = Vector256.Load(q2 + d), x3 = Vector256.Load(q3 + d);
                    a0 = Vector256.FusedMultiplyAdd(x0, ka, a0);
                    a1 = Vector256.FusedMultiplyAdd(x1, ka, a1);
                    a2 = Vector256.FusedMultiplyAdd(x2, ka, a2);
                    a3 = Vector256.FusedMultiplyAdd(x3, ka, a3);
                    b0 = Vector256.FusedMultiplyAdd(x0, kb, b0);
                    b1 = Vector256.FusedMultiplyAdd(x1, kb, b1);
                    b2 = Vector256.FusedMultiplyAdd(x2, kb, b2);
                    b3 = Vector256.FusedMultiplyAdd(x3, kb, b3);
                }
                s[j] = Vector256.Sum(a0) * scale;
                s[positions + j] = Vector256.Sum(a1) * scale;
                s[2 * positions + j] = Vector256.Sum(a2) * scale;
                s[3 * positions + j] = Vector256.Sum(a3) * scale;
                if (!pair) break;
                s[j + 1] = Vector256.Sum(b0) * scale;
                s[positions + j + 1] = Vector256.Sum(b1) * scale;
                s[2 * positions + j + 1] = Vector256.Sum(b2) * scale;
                s[3 * positions + j + 1] = Vector256.Sum(b3) * scale;
            }
        }
    }

    /// <summary>
    /// The V·p partial sums for 4 heads (<see cref="AttentionOrder"/>): partial m of output (h, d) is
    /// Σ p_hj · v_j[d] over positions j ≡ m (mod <paramref name="partials"/>) in position order, stored
    /// at partialRows[m · 4·head_dim + h · head_dim + d]; p pre-scaled by 2^112, v read as v·2^−112,
    /// row j at values[rowOffsets[j]]. Sixteen dimensions per pass for one partial: 8 FMA chains (as in
    /// <see cref="FourHeadScores"/>), each p broadcast serving both halves, the chain running over the
    /// partial's positions in registers, one tile of <see cref="ValueTilePositions"/> at a time. Every
    /// partial row is written (a partial without positions as 0).
    /// </summary>
    private static unsafe void FourHeadValuePartials(ReadOnlySpan<float> probabilities, ReadOnlySpan<Half> values, ReadOnlySpan<int> rowOffsets,
        int headDim, int positions, int partials, Span<float> partialRows)
    {
        int width = 4 * headDim;
        fixed (float* p0 = probabilities)
        fixed (Half* v0 = values)
        fixed (int* offsets = rowOffsets)
        fixed (float* rows = partialRows)
        {
            float* p1 = p0 + positions, p2 = p1 + positions, p3 = p2 + positions;
            var mask = Vector256.Create(F16.ScaledValueMask);
            for (int t0 = 0; t0 < positions; t0 += ValueTilePositions)
            {
                int t1 = Math.Min(positions, t0 + ValueTilePositions);
                for (int d = 0; d < headDim; d += 16)
                {
                    bool both = d + 16 <= headDim;   // a last odd 8 dimensions is read twice, its copy not stored
                    int second = both ? 8 : 0;
                    short* vd = (short*)v0 + d;
                    for (int m = 0; m < partials; m++)
                    {
                        // Zero at the first tile, else where the tile before left them (an odd last 8
                        // dimensions' copy, never stored, equals the first: both read the same row).
                        float* oa = rows + (long)m * width + d, ob = oa + second;
                        Vector256<float> a0 = default, a1 = default, a2 = default, a3 = default;
                        Vector256<float> b0 = default, b1 = default, b2 = default, b3 = default;
                        if (t0 > 0)
                        {
                            a0 = Vector256.Load(oa); a1 = Vector256.Load(oa + headDim); a2 = Vector256.Load(oa + 2 * headDim); a3 = Vector256.Load(oa + 3 * headDim);
                            b0 = Vector256.Load(ob); b1 = Vector256.Load(ob + headDim); b2 = Vector256.Load(ob + 2 * headDim); b3 = Vector256.Load(ob + 3 * headDim);
                        }
                        for (int j = t0 + m; j < t1; j += partials)
                        {
                            short* v = vd + offsets[j];
                            if (d == 0) PrefetchValueRows(v, firstLine: 32, (short*)v0, offsets, j, positions, headDim);
                            Vector256<float> va = F16.ScaledValues256(v, mask), vb = F16.ScaledValues256(v + second, mask);
                            Vector256<float> w0 = Vector256.Create(p0[j]), w1 = Vector256.Create(p1[j]);
                            Vector256<float> w2 = Vector256.Create(p2[j]), w3 = Vector256.Create(p3[j]);
                            a0 = Vector256.FusedMultiplyAdd(w0, va, a0);
                            a1 = Vector256.FusedMultiplyAdd(w1, va, a1);
                            a2 = Vector256.FusedMultiplyAdd(w2, va, a2);
                            a3 = Vector256.FusedMultiplyAdd(w3, va, a3);
                            b0 = Vector256.FusedMultiplyAdd(w0, vb, b0);
                            b1 = Vector256.FusedMultiplyAdd(w1, vb, b1);
                            b2 = Vector256.FusedMultiplyAdd(w2, vb, b2);
                            b3 = Vector256.FusedMultiplyAdd(w3, vb, b3);
                        }
                        a0.Store(oa);
                        a1.Store(oa + headDim);
                        a2.Store(oa + 2 * headDim);
                        a3.Store(oa + 3 * headDim);
                        if (!both) continue;
                        b0.Store(ob);
                        b1.Store(ob + headDim);
                        b2.Store(ob + 2 * headDim);
                        b3.Store(ob + 3 * headDim);
                    }
                }
            }
        }
    }
}
