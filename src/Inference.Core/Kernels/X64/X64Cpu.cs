using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics.X86;

namespace BitNet.Inference.Kernels.X64;

/// <summary>
/// The AVX-512 features the emitted kernels need, read from CPUID and XCR0 directly rather than from
/// the runtime's IsSupported flags. The reason is Native AOT: an x86-64-v3 binary has
/// <c>Avx512BW.IsSupported</c> compiled to false whatever the CPU, yet machine code we emit ourselves
/// runs on any CPU that has the instructions and an OS that saves the zmm registers. Under the JIT the
/// runtime's view is honoured as well, so `DOTNET_EnableAVX512=0` still turns these kernels off.
/// </summary>
internal static unsafe class X64Cpu
{
    /// <summary>AVX-512F, AVX-512BW and AVX512-VNNI on the CPU, the opmask and all 32 zmm registers
    /// enabled by the OS, and (under the JIT) AVX-512 not switched off.</summary>
    public static bool HasAvx512Vnni { get; } = DetectAvx512(bwAndVnni: true);

    /// <summary>AVX-512F on the CPU, the opmask and all 32 zmm registers enabled by the OS, and (under
    /// the JIT) AVX-512 not switched off: what the F16 head's emitted several-token loops need.</summary>
    public static bool HasAvx512F { get; } = DetectAvx512(bwAndVnni: false);

    /// <summary>GFNI on the CPU (and, under the JIT, not switched off): vgf2p8affineqb, which unpacks
    /// 2-bit codes in one instruction. Intel Ice Lake and AMD Zen 4 have it; Cascade Lake has VNNI without it.</summary>
    public static bool HasGfni { get; } =
        X86Base.IsSupported && (X86Base.CpuId(7, 0).Ecx & (1 << 8)) != 0 && (!RuntimeFeature.IsDynamicCodeCompiled || Gfni.V512.IsSupported);

    /// <summary>An AMD CPU of family 1Ah (Zen 5) or later, whose vector pipes run the VNNI loops' shift
    /// unpacking alongside vpdpbusd, where vgf2p8affineqb competes with it (docs/kernels.md).</summary>
    public static bool IsAmdZen5OrLater { get; } = DetectAmdFamily() >= 0x1A;

    /// <summary>An Intel CPU: its cores take a microcode assist for every FMA with a subnormal operand (AMD's do not),
    /// so the F16 head widens halves exactly there even for one token (<see cref="KernelSet"/>).</summary>
    public static bool IsIntel { get; } = VendorIs(0x756E6547, 0x49656E69, 0x6C65746E);   // "GenuineIntel"

    /// <summary>The CPU family (base + extended) of an AMD CPU, else 0.</summary>
    private static int DetectAmdFamily()
    {
        if (!VendorIs(0x68747541, 0x69746E65, 0x444D4163)) return 0;   // "AuthenticAMD"
        int eax = X86Base.CpuId(1, 0).Eax;
        int family = (eax >> 8) & 0xF;
        return family == 0xF ? family + ((eax >> 20) & 0xFF) : family;
    }

    /// <summary>CPUID leaf 0's vendor string, in ebx, edx, ecx, is the one given.</summary>
    private static bool VendorIs(int ebx, int edx, int ecx) =>
        X86Base.IsSupported && X86Base.CpuId(0, 0) is var vendor && vendor.Ebx == ebx && vendor.Edx == edx && vendor.Ecx == ecx;

    private static bool DetectAvx512(bool bwAndVnni)
    {
        if (!X86Base.IsSupported || !ExecutableCode.IsAvailable) return false;
        if (RuntimeFeature.IsDynamicCodeCompiled && !(bwAndVnni ? Avx512BW.IsSupported : Avx512F.IsSupported)) return false;
        var leaf1 = X86Base.CpuId(1, 0);
        var leaf7 = X86Base.CpuId(7, 0);
        bool osSavesState = (leaf1.Ecx & (1 << 27)) != 0;     // OSXSAVE: xgetbv may be executed
        bool avx512f = (leaf7.Ebx & (1 << 16)) != 0, avx512bw = (leaf7.Ebx & (1 << 30)) != 0;
        bool vnni = (leaf7.Ecx & (1 << 11)) != 0;
        if (!(osSavesState && avx512f && (!bwAndVnni || (avx512bw && vnni)))) return false;
        // XCR0 bits 1, 2 (xmm, ymm), 5, 6, 7 (opmask, upper halves of zmm0–15, zmm16–31).
        const ulong zmmState = 0b1110_0110;
        return (ReadXcr0() & zmmState) == zmmState;
    }

    /// <summary>XCR0, via a five-instruction function: .NET has no xgetbv intrinsic.</summary>
    private static ulong ReadXcr0()
    {
        var asm = new X64Emitter();
        asm.Xor32(Gpr.Rcx, Gpr.Rcx);
        asm.Xgetbv();
        asm.Shl(Gpr.Rdx, 32);
        asm.Or(Gpr.Rax, Gpr.Rdx);
        asm.Ret();
        byte[] bytes = asm.ToArray();
        void* code = ExecutableCode.TryLoad(bytes);
        if (code == null) return 0;
        ulong xcr0 = ((delegate* unmanaged<ulong>)code)();
        ExecutableCode.Unload(code, bytes.Length);   // run once; unlike the kernels, not kept
        return xcr0;
    }
}
