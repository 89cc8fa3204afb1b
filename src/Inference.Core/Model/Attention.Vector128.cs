using System.Runtime.Intrinsics;
using BitNet.Inference.Kernels;

namespace BitNet.Inference.Model;

// The portable 128-bit attention loops (ARM64 AdvSimd and any Vector128 platform).
internal static partial class Attention
{
    /// <summary>
    /// <see cref="FourHeadScores"/> on 128-bit vectors: two positions per pass, each 8-dimension step
    /// widened to a low and a high half with their own accumulators, so 16 independent FMA chains
    /// (NEON has 32 registers: these, the 8 q vectors and the 4 k vectors fit).
    /// </summary>
    private static unsafe void FourHeadScores128(ReadOnlySpan<float> q, ReadOnlySpan<Half> keys, int kvDim, int headDim, int positions,
        int count, float scale, Span<float> scores)
    {
        fixed (float* q0 = q)
        fixed (Half* k0 = keys)
        fixed (float* s = scores)
        {
            float* q1 = q0 + headDim, q2 = q1 + headDim, q3 = q2 + headDim;
            var mask = Vector128.Create(F16.ScaledValueMask);
            for (int j = 0; j < count; j += 2)
            {
                bool pair = j + 1 < count;   // an odd last position is paired with itself, its copy not stored
                short* k = (short*)(k0 + (long)j * kvDim), kNext = pair ? k + kvDim : k;
                Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default, a4 = default, a5 = default, a6 = default, a7 = default;
                Vector128<float> b0 = default, b1 = default, b2 = default, b3 = default, b4 = default, b5 = default, b6 = default, b7 = default;
                for (int d = 0; d < headDim; d += 8)
                {
                    F16.ScaledValues128(k + d, mask, out Vector128<float> ka, out Vector128<float> kaHigh);
                    F16.ScaledValues128(kNext + d, mask, out Vector128<float> kb, out Vector128<float> kbHigh);
                    Vector128<float> x0 = Vector128.Load(q0 + d), x1 = Vector128.Load(q1 + d);
                    Vector128<float> x2 = Vector128.Load(q2 + d), x3 = Vector128.Load(q3 + d);
                    Vector128<float> y0 = Vector128.Load(q0 + d + 4), y1 = Vector128.Load(q1 + d + 4);
                    Vector128<float> y2 = Vector128.Load(q2 + d + 4), y3 = Vector128.Load(q3 + d + 4);
                    a0 = Vector128.FusedMultiplyAdd(x0, ka, a0);
                    a1 = Vector128.FusedMultiplyAdd(x1, ka, a1);
                    a2 = Vector128.FusedMultiplyAdd(x2, ka, a2);
                    a3 = Vector128.FusedMultiplyAdd(x3, ka, a3);
                    a4 = Vector128.FusedMultiplyAdd(y0, kaHigh, a4);
                    a5 = Vector128.FusedMultiplyAdd(y1, kaHigh, a5);
                    a6 = Vector128.FusedMultiplyAdd(y2, kaHigh, a6);
                    a7 = Vector128.FusedMultiplyAdd(y3, kaHigh, a7);
                    b0 = Vector128.FusedMultiplyAdd(x0, kb, b0);
                    b1 = Vector128.FusedMultiplyAdd(x1, kb, b1);
                    b2 = Vector128.FusedMultiplyAdd(x2, kb, b2);
                    b3 = Vector128.FusedMultiplyAdd(x3, kb, b3);
                    b4 = Vector128.FusedMultiplyAdd(y0, kbHigh, b4);
                    b5 = Vector128.FusedMultiplyAdd(y1, kbHigh, b5);
                    b6 = Vector128.FusedMultiplyAdd(y2, kbHigh, b6);
                    b7 = Vector128.FusedMultiplyAdd(y3, kbHigh, b7);
                }
                s[j] = Vector128.Sum(a0 + a4) * scale;
                s[positions + j] = Vector128.Sum(a1 + a5) * scale;
                s[2 * positions + j] = Vector128.Sum(a2 + a6) * scale;
                s[3 * positions + j] = Vector128.Sum(a3 + a7) * scale;
                if (!pair) break;
                s[j + 1] = Vector128.Sum(b0 + b4) * scale;
                s[positions + j + 1] = Vector128.Sum(b1 + b5) * scale;
                s[2 * positions + j + 1] = Vector128.Sum(b2 + b6) * scale;
                s[3 * positions + j + 1] = Vector128.Sum(b3 + b7) * scale;
            }
        }
    }

    /// <summary>
    /// <see cref="FourHeadValuePartials"/> on 128-bit vectors: sixteen dimensions per pass as four vectors
    /// per head (16 FMA chains), each chain over one partial's positions, in the same tiles of
    /// <see cref="ValueTilePositions"/> positions. The prefetches run only on x86 (a CPU without AVX2): .NET
    /// exposes no prefetch instruction on ARM64 outside SVE.
    /// </summary>
    private static unsafe void FourHeadValuePartials128(ReadOnlySpan<float> probabilities, ReadOnlySpan<Half> values, ReadOnlySpan<int> rowOffsets,
        int headDim, int positions, int partials, Span<float> partialRows)
    {
        int width = 4 * headDim;
        fixed (float* p0 = probabilities)
        fixed (Half* v0 = values)
        fixed (int* offsets = rowOffsets)
        fixed (float* rows = partialRows)
        {
            float* p1 = p0 + positions, p2 = p1 + positions, p3 = p2 + positions;
            var mask = Vector128.Create(F16.ScaledValueMask);
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
                        // aH, cH: head H's dimensions d … d + 3, + 4 … 7; bH, eH: the same of the second 8.
                        // Zero at the first tile, else where the tile before left them.
                        float* oa = rows + (long)m * width + d, ob = oa + second;
                        Vector128<float> a0 = default, a1 = default, a2 = default, a3 = default;
                        Vector128<float> c0 = default, c1 = default, c2 = default, c3 = default;
                        Vector128<float> b0 = default, b1 = default, b2 = default, b3 = default;
                        Vector128<float> e0 = default, e1 = default, e2 = default, e3 = default;
                        if (t0 > 0)
                        {
                            a0 = Vector128.Load(oa); a1 = Vector128.Load(oa + headDim); a2 = Vector128.Load(oa + 2 * headDim); a3 = Vector128.Load(oa + 3 * headDim);
                            c0 = Vector128.Load(oa + 4); c1 = Vector128.Load(oa + headDim + 4); c2 = Vector128.Load(oa + 2 * headDim + 4); c3 = Vector128.Load(oa + 3 * headDim + 4);
                            b0 = Vector128.Load(ob); b1 = Vector128.Load(ob + headDim); b2 = Vector128.Load(ob + 2 * headDim); b3 = Vector128.Load(ob + 3 * headDim);
                            e0 = Vector128.Load(ob + 4); e1 = Vector128.Load(ob + headDim + 4); e2 = Vector128.Load(ob + 2 * headDim + 4); e3 = Vector128.Load(ob + 3 * headDim + 4);
                        }
                        for (int j = t0 + m; j < t1; j += partials)
                        {
                            short* v = vd + offsets[j];
                            if (d == 0) PrefetchValueRows(v, firstLine: 32, (short*)v0, offsets, j, positions, headDim);
                            F16.ScaledValues128(v, mask, out Vector128<float> va, out Vector128<float> vaHigh);
                            F16.ScaledValues128(v + second, mask, out Vector128<float> vb, out Vector128<float> vbHigh);
                            Vector128<float> w0 = Vector128.Create(p0[j]), w1 = Vector128.Create(p1[j]);
                            Vector128<float> w2 = Vector128.Create(p2[j]), w3 = Vector128.Create(p3[j]);
                            a0 = Vector128.FusedMultiplyAdd(w0, va, a0);
                            a1 = Vector128.FusedMultiplyAdd(w1, va, a1);
                            a2 = Vector128.FusedMultiplyAdd(w2, va, a2);
                            a3 = Vector128.FusedMultiplyAdd(w3, va, a3);
                            c0 = Vector128.FusedMultiplyAdd(w0, vaHigh, c0);
                            c1 = Vector128.FusedMultiplyAdd(w1, vaHigh, c1);
                            c2 = Vector128.FusedMultiplyAdd(w2, vaHigh, c2);
                            c3 = Vector128.FusedMultiplyAdd(w3, vaHigh, c3);
                            b0 = Vector128.FusedMultiplyAdd(w0, vb, b0);
                            b1 = Vector128.FusedMultiplyAdd(w1, vb, b1);
                            b2 = Vector128.FusedMultiplyAdd(w2, vb, b2);
                            b3 = Vector128.FusedMultiplyAdd(w3, vb, b3);
                            e0 = Vector128.FusedMultiplyAdd(w0, vbHigh, e0);
                            e1 = Vector128.FusedMultiplyAdd(w1, vbHigh, e1);
                            e2 = Vector128.FusedMultiplyAdd(w2, vbHigh, e2);
                            e3 = Vector128.FusedMultiplyAdd(w3, vbHigh, e3);
                        }
                        a0.Store(oa); a1.Store(oa + headDim); a2.Store(oa + 2 * headDim); a3.Store(oa + 3 * headDim);
                        c0.Store(oa + 4); c1.Store(oa + headDim + 4); c2.Store(oa + 2 * headDim + 4); c3.Store(oa + 3 * headDim + 4);
                        if (!both) continue;
                        b0.Store(ob); b1.Store(ob + headDim); b2.Store(ob + 2 * headDim); b3.Store(ob + 3 * headDim);
                        e0.Store(ob + 4); e1.Store(ob + headDim + 4); e2.Store(ob + 2 * headDim + 4); e3.Store(ob + 3 * headDim + 4);
                    }
                }
            }
        }
    }
}
