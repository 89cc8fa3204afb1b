using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using BitNet.Inference.Kernels;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Model;

/// <summary>
/// Causal grouped-query attention over the F16 KV cache (spec §5.4), the one function the forward
/// pass calls for it. Follows bitnet.cpp's precision: Q rounded to F16, QKᵀ accumulated in F32,
/// softmax in F32 with the exponential sum in double, then probabilities · F16 values in F32 — with
/// the probabilities rounded to F16 first only when bitnet.cpp does so (see <see cref="Precision"/>).
/// The soft-max and the probabilities · values sums follow the AVX2 build's order
/// (<see cref="AttentionOrder"/>) on every kernel set.
///
/// Work is done per KV group: the query heads that share one KV head (GroupSize of them) read each
/// cached K and V row once, converted from F16 to F32 once, and the dot products and the weighted
/// sum are vectorised (<see cref="VectorMath"/>). Groups (and, in a prompt batch, tokens) are
/// independent, so <see cref="BatchJob"/> spreads (token, group) pairs over the worker pool.
/// </summary>
internal static class Attention
{
    /// <summary>Which loops compute a KV group: the general per-head ones, or the fused four-head loops
    /// on 256-bit (x86 AVX2) or 128-bit vectors (ARM64 AdvSimd, and x86 without AVX2); Fused512 is
    /// Fused256's arithmetic, bit for bit, on 512-bit vectors (x86 AVX-512F).</summary>
    internal enum Loops { General, Fused128, Fused256, Fused512 }

    /// <summary>Per-thread scratch: GroupSize × positions scores and one converted K/V row. Grown
    /// on demand, so after warm-up attention allocates nothing.</summary>
    [ThreadStatic] private static float[]? _scores;
    [ThreadStatic] private static float[]? _row;
    /// <summary>Per-thread scratch of the V·p partial sums (32 rows of GroupSize × head_dim) and of each position's row offset.</summary>
    [ThreadStatic] private static float[]? _partialRows;
    [ThreadStatic] private static int[]? _rowOffsets;

    /// <summary>The query heads of KV group <paramref name="group"/> (heads group·GroupSize …), for one token.</summary>
    /// <param name="scratchPositions">Size the per-thread scratch for this many positions (the context length), so a
    /// growing sequence does not reallocate it step by step.</param>
    public static void ComputeGroup(ModelConfig config, ReadOnlySpan<float> q, ReadOnlySpan<Half> keyCache, ReadOnlySpan<Half> valueCache,
        int position, int group, Span<float> output, bool roundProbabilitiesToF16, int scratchPositions = 0) =>
        ComputeGroup(config, q, keyCache, valueCache, position, group, output, roundProbabilitiesToF16, scratchPositions,
            LoopsFor(config.GroupSize, config.HeadDim));

    /// <param name="loops">The loops to use (a fused kind only where <see cref="CanUse"/> holds); tests compare them.</param>
    internal static void ComputeGroup(ModelConfig config, ReadOnlySpan<float> q, ReadOnlySpan<Half> keyCache, ReadOnlySpan<Half> valueCache,
        int position, int group, Span<float> output, bool roundProbabilitiesToF16, int scratchPositions, Loops loops) =>
        ComputeGroupRows(config, q, keyCache[(group * config.HeadDim)..], valueCache[(group * config.HeadDim)..], config.KvDim,
            position, group, output, roundProbabilitiesToF16, scratchPositions, loops);

    /// <summary>
    /// One KV group over a contiguous cache, as a single block: <paramref name="keys"/> and
    /// <paramref name="values"/> start at this group's KV head for position 0, and position j's head_dim
    /// values start at j · <paramref name="rowStride"/> (kv_dim for the public overloads' position-major layout).
    /// </summary>
    internal static void ComputeGroupRows(ModelConfig config, ReadOnlySpan<float> q, ReadOnlySpan<Half> keys, ReadOnlySpan<Half> values, int rowStride,
        int position, int group, Span<float> output, bool roundProbabilitiesToF16, int scratchPositions, Loops loops)
    {
        if ((long)position * rowStride + config.HeadDim > Math.Min(keys.Length, values.Length))
            throw new ArgumentException($"the cache holds fewer than {position + 1} positions");
        ComputeGroupBlocks(config, q, keys, values, [0], blockStride: 0, blockPositions: position + 1, rowStride,
            position, group, output, roundProbabilitiesToF16, scratchPositions, loops);
    }

    /// <summary>
    /// One KV group over a sequence's blocks of a <see cref="KvCachePool"/> layer: positions
    /// 0 … <paramref name="position"/>, read block by block in position order. Every score and every
    /// output sum is accumulated in the same order as over a contiguous cache, so the result is the same
    /// bit for bit.
    /// </summary>
    internal static void ComputeGroupPaged(ModelConfig config, ReadOnlySpan<float> q, KvCachePool pool, int layer, ReadOnlySpan<int> blocks,
        int position, int group, Span<float> output, bool roundProbabilitiesToF16, int scratchPositions, Loops loops)
    {
        int blockPositions = pool.BlockTokens;
        if (position >= blocks.Length * blockPositions)
            throw new ArgumentException($"the sequence's blocks hold fewer than {position + 1} positions");
        int groupStart = pool.Offset(0, group);
        ComputeGroupBlocks(config, q, pool.Keys[layer].AsSpan(groupStart), pool.Values[layer].AsSpan(groupStart), blocks,
            blockStride: pool.Offset(1, 0), blockPositions, config.HeadDim, position, group, output, roundProbabilitiesToF16, scratchPositions, loops);
    }

    /// <summary>
    /// The core: position j's head_dim values start at blocks[j / blockPositions] · blockStride +
    /// (j mod blockPositions) · rowStride in <paramref name="keys"/> and <paramref name="values"/> (which start at
    /// this group's KV head). The model's cache is paged and head-major within a block (stride head_dim: one
    /// group's rows of a block are contiguous, so they stream from memory); the public overloads take the
    /// position-major [position][kv_dim] layout (one block, stride kv_dim).
    /// </summary>
    private static void ComputeGroupBlocks(ModelConfig config, ReadOnlySpan<float> q, ReadOnlySpan<Half> keys, ReadOnlySpan<Half> values,
        ReadOnlySpan<int> blocks, int blockStride, int blockPositions, int rowStride,
        int position, int group, Span<float> output, bool roundProbabilitiesToF16, int scratchPositions, Loops loops)
    {
        if (!CanUse(loops, config.GroupSize, config.HeadDim))
            throw new ArgumentException($"the {loops} loops need 4 heads per group, head_dim a multiple of 8 and their vector width accelerated", nameof(loops));
        int headDim = config.HeadDim, positions = position + 1, heads = config.GroupSize;
        int firstHead = group * heads;
        float scale = 1.0f / MathF.Sqrt(headDim); // kq_scale = 1/sqrtf(n_embd_head)

        float[] scoreBuffer = _scores is { } sb && sb.Length >= heads * positions ? sb : (_scores = new float[heads * Math.Max(positions, scratchPositions)]);
        float[] rowBuffer = _row is { } rb && rb.Length >= headDim ? rb : (_row = new float[Math.Max(headDim, 256)]);
        Span<float> row = rowBuffer.AsSpan(0, headDim);
        Span<float> q16 = stackalloc float[heads * headDim];

        // ggml converts Q to F16 before the dot with the F16 cache. The cache rows are read as
        // k·2^−112 (F16.ToScaledValues, cheaper than an exact conversion), so Q carries the 2^112:
        // every product is the same real number, so the sums are exactly those of q16 · k.
        q.Slice(firstHead * headDim, q16.Length).CopyTo(q16);
        F16.RoundThroughHalf(q16);
        VectorMath.Scale(q16, F16.ScaledValueFactor);

        // scores[h][j] = (q_h · k_j) · scale, F32 accumulation; the causal mask excludes j > position.
        for (int first = 0, b = 0; first < positions; first += blockPositions, b++)
        {
            int count = Math.Min(blockPositions, positions - first);
            ReadOnlySpan<Half> blockKeys = keys.Slice(blocks[b] * blockStride, (count - 1) * rowStride + headDim);
            Span<float> blockScores = scoreBuffer.AsSpan(first);
            if (loops == Loops.Fused512)
                FourHeadScores512(q16, blockKeys, rowStride, headDim, positions, count, scale, blockScores);
            else if (loops == Loops.Fused256)
                FourHeadScores(q16, blockKeys, rowStride, headDim, positions, count, scale, blockScores);
            else if (loops == Loops.Fused128)
                FourHeadScores128(q16, blockKeys, rowStride, headDim, positions, count, scale, blockScores);
            else
                for (int j = 0; j < count; j++)
                {
                    F16.ToScaledValues(blockKeys.Slice(j * rowStride, headDim), row);
                    for (int h = 0; h < heads; h++)
                        blockScores[h * positions + j] = VectorMath.Dot(q16.Slice(h * headDim, headDim), row) * scale;
                }
        }

        // soft-max per head in the AVX2 build's order (AttentionOrder); the probabilities rounded to F16
        // where bitnet.cpp rounds them (a single-row product).
        for (int h = 0; h < heads; h++)
        {
            Span<float> scores = scoreBuffer.AsSpan(h * positions, positions);
            AttentionOrder.SoftMax(scores);
            if (roundProbabilitiesToF16) F16.RoundThroughHalf(scores);
        }

        // out_h = Σ_j p_hj · v_j per dimension, in the order of AttentionOrder.ValueDot: position j adds to
        // partial sum j mod `partials` (one row of heads × head_dim per partial), and the partials are then
        // combined by the build's tree. v is read as v·2^−112 and p scaled by 2^112 (exact: p ≤ 1), as for
        // the scores, so every product is the same real number.
        VectorMath.Scale(scoreBuffer.AsSpan(0, heads * positions), F16.ScaledValueFactor);
        int partials = AttentionOrder.PartialsFor(roundProbabilitiesToF16), width = heads * headDim;
        float[] partialBuffer = _partialRows is { } pb && pb.Length >= AttentionOrder.DecodePartials * width
            ? pb : (_partialRows = new float[AttentionOrder.DecodePartials * width]);
        int[] offsetBuffer = _rowOffsets is { } ob && ob.Length >= positions ? ob : (_rowOffsets = new int[Math.Max(positions, scratchPositions)]);
        Span<int> rowOffsets = offsetBuffer.AsSpan(0, positions);
        for (int first = 0, b = 0; first < positions; first += blockPositions, b++)
        {
            int count = Math.Min(blockPositions, positions - first), start = blocks[b] * blockStride;
            for (int i = 0; i < count; i++) rowOffsets[first + i] = start + i * rowStride;
        }
        SumValues(loops, scoreBuffer, values, rowOffsets, heads, headDim, positions, partials, partialBuffer, output.Slice(firstHead * headDim, width));
    }

    /// <summary>
    /// out[h·head_dim + d] = Σ_j p[h·positions + j] · v_j[d] for the group's heads, in the order of
    /// <see cref="AttentionOrder.ValueDot"/> with <paramref name="partials"/> partial sums; row j of the
    /// values starts at values[rowOffsets[j]]. p is pre-scaled by 2^112 (values are read as v·2^−112).
    /// <paramref name="partialScratch"/> holds at least partials × heads × head_dim floats.
    /// </summary>
    internal static void SumValues(Loops loops, ReadOnlySpan<float> probabilities, ReadOnlySpan<Half> values, ReadOnlySpan<int> rowOffsets,
        int heads, int headDim, int positions, int partials, Span<float> partialScratch, Span<float> output)
    {
        int width = heads * headDim;
        if (!CanUse(loops, heads, headDim))
            throw new ArgumentException($"the {loops} loops cannot sum {heads} heads of {headDim}", nameof(loops));
        if (probabilities.Length < heads * positions || rowOffsets.Length < positions || output.Length < width)
            throw new ArgumentException("an operand is shorter than heads × positions or heads × head_dim");
        foreach (int offset in rowOffsets[..positions])
            if (offset < 0 || offset > values.Length - headDim) throw new ArgumentException($"a value row at {offset} lies outside the cache");
        Span<float> partialRows = partialScratch[..(partials * width)];
        if (loops == Loops.Fused512)
            FourHeadValuePartials512(probabilities, values, rowOffsets, headDim, positions, partials, partialRows);
        else if (loops == Loops.Fused256)
            FourHeadValuePartials(probabilities, values, rowOffsets, headDim, positions, partials, partialRows);
        else if (loops == Loops.Fused128)
            FourHeadValuePartials128(probabilities, values, rowOffsets, headDim, positions, partials, partialRows);
        else
        {
            partialRows.Clear();
            Span<float> row = stackalloc float[headDim];
            for (int j = 0; j < positions; j++)
            {
                F16.ToScaledValues(values.Slice(rowOffsets[j], headDim), row);
                Span<float> partial = partialRows.Slice(j % partials * width, width);
                for (int h = 0; h < heads; h++)
                    VectorMath.MultiplyAdd(probabilities[h * positions + j], row, partial.Slice(h * headDim, headDim));
            }
        }
        AttentionOrder.CombinePartialRows(partialRows, partials, width, output);
    }

    /// <summary>
    /// Four query heads per KV head (BitNet 2B4T's 20 / 5) get fused loops: each cached row is widened
    /// once, in registers, and feeds the four heads' FMAs directly, instead of being converted to a
    /// scratch row that four dot products then reload. The value loops keep the four heads' partial sums
    /// in registers over a partial's positions and add p·v in the order of <see cref="AttentionOrder"/>, so
    /// their results equal the general loop's exactly. 256-bit loops where Vector256 is accelerated (x86 with AVX2), 128-bit
    /// ones elsewhere (ARM64: Graviton's NEON registers are 128 bits wide).
    /// </summary>
    internal static Loops LoopsFor(int heads, int headDim) =>
        CanUse(Loops.Fused512, heads, headDim) ? Loops.Fused512 :
        CanUse(Loops.Fused256, heads, headDim) ? Loops.Fused256 :
        CanUse(Loops.Fused128, heads, headDim) ? Loops.Fused128 : Loops.General;

    /// <summary>Whether <paramref name="loops"/> can compute groups of this shape on this machine.</summary>
    internal static bool CanUse(Loops loops, int heads, int headDim) => loops switch
    {
        Loops.General => true,
        Loops.Fused256 => heads == 4 && headDim % 8 == 0 && Vector256.IsHardwareAccelerated,
        Loops.Fused128 => heads == 4 && headDim % 8 == 0 && Vector128.IsHardwareAccelerated,
        Loops.Fused512 => heads == 4 && headDim % 64 == 0 && Vector256.IsHardwareAccelerated && Avx512F.IsSupported,
        _ => false,
    };

    /// <summary>How far ahead <see cref="FourHeadScores"/> prefetches the cached keys: 8 rows at head_dim
    /// 128. Each head's keys are a short stream (a few hundred KB) that the hardware prefetcher has barely
    /// picked up before it ends; at 1024 positions this took the score loop's share of decode time from
    /// 6.3 to 5.5 %.</summary>
    private const int KeyPrefetchBytes = 2048;

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

    /// <summary>Positions per tile of the value loops (a multiple of both partial counts): 64 KB of
    /// value rows at head_dim 128, which stay in cache for every pass over the dimensions; each partial's
    /// accumulators are carried from tile to tile through its row of partials. The first pass over a
    /// tile prefetches the next one: rows taken 32 apart are a pattern the hardware prefetcher misses.</summary>
    private const int ValueTilePositions = 256;

    /// <summary>
    /// What the first pass over a tile of the value loops prefetches for position <paramref name="j"/>: its row
    /// <paramref name="row"/> from half <paramref name="firstLine"/> on (the lines the later passes over the
    /// dimensions read), and the row <see cref="ValueTilePositions"/> on, which this pass reads in the next tile.
    /// </summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    private static unsafe void PrefetchValueRows(short* row, int firstLine, short* values, int* offsets, int j, int positions, int headDim)
    {
        if (!Sse.IsSupported) return;
        for (int line = firstLine; line < headDim; line += 32) Sse.Prefetch0(row + line);
        if (j + ValueTilePositions < positions)
        {
            short* next = values + offsets[j + ValueTilePositions];
            for (int line = 0; line < headDim; line += 32) Sse.Prefetch1(next + line);
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

    /// <summary>
    /// Attention for a batch of rows (K and V already cached): row t is the token at position
    /// state.RowPositions[t] of sequence state.RowSequences[t], and sees that sequence's positions up to
    /// its own. Split over the worker pool by (row, KV group). One instance per state; reused.
    /// </summary>
    public sealed class BatchJob : IRangeJob
    {
        private InferenceState? _state;
        private int _layer, _rows, _scratchPositions;

        public void Run(WorkerPool pool, InferenceState state, int layer, int rows)
        {
            _state = state; _layer = layer; _rows = rows;
            _scratchPositions = state.ContextLength;
            // One (row, group) at a time from the shared counter: a decode step has only 5 of them for
            // 2B4T, which fixed shares split 2 : 3 however busy each core is.
            pool.ForPieces(rows * state.Config.KvHeadCount, this, piece: 1);
            _state = null;
        }

        void IRangeJob.Run(int start, int end)
        {
            InferenceState s = _state!;
            ModelConfig c = s.Config;
            int embd = c.EmbeddingLength;
            for (int i = start; i < end; i++)
            {
                // Row t sees its position + 1 positions, so later rows of a prompt cost more. Rows are taken
                // in the order 0, n−1, 1, n−2, …, so that cheap and dear ones alternate and no thread is
                // left with a run of dear ones at the end.
                int rank = i / c.KvHeadCount, group = i % c.KvHeadCount;
                int t = (rank & 1) == 0 ? rank / 2 : _rows - 1 - rank / 2;
                KvSequence sequence = s.RowSequences[t];
                ComputeGroupPaged(c, s.Query.AsSpan(t * embd, embd), sequence.Pool, _layer, sequence.Blocks, s.RowPositions[t], group,
                    s.AttentionOut.AsSpan(t * embd, embd), s.RowRoundsProbabilities[t], _scratchPositions, LoopsFor(c.GroupSize, c.HeadDim));
            }
        }
    }
}

/// <summary>
/// Where bitnet.cpp rounds an F32 operand to F16 before multiplying it with F16 data. Measured against
/// the oracle (exact to 3e-6 only with this rule): ggml's F16 × F32 products go through llamafile's sgemm,
/// which keeps the F32 operand, when the operand has several rows (a multi-token batch), and through
/// ggml's F16 vec-dot, which rounds the operand to F16, when it has one row (single-token decode, or only
/// the last token's logits requested). This affects the attention probabilities (·V) and the LM head input;
/// Q is rounded to F16 in both cases (its permuted layout always goes through the F16 conversion).
/// </summary>
internal static class Precision
{
    /// <summary>True when an F32 operand of <paramref name="rows"/> rows is rounded to F16 before an F16 product.</summary>
    public static bool RoundsOperandToF16(int rows) => rows == 1;
}
