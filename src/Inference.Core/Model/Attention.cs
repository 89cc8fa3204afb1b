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
internal static partial class Attention
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
