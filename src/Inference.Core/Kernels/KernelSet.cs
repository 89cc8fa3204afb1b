using System.Runtime.Intrinsics.Arm;
using System.Runtime.Intrinsics.X86;

namespace BitNet.Inference.Kernels;

/// <summary>
/// One row of the kernel table: the functions a model uses for every I2_S matmul, the F16 LM
/// head and the optional int8 head, all for one instruction set. Chosen once at load
/// (<see cref="KernelSelector"/>), so no IsSupported test sits in the token loop — that matters
/// under Native AOT, where those checks are not folded to constants.
/// </summary>
/// <param name="Name">What `--kernel` and the log call it: scalar, avx2, avx512, avx512gfni, avx512vnni, neon, dotprod.</param>
/// <param name="DotI2s">I2_S × int8 integer dots (exact, equal to the scalar kernel).</param>
/// <param name="DotF16">F16 rows × F32 vector (LM head).</param>
/// <param name="DotQ8">int8 rows (per-row scale) × F32 vector (the q8 LM head).</param>
/// <param name="DotQ8Exact">int8 rows × int16 vector, exact 64-bit dots (the screened LM head).</param>
internal sealed record KernelSet(string Name, I2sDotRowsKernel DotI2s, F16DotRowsKernel DotF16, Q8DotRowsKernel DotQ8, Q8ExactDotRowsKernel DotQ8Exact)
{
    /// <summary>F16 rows × several F32 vectors at once (the LM head of a batched step), each result equal to
    /// <see cref="DotF16"/>'s; null where the set has none (its head then runs <see cref="DotF16"/> per token on cached tiles).</summary>
    public F16DotRowsTokensKernel? DotF16Tokens { get; init; }

    /// <summary><see cref="DotQ8Exact"/> for several int16 vectors at once (the screened head of a batched step), each row read once.</summary>
    public Q8ExactDotRowsTokensKernel DotQ8ExactTokens { get; init; } = Q8ExactDots.RowsTokensScalar;

    /// <summary><see cref="DotI2s"/> for codes in <see cref="I2sCodeOrder.FourRowBlocks"/> order (the same dots); null
    /// where the set reads row order only. A model whose weights are private copies rearranges them for it.</summary>
    public I2sDotRowsKernel? DotI2sFourRowBlocks { get; init; }

    private static F16DotRowsKernel OneTokenHead =>
        X64.X64Cpu.IsIntel && F16.Avx512PairLoops.Instance is not null ? F16.DotRowsExactWidening : F16.DotRowsAvx2;

    public static KernelSet Scalar { get; } = new("scalar", I2sKernels.DotRowsScalar, F16.DotRowsScalar, LmHeadQ8.DotRowsScalar, Q8ExactDots.RowsScalar);
    public static KernelSet Avx2Set { get; } = new("avx2", I2sKernels.DotRowsAvx2, F16.DotRowsAvx2, LmHeadQ8.DotRowsAvx2, Q8ExactDots.RowsAvx2)
    {
        DotF16Tokens = F16.DotRowsTokensAvx2,
        DotQ8ExactTokens = Q8ExactDots.RowsTokensAvx2,
    };
    // The LM-head rows use the 256-bit kernels here too: on AMD Zen 4 (which splits 512-bit ops in
    // two) the AVX-512 F16 and int8 row kernels stream about half as fast as the AVX2 ones (the widening
    // conversions dominate). The I2_S kernel is as fast or faster at 512 bits. F16.DotRowsAvx512 stays
    // tested for CPUs where 512-bit ops are native. With several tokens the widening is shared and the FMAs
    // dominate, so the several-token head does use 512-bit vectors (256-bit in a build without AVX-512).
    // On Intel cores one token takes the several-token kernel too (OneTokenHead): its emitted loops widen halves
    // exactly, where the shift widening's subnormal floats cost a microcode assist per FMA (docs/kernels.md).
    public static KernelSet Avx512Set { get; } = new("avx512", I2sKernels.DotRowsAvx512, OneTokenHead, LmHeadQ8.DotRowsAvx2, Q8ExactDots.RowsAvx2)
    {
        DotF16Tokens = F16.DotRowsTokensAvx512,
        DotQ8ExactTokens = Q8ExactDots.RowsTokensAvx512,
    };
    /// <summary>AVX-512 with GFNI unpacking the 2-bit codes in one instruction per 64 (vgf2p8affineqb).</summary>
    public static KernelSet Avx512GfniSet { get; } = new("avx512gfni", I2sKernels.DotRowsAvx512Gfni, OneTokenHead, LmHeadQ8.DotRowsAvx2, Q8ExactDots.RowsAvx2)
    {
        DotF16Tokens = F16.DotRowsTokensAvx512,
        DotQ8ExactTokens = Q8ExactDots.RowsTokensAvx512,
    };
    /// <summary>AVX-512 with VNNI: every I2_S product accumulates with vpdpbusd (emitted machine code, Linux x64),
    /// on codes in row order or, once the model has them in private memory, in four-row blocks.</summary>
    public static KernelSet Avx512VnniSet { get; } = new("avx512vnni", I2sKernels.DotRowsAvx512Vnni, OneTokenHead, LmHeadQ8.DotRowsAvx2, Q8ExactDots.RowsAvx2)
    {
        DotF16Tokens = F16.DotRowsTokensAvx512,
        DotQ8ExactTokens = Q8ExactDots.RowsTokensAvx512Vnni,
        DotI2sFourRowBlocks = I2sKernels.DotRowsAvx512VnniFourRowBlocks,
    };
    public static KernelSet Neon { get; } = new("neon", I2sKernels.DotRowsAdvSimd, F16.DotRowsVector128, LmHeadQ8.DotRowsAdvSimd, Q8ExactDots.RowsAdvSimd)
    {
        DotF16Tokens = F16.DotRowsTokensVector128,
        DotQ8ExactTokens = Q8ExactDots.RowsTokensAdvSimd,
    };
    public static KernelSet NeonDotProd { get; } = new("dotprod", I2sKernels.DotRowsDotProd, F16.DotRowsVector128, LmHeadQ8.DotRowsAdvSimd, Q8ExactDots.RowsAdvSimd)
    {
        DotF16Tokens = F16.DotRowsTokensVector128,
        DotQ8ExactTokens = Q8ExactDots.RowsTokensAdvSimd,
    };

    /// <summary>Every set, best first within each architecture.</summary>
    public static IReadOnlyList<KernelSet> All { get; } = [Avx512VnniSet, Avx512GfniSet, Avx512Set, Avx2Set, NeonDotProd, Neon, Scalar];

    /// <summary>Whether this CPU (as the runtime reports it, DOTNET_Enable* switches included) can run the set.</summary>
    public bool IsSupported => Name switch
    {
        "avx512vnni" => Avx2.IsSupported && Fma.IsSupported && I2sKernels.Avx512VnniIsSupported,
        "avx512gfni" => Avx512BW.IsSupported && Avx512F.IsSupported && Avx2.IsSupported && Fma.IsSupported && Gfni.V512.IsSupported,
        "avx512" => Avx512BW.IsSupported && Avx512F.IsSupported && Avx2.IsSupported && Fma.IsSupported,
        "avx2" => Avx2.IsSupported && Fma.IsSupported,
        "dotprod" => Dp.IsSupported && AdvSimd.Arm64.IsSupported,
        "neon" => AdvSimd.Arm64.IsSupported,
        _ => true,
    };
}
