namespace BitNet.Inference.Kernels.X64;

/// <summary>A 64-bit general-purpose register, numbered as the encoding numbers it (rax = 0 … r15 = 15).</summary>
internal enum Gpr { Rax, Rcx, Rdx, Rbx, Rsp, Rbp, Rsi, Rdi, R8, R9, R10, R11, R12, R13, R14, R15 }

/// <summary>A 512-bit vector register, zmm0 … zmm31.</summary>
internal readonly record struct Zmm(int Number)
{
    public override string ToString() => $"zmm{Number}";
}

/// <summary>A memory operand [base + displacement]. Always encoded with a 32-bit displacement, so the
/// EVEX compressed-displacement rule (disp8 × operand size) never applies.</summary>
internal readonly record struct Mem(Gpr Base, int Displacement = 0);

/// <summary>
/// Just enough of an x86-64 assembler to write the AVX-512 VNNI kernels that .NET 10 cannot express:
/// its intrinsics reach vpdpbusd only through the VEX <c>AvxVnni</c> class, which CPUs with
/// AVX512-VNNI but without AVX-VNNI (AMD Zen 4) report unsupported; and the F16 head's several-token
/// loop, which a Native AOT binary for x86-64-v3 could not run as intrinsics. Every instruction here is one the
/// kernels use, encoded from the Intel SDM (Vol. 2, §2.7 for EVEX); tests compare the bytes with GNU
/// as. The kernels call nothing, so stack alignment does not matter; they save the callee-saved
/// registers they borrow with push and pop.
/// </summary>
internal sealed class X64Emitter
{
    private readonly List<byte> _code = [];
    private readonly List<(int At, int Label)> _fixups = [];
    private readonly List<int> _labels = [];

    public int Length => _code.Count;

    // ---- General-purpose instructions --------------------------------------------------------

    /// <summary>mov dst, src (64-bit): REX.W 89 /r.</summary>
    public void Mov(Gpr dst, Gpr src) { Rex(w: true, reg: (int)src, rm: (int)dst); Byte(0x89); ModRmRegister((int)src, (int)dst); }

    /// <summary>mov dst, [base + disp32] (64-bit load): REX.W 8B /r.</summary>
    public void Mov(Gpr dst, Mem source)
    {
        RefuseSibBase(source);
        Rex(w: true, reg: (int)dst, rm: (int)source.Base);
        Byte(0x8B);
        ModRmMemory((int)dst, source);
    }

    /// <summary>add dst, src (64-bit): REX.W 01 /r.</summary>
    public void Add(Gpr dst, Gpr src) { Rex(w: true, reg: (int)src, rm: (int)dst); Byte(0x01); ModRmRegister((int)src, (int)dst); }

    /// <summary>add dst, [base + disp32] (64-bit): REX.W 03 /r.</summary>
    public void Add(Gpr dst, Mem source)
    {
        RefuseSibBase(source);
        Rex(w: true, reg: (int)dst, rm: (int)source.Base);
        Byte(0x03);
        ModRmMemory((int)dst, source);
    }

    /// <summary>add dst, imm32 (64-bit, sign-extended): REX.W 81 /0 id.</summary>
    public void Add(Gpr dst, int immediate) { Rex(w: true, reg: 0, rm: (int)dst); Byte(0x81); ModRmRegister(0, (int)dst); Int32(immediate); }

    /// <summary>or dst, src (64-bit): REX.W 09 /r.</summary>
    public void Or(Gpr dst, Gpr src) { Rex(w: true, reg: (int)src, rm: (int)dst); Byte(0x09); ModRmRegister((int)src, (int)dst); }

    /// <summary>xor dst, src (32-bit, which clears the upper half too): 31 /r.</summary>
    public void Xor32(Gpr dst, Gpr src) { Rex(w: false, reg: (int)src, rm: (int)dst); Byte(0x31); ModRmRegister((int)src, (int)dst); }

    /// <summary>shl reg, imm8 (64-bit): REX.W C1 /4 ib.</summary>
    public void Shl(Gpr reg, byte count) { Rex(w: true, reg: 4, rm: (int)reg); Byte(0xC1); ModRmRegister(4, (int)reg); Byte(count); }

    /// <summary>xgetbv: edx:eax = XCR[ecx] (0F 01 D0). Which register state the OS saves, hence may be used.</summary>
    public void Xgetbv() { Byte(0x0F); Byte(0x01); Byte(0xD0); }

    /// <summary>prefetcht0 [base + disp32]: 0F 18 /1.</summary>
    public void Prefetcht0(Mem address)
    {
        RefuseSibBase(address);
        Rex(w: false, reg: 0, rm: (int)address.Base);
        Byte(0x0F); Byte(0x18);
        ModRmMemory(1, address);
    }

    /// <summary>push reg: 50+r (REX.B for r8–r15). For the callee-saved registers a kernel borrows.</summary>
    public void Push(Gpr reg) { Rex(w: false, reg: 0, rm: (int)reg); Byte(0x50 + ((int)reg & 7)); }

    /// <summary>pop reg: 58+r (REX.B for r8–r15).</summary>
    public void Pop(Gpr reg) { Rex(w: false, reg: 0, rm: (int)reg); Byte(0x58 + ((int)reg & 7)); }

    /// <summary>dec reg (64-bit): REX.W FF /1.</summary>
    public void Dec(Gpr reg) { Rex(w: true, reg: 1, rm: (int)reg); Byte(0xFF); ModRmRegister(1, (int)reg); }

    /// <summary>A new label, to be placed with <see cref="Bind"/>.</summary>
    public int NewLabel() { _labels.Add(-1); return _labels.Count - 1; }

    public void Bind(int label) => _labels[label] = _code.Count;

    /// <summary>Where a bound label sits, as an offset from the start of the code.</summary>
    public int OffsetOf(int label) => _labels[label] >= 0 ? _labels[label] : throw new InvalidOperationException($"label {label} was never bound");

    /// <summary>jnz label (rel32): 0F 85 cd.</summary>
    public void Jnz(int label) { Byte(0x0F); Byte(0x85); _fixups.Add((_code.Count, label)); Int32(0); }

    public void Ret() => Byte(0xC3);

    /// <summary>vzeroupper: VEX.128.0F 77. Leaves the upper vector state clean for whatever SSE code runs next.</summary>
    public void Vzeroupper() { Byte(0xC5); Byte(0xF8); Byte(0x77); }

    // ---- AVX-512 instructions (all 512-bit, unmasked) ----------------------------------------

    /// <summary>vpxord dst, a, b: EVEX.512.66.0F.W0 EF /r.</summary>
    public void Vpxord(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map.M0F, Prefix.P66, w: false, 0xEF, dst, a, b);

    /// <summary>vpdpbusd acc, unsigned, signed: acc.int32[i] += Σ_{j&lt;4} unsigned.u8[4i+j] · signed.s8[4i+j]
    /// (EVEX.512.66.0F38.W0 50 /r).</summary>
    public void Vpdpbusd(Zmm acc, Zmm unsignedBytes, Zmm signedBytes) => EvexRegister(Map.M0F38, Prefix.P66, w: false, 0x50, acc, unsignedBytes, signedBytes);

    /// <summary>vgf2p8affineqb dst, x, matrix, imm8: each byte of x times the qword's 8×8 bit matrix, xor imm8
    /// (EVEX.512.66.0F3A.W1 CE /r ib).</summary>
    public void Vgf2p8affineqb(Zmm dst, Zmm x, Zmm matrix, byte immediate)
    {
        EvexRegister(Map.M0F3A, Prefix.P66, w: true, 0xCE, dst, x, matrix);
        Byte(immediate);
    }

    /// <summary>vpsrlvw dst, a, counts: each 16-bit lane of a shifted right by its count (EVEX.512.66.0F38.W1 10 /r).</summary>
    public void Vpsrlvw(Zmm dst, Zmm a, Zmm counts) => EvexRegister(Map.M0F38, Prefix.P66, w: true, 0x10, dst, a, counts);

    /// <summary>vpandd dst, a, b: EVEX.512.66.0F.W0 DB /r.</summary>
    public void Vpandd(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map.M0F, Prefix.P66, w: false, 0xDB, dst, a, b);

    /// <summary>vpaddd dst, a, b (16 × int32): EVEX.512.66.0F.W0 FE /r.</summary>
    public void Vpaddd(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map.M0F, Prefix.P66, w: false, 0xFE, dst, a, b);

    /// <summary>vshufi64x2 dst, a, b, imm8: 128-bit lanes 0, 1 of dst from a and 2, 3 from b, each chosen
    /// by two bits of imm8 (EVEX.512.66.0F3A.W1 43 /r ib).</summary>
    public void Vshufi64x2(Zmm dst, Zmm a, Zmm b, byte immediate)
    {
        EvexRegister(Map.M0F3A, Prefix.P66, w: true, 0x43, dst, a, b);
        Byte(immediate);
    }

    /// <summary>vpunpckldq dst, a, b: per 128-bit lane (a0, b0, a1, b1) of int32 (EVEX.512.66.0F.W0 62 /r).</summary>
    public void Vpunpckldq(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map.M0F, Prefix.P66, w: false, 0x62, dst, a, b);

    /// <summary>vpunpckhdq dst, a, b: per 128-bit lane (a2, b2, a3, b3) of int32 (EVEX.512.66.0F.W0 6A /r).</summary>
    public void Vpunpckhdq(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map.M0F, Prefix.P66, w: false, 0x6A, dst, a, b);

    /// <summary>vpunpcklqdq dst, a, b: per 128-bit lane (a0, b0) of int64 (EVEX.512.66.0F.W1 6C /r).</summary>
    public void Vpunpcklqdq(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map.M0F, Prefix.P66, w: true, 0x6C, dst, a, b);

    /// <summary>vpunpckhqdq dst, a, b: per 128-bit lane (a1, b1) of int64 (EVEX.512.66.0F.W1 6D /r).</summary>
    public void Vpunpckhqdq(Zmm dst, Zmm a, Zmm b) => EvexRegister(Map.M0F, Prefix.P66, w: true, 0x6D, dst, a, b);

    /// <summary>vpshufd dst, src, imm8: int32 shuffle within each 128-bit lane (EVEX.512.66.0F.W0 70 /r ib).</summary>
    public void Vpshufd(Zmm dst, Zmm src, byte immediate)
    {
        EvexRegister(Map.M0F, Prefix.P66, w: false, 0x70, dst, new Zmm(0), src);
        Byte(immediate);
    }

    /// <summary>vpmovsxbw dst, m256: 32 int8 sign-extended to int16 (EVEX.512.66.0F38.WIG 20 /r).</summary>
    public void Vpmovsxbw(Zmm dst, Mem source) => EvexMemory(Map.M0F38, Prefix.P66, w: false, 0x20, dst.Number, source);

    /// <summary>vpdpwssd acc, a, b: each int32 lane += the two products of its int16 pairs (EVEX.512.66.0F38.W0 52 /r).</summary>
    public void Vpdpwssd(Zmm acc, Zmm a, Zmm b) => EvexRegister(Map.M0F38, Prefix.P66, w: false, 0x52, acc, a, b);

    /// <summary>vcvtph2ps dst, m256: 16 halves widened to floats exactly (EVEX.512.66.0F38.W0 13 /r).</summary>
    public void Vcvtph2ps(Zmm dst, Mem source) => EvexMemory(Map.M0F38, Prefix.P66, w: false, 0x13, dst.Number, source);

    /// <summary>vfmadd231ps acc, a, b: acc = a · b + acc, one rounding per lane (EVEX.512.66.0F38.W0 B8 /r).</summary>
    public void Vfmadd231ps(Zmm acc, Zmm a, Zmm b) => EvexRegister(Map.M0F38, Prefix.P66, w: false, 0xB8, acc, a, b);

    /// <summary>vbroadcasti64x4 dst, m256: the 32 bytes at <paramref name="source"/> in both halves
    /// (EVEX.512.66.0F38.W1 5B /r).</summary>
    public void Vbroadcasti64x4(Zmm dst, Mem source) => EvexMemory(Map.M0F38, Prefix.P66, w: true, 0x5B, dst.Number, source);

    /// <summary>vmovdqu64 dst, m512: EVEX.512.F3.0F.W1 6F /r.</summary>
    public void Vmovdqu64(Zmm dst, Mem source) => EvexMemory(Map.M0F, Prefix.PF3, w: true, 0x6F, dst.Number, source);

    /// <summary>vmovdqu64 m512, src: EVEX.512.F3.0F.W1 7F /r.</summary>
    public void Vmovdqu64(Mem destination, Zmm src) => EvexMemory(Map.M0F, Prefix.PF3, w: true, 0x7F, src.Number, destination);

    /// <summary>vmovdqu64 dst, [rip + label]: 64 bytes of constant data placed with <see cref="Data"/>.</summary>
    public void Vmovdqu64(Zmm dst, int dataLabel)
    {
        Evex(Map.M0F, Prefix.PF3, w: true, dst.Number, vvvv: 0, rmLow: 0, rmHigh: 0);
        Byte(0x6F);
        Byte((dst.Number & 7) << 3 | 0b101);   // mod 00, rm 101: RIP-relative disp32
        _fixups.Add((_code.Count, dataLabel));
        Int32(0);
    }

    /// <summary>Pad with int3 to a multiple of <paramref name="alignment"/> bytes.</summary>
    public void Align(int alignment)
    {
        while (_code.Count % alignment != 0) Byte(0xCC);
    }

    /// <summary>Raw bytes (constants), at a label a RIP-relative load can name.</summary>
    public void Data(ReadOnlySpan<byte> bytes)
    {
        foreach (byte b in bytes) Byte(b);
    }

    /// <summary>vmovdqu32 m128, xmm: the low 16 bytes of <paramref name="src"/> (EVEX.128.F3.0F.W0 7F /r).</summary>
    public void Vmovdqu32Low128(Mem destination, Zmm src) => EvexMemory(Map.M0F, Prefix.PF3, w: false, 0x7F, src.Number, destination, lengthBits: 0b00);

    /// <summary>vextracti32x4 dst, src, imm8: 128-bit lane imm8 of src into the xmm dst (EVEX.512.66.0F3A.W0 39 /r ib).</summary>
    public void Vextracti32x4(Zmm dst, Zmm src, byte lane)
    {
        Evex(Map.M0F3A, Prefix.P66, w: false, src.Number, vvvv: 0, rmLow: dst.Number, rmHigh: dst.Number >> 4);
        Byte(0x39);
        ModRmRegister(src.Number, dst.Number);
        Byte(lane);
    }

    /// <summary>vmovq m64, xmm: the low qword of <paramref name="src"/> (EVEX.128.66.0F.W1 7E /r).</summary>
    public void VmovqStore(Mem destination, Zmm src) => EvexMemory(Map.M0F, Prefix.P66, w: true, 0x7E, src.Number, destination, lengthBits: 0b00);

    /// <summary>vpextrq m64, xmm, imm8: qword imm8 (0 or 1) of <paramref name="src"/> (EVEX.128.66.0F3A.W1 16 /r ib).</summary>
    public void VpextrqStore(Mem destination, Zmm src, byte index)
    {
        EvexMemory(Map.M0F3A, Prefix.P66, w: true, 0x16, src.Number, destination, lengthBits: 0b00);
        Byte(index);
    }

    /// <summary>vpermd dst, indices, src: dst.int32[i] = src.int32[indices.int32[i] mod 16] (EVEX.512.66.0F38.W0 36 /r).</summary>
    public void Vpermd(Zmm dst, Zmm indices, Zmm src) => EvexRegister(Map.M0F38, Prefix.P66, w: false, 0x36, dst, indices, src);

    /// <summary>The finished machine code, with every jump and RIP-relative load resolved
    /// (both end in their 32-bit offset, which counts from the next instruction).</summary>
    public byte[] ToArray()
    {
        byte[] bytes = [.. _code];
        foreach (var (at, label) in _fixups)
        {
            int target = _labels[label];
            if (target < 0) throw new InvalidOperationException($"label {label} was never bound");
            BitConverter.TryWriteBytes(bytes.AsSpan(at, 4), target - (at + 4));
        }
        return bytes;
    }

    // ---- Encoding ------------------------------------------------------------------------------

    private enum Map { M0F = 1, M0F38 = 2, M0F3A = 3 }
    private enum Prefix { None = 0, P66 = 1, PF3 = 2, PF2 = 3 }

    private void Byte(int b) => _code.Add((byte)b);

    private void Int32(int value)
    {
        Byte(value); Byte(value >> 8); Byte(value >> 16); Byte(value >> 24);
    }

    private void Rex(bool w, int reg, int rm)
    {
        int rex = 0x40 | (w ? 8 : 0) | ((reg >> 3) & 1) << 2 | ((rm >> 3) & 1);
        if (rex != 0x40) Byte(rex);
    }

    private void ModRmRegister(int reg, int rm) => Byte(0xC0 | (reg & 7) << 3 | (rm & 7));

    /// <summary>ModRM for [base + disp32]: mod = 10, then the displacement.</summary>
    private void ModRmMemory(int reg, Mem memory)
    {
        Byte(0x80 | (reg & 7) << 3 | ((int)memory.Base & 7));
        Int32(memory.Displacement);
    }

    /// <summary>
    /// The four EVEX bytes: 62, then [R X B R' 0 m m m] with R, X, B, R' stored inverted, then
    /// [W v̄v̄v̄v̄ 1 p p], then [z L'L b V̄' a a a] with L'L = 10 for 512 bits (00 for 128) and no masking.
    /// <paramref name="rmHigh"/> is bit 4 of a register rm operand, which EVEX carries in X.
    /// </summary>
    private void Evex(Map map, Prefix prefix, bool w, int reg, int vvvv, int rmLow, int rmHigh, int lengthBits = 0b10)
    {
        Byte(0x62);
        int p0 = ((reg >> 3) & 1) << 7 | (rmHigh & 1) << 6 | ((rmLow >> 3) & 1) << 5 | ((reg >> 4) & 1) << 4;
        Byte(~p0 & 0xF0 | (int)map);
        Byte((w ? 0x80 : 0) | (~vvvv & 15) << 3 | 0x04 | (int)prefix);
        Byte(lengthBits << 5 | (~(vvvv >> 4) & 1) << 3);
    }

    private static void RefuseSibBase(Mem memory)
    {
        if ((int)memory.Base % 8 == (int)Gpr.Rsp)
            throw new ArgumentException("rsp and r12 are not supported as a base register", nameof(memory));
    }

    private void EvexRegister(Map map, Prefix prefix, bool w, int opcode, Zmm reg, Zmm vvvv, Zmm rm)
    {
        Evex(map, prefix, w, reg.Number, vvvv.Number, rm.Number, rm.Number >> 4);
        Byte(opcode);
        ModRmRegister(reg.Number, rm.Number);
    }

    /// <summary>An EVEX instruction with a [base + disp32] operand (mod = 10). rsp and r12 as base would
    /// need a SIB byte and are refused; the kernels never use them.</summary>
    private void EvexMemory(Map map, Prefix prefix, bool w, int opcode, int reg, Mem memory, int lengthBits = 0b10)
    {
        RefuseSibBase(memory);
        Evex(map, prefix, w, reg, vvvv: 0, rmLow: (int)memory.Base, rmHigh: 0, lengthBits);
        Byte(opcode);
        ModRmMemory(reg, memory);
    }
}
