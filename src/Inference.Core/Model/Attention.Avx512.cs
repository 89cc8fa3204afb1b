using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using BitNet.Inference.Kernels;

namespace BitNet.Inference.Model;

// The AVX-512F attention loops: scores and value sums for four heads of a KV group.
internal static partial class Attention
{
    /// <summary>
    /// <see cref="FourHeadScores"/> with 512-bit accumulators, four positions per pass: each holds two of the
    /// 256-bit loop's accumulators side by side (position j in the low half, j + 1 in the high half), and each
    /// 8-dimension q vector, broadcast to both halves, serves four positions. Every lane takes the same FMAs in
    /// the same order and each half is summed as the 256-bit loop sums its vector, so the scores are the same
    /// bit for bit. One to three positions left over take the 256-bit loop.
    /// </summary>
    private static unsafe void FourHeadScores512(ReadOnlySpan<float> q, ReadOnlySpan<Half> keys, int kvDim, int headDim, int positions,
        int count, float scale, Span<float> scores)
    {
        int quads = count / 4 * 4;
        fixed (float* q0 = q)
        fixed (Half* k0 = keys)
        fixed (float* s = scores)
        {
            float* q1 = q0 + headDim, q2 = q1 + headDim, q3 = q2 + headDim;
            var mask = Vector512.Create(F16.ScaledValueMask);
            for (int j = 0; j < quads; j += 4)
            {
                short* ka = (short*)(k0 + (long)j * kvDim), kb = ka + kvDim, kc = kb + kvDim, kd = kc + kvDim;
                // aH: head H's sums for positions j (low half) and j + 1 (high half); bH: j + 2 and j + 3.
                Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
                for (int d = 0; d < headDim; d += 8)
                {
                    Sse.Prefetch0((byte*)ka + KeyPrefetchBytes + 8 * d);
                    Vector512<float> kab = ScaledPair(ka + d, kb + d, mask), kcd = ScaledPair(kc + d, kd + d, mask);
                    Vector512<float> x0 = Both(q0 + d), x1 = Both(q1 + d), x2 = Both(q2 + d), x3 = Both(q3 + d);
                    a0 = Avx512F.FusedMultiplyAdd(x0, kab, a0);
                    a1 = Avx512F.FusedMultiplyAdd(x1, kab, a1);
                    a2 = Avx512F.FusedMultiplyAdd(x2, kab, a2);
                    a3 = Avx512F.FusedMultiplyAdd(x3, kab, a3);
                    b0 = Avx512F.FusedMultiplyAdd(x0, kcd, b0);
                    b1 = Avx512F.FusedMultiplyAdd(x1, kcd, b1);
                    b2 = Avx512F.FusedMultiplyAdd(x2, kcd, b2);
                    b3 = Avx512F.FusedMultiplyAdd(x3, kcd, b3);
                }
                StoreFour(s + j, a0, b0, scale);
                StoreFour(s + positions + j, a1, b1, scale);
                StoreFour(s + 2 * positions + j, a2, b2, scale);
                StoreFour(s + 3 * positions + j, a3, b3, scale);
            }
        }
        if (quads < count)
            FourHeadScores(q, keys[(quads * kvDim)..], kvDim, headDim, positions, count - quads, scale, scores[quads..]);

        // Eight q values in both halves.
        static Vector512<float> Both(float* values)
        {
            Vector256<float> v = Vector256.Load(values);
            return Vector512.Create(v, v);
        }

        // Two rows' eight halves each, widened side by side as k·2^−112.
        static Vector512<float> ScaledPair(short* low, short* high, Vector512<int> mask) =>
            F16.ScaledValues512(Vector256.Create(Vector128.Load(low), Vector128.Load(high)), mask);

        // A head's scores of four positions: each 8-lane half summed as Vector256.Sum sums the 256-bit loop's accumulators.
        static void StoreFour(float* destination, Vector512<float> first, Vector512<float> second, float scale)
        {
            destination[0] = Vector256.Sum(first.GetLower()) * scale;
            destination[1] = Vector256.Sum(first.GetUpper()) * scale;
            destination[2] = Vector256.Sum(second.GetLower()) * scale;
            destination[3] = Vector256.Sum(second.GetUpper()) * scale;
        }
    }

    /// <summary>
    /// <see cref="FourHeadValuePartials"/> on 512-bit vectors: 64 dimensions per pass, four vectors per
    /// head, so each position's four probabilities are broadcast once per 64 dimensions instead of once
    /// per 16, and 16 FMA chains run side by side; positions go in tiles of <see cref="ValueTilePositions"/>.
    /// Every lane takes the same FMAs in the same order as in the 256-bit loop, so the partials are the
    /// same bit for bit. head_dim a multiple of 64.
    /// </summary>
    private static unsafe void FourHeadValuePartials512(ReadOnlySpan<float> probabilities, ReadOnlySpan<Half> values, ReadOnlySpan<int> rowOffsets,
        int headDim, int positions, int partials, Span<float> partialRows)
    {
        int width = 4 * headDim;
        fixed (float* p0 = probabilities)
        fixed (Half* v0 = values)
        fixed (int* offsets = rowOffsets)
        fixed (float* rows = partialRows)
        {
            float* p1 = p0 + positions, p2 = p1 + positions, p3 = p2 + positions;
            var mask = Vector512.Create(F16.ScaledValueMask);
            for (int t0 = 0; t0 < positions; t0 += ValueTilePositions)
            {
                int t1 = Math.Min(positions, t0 + ValueTilePositions);
                for (int d = 0; d < headDim; d += 64)
                {
                    short* vd = (short*)v0 + d;
                    for (int m = 0; m < partials; m++)
                    {
                        // aH, bH, cH, eH: head H's dimensions d … d + 15, + 16 … 31, + 32 … 47, + 48 … 63;
                        // zero at the first tile, else where the tile before left them.
                        float* o0 = rows + (long)m * width + d, o1 = o0 + headDim, o2 = o1 + headDim, o3 = o2 + headDim;
                        Vector512<float> a0 = default, a1 = default, a2 = default, a3 = default;
                        Vector512<float> b0 = default, b1 = default, b2 = default, b3 = default;
                        Vector512<float> c0 = default, c1 = default, c2 = default, c3 = default;
                        Vector512<float> e0 = default, e1 = default, e2 = default, e3 = default;
                        if (t0 > 0)
                        {
                            a0 = Vector512.Load(o0); b0 = Vector512.Load(o0 + 16); c0 = Vector512.Load(o0 + 32); e0 = Vector512.Load(o0 + 48);
                            a1 = Vector512.Load(o1); b1 = Vector512.Load(o1 + 16); c1 = Vector512.Load(o1 + 32); e1 = Vector512.Load(o1 + 48);
                            a2 = Vector512.Load(o2); b2 = Vector512.Load(o2 + 16); c2 = Vector512.Load(o2 + 32); e2 = Vector512.Load(o2 + 48);
                            a3 = Vector512.Load(o3); b3 = Vector512.Load(o3 + 16); c3 = Vector512.Load(o3 + 32); e3 = Vector512.Load(o3 + 48);
                        }
                        for (int j = t0 + m; j < t1; j += partials)
                        {
                            short* v = vd + offsets[j];
                            if (d == 0) PrefetchValueRows(v, firstLine: 64, (short*)v0, offsets, j, positions, headDim);
                            Vector512<float> va = F16.ScaledValues512(v, mask), vb = F16.ScaledValues512(v + 16, mask);
                            Vector512<float> vc = F16.ScaledValues512(v + 32, mask), ve = F16.ScaledValues512(v + 48, mask);
                            Vector512<float> w0 = Vector512.Create(p0[j]), w1 = Vector512.Create(p1[j]);
                            Vector512<float> w2 = Vector512.Create(p2[j]), w3 = Vector512.Create(p3[j]);
                            a0 = Avx512F.FusedMultiplyAdd(w0, va, a0);
                            a1 = Avx512F.FusedMultiplyAdd(w1, va, a1);
                            a2 = Avx512F.FusedMultiplyAdd(w2, va, a2);
                            a3 = Avx512F.FusedMultiplyAdd(w3, va, a3);
                            b0 = Avx512F.FusedMultiplyAdd(w0, vb, b0);
                            b1 = Avx512F.FusedMultiplyAdd(w1, vb, b1);
                            b2 = Avx512F.FusedMultiplyAdd(w2, vb, b2);
                            b3 = Avx512F.FusedMultiplyAdd(w3, vb, b3);
                            c0 = Avx512F.FusedMultiplyAdd(w0, vc, c0);
                            c1 = Avx512F.FusedMultiplyAdd(w1, vc, c1);
                            c2 = Avx512F.FusedMultiplyAdd(w2, vc, c2);
                            c3 = Avx512F.FusedMultiplyAdd(w3, vc, c3);
                            e0 = Avx512F.FusedMultiplyAdd(w0, ve, e0);
                            e1 = Avx512F.FusedMultiplyAdd(w1, ve, e1);
                            e2 = Avx512F.FusedMultiplyAdd(w2, ve, e2);
                            e3 = Avx512F.FusedMultiplyAdd(w3, ve, e3);
                        }
                        a0.Store(o0); b0.Store(o0 + 16); c0.Store(o0 + 32); e0.Store(o0 + 48);
                        a1.Store(o1); b1.Store(o1 + 16); c1.Store(o1 + 32); e1.Store(o1 + 48);
                        a2.Store(o2); b2.Store(o2 + 16); c2.Store(o2 + 32); e2.Store(o2 + 48);
                        a3.Store(o3); b3.Store(o3 + 16); c3.Store(o3 + 32); e3.Store(o3 + 48);
                    }
                }
            }
        }
    }
}
