using System.Runtime.InteropServices;
using BitNet.Inference.Kernels;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Model;

/// <summary>Where the F16 token embedding table starts in a GGUF file, for reading rows with
/// <see cref="Gguf.GgufFile.ReadAt"/>.</summary>
internal sealed record EmbeddingFile(Gguf.GgufFile File, long Offset);

/// <summary>The per-token work between a layer's matrix products (spec §5.1), in forward-pass order.</summary>
internal enum TokenStep
{
    /// <summary>x = token_embd[token] (F16 → F32, exact; no embedding scale).</summary>
    Embed,
    /// <summary>[x += d, the previous layer's FFN output;] h = RMSNorm(x) ⊙ attn_norm, quantized for Wq, Wk, Wv.</summary>
    AttentionInput,
    /// <summary>[Q, K, V biases or scales;] RoPE on every Q and K head; K and V rounded to F16 into the layer's cache.</summary>
    RopeAndCache,
    /// <summary>[A = RMSNorm(A) ⊙ attn_sub_norm,] quantized for Wo.</summary>
    AttentionOutputInput,
    /// <summary>x1 = O + x; g = RMSNorm(x1) ⊙ ffn_norm, quantized for Wgate and Wup.</summary>
    FeedForwardInput,
    /// <summary>f = act(z) ⊙ u [then RMSNorm(f) ⊙ ffn_sub_norm], quantized for Wdown.</summary>
    DownInput,
    /// <summary>x = d + x1 after the last layer.</summary>
    Residual,
}

/// <summary>
/// Runs one <see cref="TokenStep"/> for every token of a batch, spread over the worker pool by
/// token: the steps are independent across tokens, so a 128-token prompt keeps every core busy
/// between the matmuls instead of leaving this work to the calling thread. For a single decoded
/// token the pool runs it inline. One instance per sequence state; reused, so nothing is allocated.
/// </summary>
internal sealed unsafe class TokenSteps : IRangeJob
{
    private readonly InferenceState _s;
    private BitNetWeights? _weights;
    private LayerWeights? _layer;
    private int _layerIndex;
    private TokenStep _step;
    private bool _addResidual;
    private EmbeddingFile? _embeddingFile;

    public TokenSteps(InferenceState state) => _s = state;

    /// <summary>Start a batch: the state's rows (RowTokens, RowPositions, RowSequences) are its tokens. With
    /// <paramref name="embeddingFile"/>, embedding rows are read from the file instead of the mapping.</summary>
    public void Begin(BitNetWeights weights, EmbeddingFile? embeddingFile)
    {
        _weights = weights;
        _embeddingFile = embeddingFile;
    }

    /// <summary>Run <paramref name="step"/> for tokens 0 … n − 1 of the batch.</summary>
    /// <param name="addResidual">For <see cref="TokenStep.AttentionInput"/>: first add the previous layer's output.</param>
    public void Run(WorkerPool pool, int n, TokenStep step, LayerWeights? layer = null, int layerIndex = 0, bool addResidual = false)
    {
        _step = step; _layer = layer; _layerIndex = layerIndex; _addResidual = addResidual;
        QuantizedActivations act = _s.Quantized;
        ModelConfig c = _s.Config;
        switch (step)
        {
            case TokenStep.AttentionInput or TokenStep.AttentionOutputInput or TokenStep.FeedForwardInput:
                act.Reshape(n, c.EmbeddingLength);
                break;
            case TokenStep.DownInput:
                act.Reshape(n, c.FeedForwardLength);
                break;
        }
        pool.For(n, this);
        _layer = null;
    }

    void IRangeJob.Run(int start, int end)
    {
        for (int t = start; t < end; t++) RunToken(t);
    }

    private void RunToken(int t)
    {
        InferenceState s = _s;
        ModelConfig c = s.Config;
        int embd = c.EmbeddingLength, kvDim = c.KvDim, ffn = c.FeedForwardLength;
        float eps = c.RmsNormEpsilon;
        Span<float> x = s.Residual.AsSpan(t * embd, embd);
        LayerWeights w = _layer!;
        switch (_step)
        {
            case TokenStep.Embed:
                if (_embeddingFile is { } source)
                {
                    // Staged in this token's Normed row, which the first norm overwrites anyway.
                    Span<byte> row = MemoryMarshal.AsBytes(s.Normed.AsSpan(t * embd, embd))[..(2 * embd)];
                    source.File.ReadAt(source.Offset + 2L * s.RowTokens[t] * embd, row);
                    F16.ConvertToSingle(MemoryMarshal.Cast<byte, Half>(row), x);
                }
                else
                    F16.ConvertToSingle(new ReadOnlySpan<Half>(_weights!.TokenEmbedding + (long)s.RowTokens[t] * embd, embd), x);
                break;

            case TokenStep.AttentionInput:
            {
                if (_addResidual) AddProjected(x, s.Projected.AsSpan(t * embd, embd), _weights!.Layers[_layerIndex - 1].DownAdjustment);
                Span<float> h = s.Normed.AsSpan(t * embd, embd);
                VectorMath.RmsNormRow(x, w.AttentionNorm, h, eps);
                s.Quantized.QuantizeRow(t, h);
                break;
            }

            case TokenStep.RopeAndCache:
            {
                int pos = s.RowPositions[t];
                Span<float> q = s.Query.AsSpan(t * embd, embd), k = s.Key.AsSpan(t * kvDim, kvDim), v = s.Value.AsSpan(t * kvDim, kvDim);
                w.QueryAdjustment.Apply(q);
                w.KeyAdjustment.Apply(k);
                w.ValueAdjustment.Apply(v);
                Rope.Apply(_weights!.Rope, q, c.HeadCount, k, c.KvHeadCount, pos);
                // The row's sequence's block for this position, head-major within it: [kv head][slot][head_dim].
                KvSequence sequence = s.RowSequences[t];
                KvCachePool pool = sequence.Pool;
                int block = sequence.Block(pos / pool.BlockTokens), slot = pos % pool.BlockTokens;
                Half[] keys = pool.Keys[_layerIndex], values = pool.Values[_layerIndex];
                for (int h = 0, d = c.HeadDim; h < c.KvHeadCount; h++)
                {
                    int at = pool.Offset(block, h) + slot * d;
                    F16.ConvertToHalf(k.Slice(h * d, d), keys.AsSpan(at, d));   // round to nearest even
                    F16.ConvertToHalf(v.Slice(h * d, d), values.AsSpan(at, d));
                }
                break;
            }

            case TokenStep.AttentionOutputInput:
            {
                Span<float> a = s.AttentionOut.AsSpan(t * embd, embd);
                if (w.AttentionSubNorm is { } subNorm) VectorMath.RmsNormRow(a, subNorm, a, eps);
                s.Quantized.QuantizeRow(t, a);
                break;
            }

            case TokenStep.FeedForwardInput:
            {
                AddProjected(x, s.Projected.AsSpan(t * embd, embd), w.OutputAdjustment);
                Span<float> g = s.Normed.AsSpan(t * embd, embd);
                VectorMath.RmsNormRow(x, w.FfnNorm, g, eps);
                s.Quantized.QuantizeRow(t, g);
                break;
            }

            case TokenStep.DownInput:
            {
                Span<float> f = s.Gate.AsSpan(t * ffn, ffn), u = s.Up.AsSpan(t * ffn, ffn);
                w.GateAdjustment.Apply(f);
                w.UpAdjustment.Apply(u);
                if (c.Graph.Activation == FeedForwardActivation.Silu)
                    VectorMath.SiluTimes(f, u);
                else
                    VectorMath.SquaredReluTimes(f, u);
                if (w.FfnSubNorm is { } subNorm) VectorMath.RmsNormRow(f, subNorm, f, eps);
                s.Quantized.QuantizeRow(t, f);
                break;
            }

            case TokenStep.Residual:
                AddProjected(x, s.Projected.AsSpan(t * embd, embd), _weights!.Layers[^1].DownAdjustment);
                break;
        }
    }

    /// <summary>x += the projection's output y, after the projection's bias or scale (if any) is applied to y.</summary>
    private static void AddProjected(Span<float> x, Span<float> y, OutputAdjustment adjustment)
    {
        adjustment.Apply(y);
        VectorMath.Add(x, y);
    }
}
