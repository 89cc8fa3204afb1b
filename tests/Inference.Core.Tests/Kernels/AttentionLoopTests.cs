using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;
using BitNet.Inference.Model;

// In the Kernels namespace so that the ARM64 run under qemu (scripts/test-arm64.sh) checks the
// 128-bit loops on NEON too.
namespace BitNet.Inference.Tests.Kernels;

public class AttentionLoopTests
{
    private static ModelConfig Config(int heads, int kvHeads, int embd) => new()
    {
        Architecture = "bitnet-b1.58", Name = "attention-test", VocabSize = 16, ContextLength = 512,
        EmbeddingLength = embd, LayerCount = 1, HeadCount = heads, KvHeadCount = kvHeads, FeedForwardLength = 256,
        RmsNormEpsilon = 1e-5f, RopeFreqBase = 10000, RopeDimensionCount = embd / heads,
    };

    public static TheoryData<int, bool, int, string> Cases()
    {
        var data = new TheoryData<int, bool, int, string>();
        foreach (string loops in new[] { "Fused256", "Fused128" })
        {
            data.Add(1, false, 128, loops);
            data.Add(37, false, 128, loops);
            data.Add(300, false, 128, loops);
            data.Add(300, true, 128, loops);
            data.Add(37, false, 72, loops);    // the loops take 16 dimensions at a time: 72 leaves an odd 8
            data.Add(2, false, 8, loops);
        }
        data.Add(1, false, 128, "Fused512");
        data.Add(37, false, 128, "Fused512");
        data.Add(300, false, 128, "Fused512");
        data.Add(300, true, 128, "Fused512");
        data.Add(37, false, 64, "Fused512");
        return data;
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Fused_four_head_group_matches_the_general_loops(int positions, bool roundProbabilities, int headDim, string loopsName)
    {
        var loops = Enum.Parse<Attention.Loops>(loopsName);
        // 2B4T's shape: 4 query heads per KV head, head_dim 128 (and narrower heads).
        ModelConfig c = Config(heads: 8, kvHeads: 2, embd: 8 * headDim);
        if (!Attention.CanUse(loops, c.GroupSize, c.HeadDim))
            Assert.Skip(loops switch
            {
                Attention.Loops.Fused512 => "Fused512 needs AVX-512F",
                Attention.Loops.Fused256 => "Fused256 needs Vector256 accelerated",
                _ => "Fused128 needs Vector128 accelerated",
            });
        var rng = new Random(positions);
        var q = new float[c.EmbeddingLength];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 4 - 2);
        var keys = new Half[positions * c.KvDim];
        var values = new Half[positions * c.KvDim];
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = (Half)(rng.NextDouble() * 2 - 1);
            values[i] = (Half)(rng.NextDouble() * 2 - 1);
        }
        keys[3] = BitConverter.UInt16BitsToHalf(0x0001);     // a subnormal half must widen exactly too
        values[5] = BitConverter.UInt16BitsToHalf(0x8003);   // and a negative one

        for (int group = 0; group < c.KvHeadCount; group++)
        {
            var general = new float[c.EmbeddingLength];
            var fused = new float[c.EmbeddingLength];
            Attention.ComputeGroup(c, q, keys, values, positions - 1, group, general, roundProbabilities, 0, Attention.Loops.General);
            Attention.ComputeGroup(c, q, keys, values, positions - 1, group, fused, roundProbabilities, 0, loops);
            // The score sums run in a different lane order, so results agree to float rounding, not bits.
            for (int i = 0; i < general.Length; i++)
                Assert.True(Math.Abs(general[i] - fused[i]) <= 1e-5f * (1 + Math.Abs(general[i])),
                    $"group {group}, element {i}: general {general[i]}, fused {fused[i]}");
            // Heads outside the group are left alone.
            int firstHead = group * c.GroupSize;
            for (int i = 0; i < fused.Length; i++)
                if (i / c.HeadDim < firstHead || i / c.HeadDim >= firstHead + c.GroupSize) Assert.Equal(0f, fused[i]);
        }
    }

    [Theory]
    [InlineData(1, false, 128)]
    [InlineData(3, true, 128)]     // fewer positions than one pass of four: all in the 256-bit loop
    [InlineData(37, false, 128)]   // blocks of 4 and a last odd one
    [InlineData(300, true, 128)]
    [InlineData(600, false, 128)]  // more than two tiles of values
    [InlineData(45, true, 64)]
    public void Loops_on_512_bit_vectors_give_the_256_bit_results_bit_for_bit(int positions, bool roundProbabilities, int headDim)
    {
        ModelConfig c = Config(heads: 8, kvHeads: 2, embd: 8 * headDim);
        if (!Attention.CanUse(Attention.Loops.Fused512, c.GroupSize, c.HeadDim))
            Assert.Skip("Fused512 needs AVX-512F");
        var rng = new Random(positions + headDim);
        var q = new float[c.EmbeddingLength];
        for (int i = 0; i < q.Length; i++) q[i] = (float)(rng.NextDouble() * 4 - 2);
        var keys = new Half[positions * c.KvDim];
        var values = new Half[positions * c.KvDim];
        for (int i = 0; i < keys.Length; i++)
        {
            keys[i] = (Half)((rng.NextDouble() * 2 - 1) * (i % 13 == 0 ? 50 : 1));
            values[i] = (Half)(rng.NextDouble() * 2 - 1);
        }
        for (int group = 0; group < c.KvHeadCount; group++)
        {
            var narrow = new float[c.EmbeddingLength];
            var wide = new float[c.EmbeddingLength];
            Attention.ComputeGroup(c, q, keys, values, positions - 1, group, narrow, roundProbabilities, 0, Attention.Loops.Fused256);
            Attention.ComputeGroup(c, q, keys, values, positions - 1, group, wide, roundProbabilities, 0, Attention.Loops.Fused512);
            for (int i = 0; i < narrow.Length; i++)
                Assert.True(BitConverter.SingleToInt32Bits(narrow[i]) == BitConverter.SingleToInt32Bits(wide[i]),
                    $"group {group}, element {i}: 256-bit {narrow[i]:R}, 512-bit {wide[i]:R}");
        }
    }

    [Fact]
    public void Loops_follow_the_vector_width_the_machine_accelerates()
    {
        var expected = Vector256.IsHardwareAccelerated ? (Avx512F.IsSupported ? Attention.Loops.Fused512 : Attention.Loops.Fused256)
            : Vector128.IsHardwareAccelerated ? Attention.Loops.Fused128 : Attention.Loops.General;
        Assert.Equal(expected, Attention.LoopsFor(heads: 4, headDim: 128));
        // 512-bit value sums take 64 dimensions at a time; narrower multiples of 8 keep the 256-bit loops.
        if (expected == Attention.Loops.Fused512) Assert.Equal(Attention.Loops.Fused256, Attention.LoopsFor(heads: 4, headDim: 72));
        Assert.Equal(Attention.Loops.General, Attention.LoopsFor(heads: 2, headDim: 128));   // only 4-head groups are fused
        Assert.Equal(Attention.Loops.General, Attention.LoopsFor(heads: 4, headDim: 12));    // nor heads of a width not a multiple of 8
    }

    [Fact]
    public void Fused_loops_refuse_a_group_shape_they_cannot_compute()
    {
        ModelConfig c = Config(heads: 4, kvHeads: 2, embd: 4 * 64);   // 2 heads per group
        var q = new float[c.EmbeddingLength];
        var cache = new Half[c.KvDim];
        var ex = Assert.Throws<ArgumentException>(() =>
            Attention.ComputeGroup(c, q, cache, cache, 0, 0, new float[c.EmbeddingLength], false, 0, Attention.Loops.Fused128));
        Assert.Contains("4 heads per group", ex.Message);
    }
}
