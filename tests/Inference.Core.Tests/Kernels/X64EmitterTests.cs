using BitNet.Inference.Kernels;
using BitNet.Inference.Kernels.X64;

namespace BitNet.Inference.Tests.Kernels;

/// <summary>
/// The emitter's encodings, byte for byte, against GNU as 2.40 (`as --64` then `objdump -d`) for the
/// same instruction text. High registers (zmm16–31, r8–r15) are chosen on purpose: their extension
/// bits sit in different EVEX and REX fields, where an encoder is most easily wrong.
/// </summary>
public class X64EmitterTests
{
    private static string Hex(Action<X64Emitter> emit)
    {
        var asm = new X64Emitter();
        emit(asm);
        return Convert.ToHexString(asm.ToArray()).ToLowerInvariant();
    }

    [Fact]
    public void Encodes_vpdpbusd_with_low_and_high_registers()
    {
        Assert.Equal("62b26d4050c6", Hex(a => a.Vpdpbusd(new Zmm(0), new Zmm(18), new Zmm(22))));    // vpdpbusd zmm0, zmm18, zmm22
        Assert.Equal("6232554050ff", Hex(a => a.Vpdpbusd(new Zmm(15), new Zmm(21), new Zmm(23))));
        Assert.Equal("6202454850c7", Hex(a => a.Vpdpbusd(new Zmm(24), new Zmm(7), new Zmm(31))));   // vpdpbusd zmm24, zmm7, zmm31
    }

    [Fact]
    public void Encodes_the_affine_unpack_the_broadcast_and_the_moves()
    {
        Assert.Equal("6283fd40ced600", Hex(a => a.Vgf2p8affineqb(new Zmm(18), new Zmm(16), new Zmm(30), 0)));
        Assert.Equal("6282fd4010d6", Hex(a => a.Vpsrlvw(new Zmm(18), new Zmm(16), new Zmm(30))));
        Assert.Equal("62d2f54010d9", Hex(a => a.Vpsrlvw(new Zmm(3), new Zmm(17), new Zmm(9))));
        Assert.Equal("62816d40dbd4", Hex(a => a.Vpandd(new Zmm(18), new Zmm(18), new Zmm(28))));
        Assert.Equal("62c2fd485b8a78563412", Hex(a => a.Vbroadcasti64x4(new Zmm(17), new Mem(Gpr.R10, 0x12345678))));
        Assert.Equal("62c1fe486fbb78563412", Hex(a => a.Vmovdqu64(new Zmm(23), new Mem(Gpr.R11, 0x12345678))));
        Assert.Equal("62d1fe487f8978563412", Hex(a => a.Vmovdqu64(new Mem(Gpr.R9, 0x12345678), new Zmm(1))));
        Assert.Equal("62510548efff", Hex(a => a.Vpxord(new Zmm(15), new Zmm(15), new Zmm(15))));
    }

    [Fact]
    public void Encodes_the_int8_widening_and_the_word_dot_product()
    {
        Assert.Equal("62e27d48208678563412", Hex(a => a.Vpmovsxbw(new Zmm(16), new Mem(Gpr.Rsi, 0x12345678))));
        Assert.Equal("62d27d4820a178563412", Hex(a => a.Vpmovsxbw(new Zmm(4), new Mem(Gpr.R9, 0x12345678))));
        Assert.Equal("62f25d4852c5", Hex(a => a.Vpdpwssd(new Zmm(0), new Zmm(4), new Zmm(5))));
        Assert.Equal("6232554052ff", Hex(a => a.Vpdpwssd(new Zmm(15), new Zmm(21), new Zmm(23))));
        Assert.Equal("6202454852c7", Hex(a => a.Vpdpwssd(new Zmm(24), new Zmm(7), new Zmm(31))));
    }

    [Fact]
    public void Encodes_the_f16_widening_and_the_fma()
    {
        Assert.Equal("62f27d48138e00000000", Hex(a => a.Vcvtph2ps(new Zmm(1), new Mem(Gpr.Rsi))));
        Assert.Equal("62e27d48139a20000000", Hex(a => a.Vcvtph2ps(new Zmm(19), new Mem(Gpr.Rdx, 32))));
        Assert.Equal("62c27d48138900000000", Hex(a => a.Vcvtph2ps(new Zmm(17), new Mem(Gpr.R9))));
        Assert.Equal("62b27d40b8c4", Hex(a => a.Vfmadd231ps(new Zmm(0), new Zmm(16), new Zmm(20))));
        Assert.Equal("62326540b8fd", Hex(a => a.Vfmadd231ps(new Zmm(15), new Zmm(19), new Zmm(21))));
        Assert.Equal("62327540b8cc", Hex(a => a.Vfmadd231ps(new Zmm(9), new Zmm(17), new Zmm(20))));
    }

    [Fact]
    public void Encodes_the_reduction_shuffles_and_adds()
    {
        Assert.Equal("62a3f54843c144", Hex(a => a.Vshufi64x2(new Zmm(16), new Zmm(1), new Zmm(17), 0x44)));
        Assert.Equal("62d13d40fed1", Hex(a => a.Vpaddd(new Zmm(2), new Zmm(24), new Zmm(9))));
        Assert.Equal("6281654862e4", Hex(a => a.Vpunpckldq(new Zmm(20), new Zmm(3), new Zmm(28))));
        Assert.Equal("628165486ae4", Hex(a => a.Vpunpckhdq(new Zmm(20), new Zmm(3), new Zmm(28))));
        Assert.Equal("62d1d5406ced", Hex(a => a.Vpunpcklqdq(new Zmm(5), new Zmm(21), new Zmm(13))));
        Assert.Equal("62d1d5406ded", Hex(a => a.Vpunpckhqdq(new Zmm(5), new Zmm(21), new Zmm(13))));
        Assert.Equal("62617d4870cf4e", Hex(a => a.Vpshufd(new Zmm(25), new Zmm(7), 0x4E)));
        Assert.Equal("62917d4870cab1", Hex(a => a.Vpshufd(new Zmm(1), new Zmm(26), 0xB1)));
        Assert.Equal("62f2154036c0", Hex(a => a.Vpermd(new Zmm(0), new Zmm(29), new Zmm(0))));
        Assert.Equal("62d17e087f8078563412", Hex(a => a.Vmovdqu32Low128(new Mem(Gpr.R8, 0x12345678), new Zmm(0))));
        Assert.Equal("62e17e087f8878563412", Hex(a => a.Vmovdqu32Low128(new Mem(Gpr.Rax, 0x12345678), new Zmm(17))));
        Assert.Equal("62f37d4839c102", Hex(a => a.Vextracti32x4(new Zmm(1), new Zmm(0), 2)));
        Assert.Equal("62a37d4839e103", Hex(a => a.Vextracti32x4(new Zmm(17), new Zmm(20), 3)));
        // `{evex} vmovq` / `{evex} vpextrq` (as prefers the VEX forms for xmm0–15).
        Assert.Equal("62f1fd087e8878563412", Hex(a => a.VmovqStore(new Mem(Gpr.Rax, 0x12345678), new Zmm(1))));
        Assert.Equal("62f3fd0816887856341201", Hex(a => a.VpextrqStore(new Mem(Gpr.Rax, 0x12345678), new Zmm(1), 1)));
        Assert.Equal("62c1fd087e8978563412", Hex(a => a.VmovqStore(new Mem(Gpr.R9, 0x12345678), new Zmm(17))));
    }

    [Fact]
    public void Encodes_general_purpose_instructions()
    {
        Assert.Equal("4989fa", Hex(a => a.Mov(Gpr.R10, Gpr.Rdi)));
        Assert.Equal("4c8b8778563412" + "488baf78563412", Hex(a => { a.Mov(Gpr.R8, new Mem(Gpr.Rdi, 0x12345678)); a.Mov(Gpr.Rbp, new Mem(Gpr.Rdi, 0x12345678)); }));
        Assert.Equal("4901f2", Hex(a => a.Add(Gpr.R10, Gpr.Rsi)));
        Assert.Equal("4881c778563412", Hex(a => a.Add(Gpr.Rdi, 0x12345678)));
        Assert.Equal("48038750000000", Hex(a => a.Add(Gpr.Rax, new Mem(Gpr.Rdi, 0x50))));
        Assert.Equal("4d038078563412", Hex(a => a.Add(Gpr.R8, new Mem(Gpr.R8, 0x12345678))));
        Assert.Equal("49ffc8", Hex(a => a.Dec(Gpr.R8)));
        Assert.Equal("c5f877c3", Hex(a => { a.Vzeroupper(); a.Ret(); }));
        Assert.Equal("0f188878563412", Hex(a => a.Prefetcht0(new Mem(Gpr.Rax, 0x12345678))));
        Assert.Equal("410f188b78563412", Hex(a => a.Prefetcht0(new Mem(Gpr.R11, 0x12345678))));
        Assert.Equal("31c9" + "4531c9", Hex(a => { a.Xor32(Gpr.Rcx, Gpr.Rcx); a.Xor32(Gpr.R9, Gpr.R9); }));
        Assert.Equal("0f01d0" + "48c1e220", Hex(a => { a.Xgetbv(); a.Shl(Gpr.Rdx, 32); }));
        Assert.Equal("53" + "55" + "4154" + "4157" + "415f" + "5b", Hex(a => { a.Push(Gpr.Rbx); a.Push(Gpr.Rbp); a.Push(Gpr.R12); a.Push(Gpr.R15); a.Pop(Gpr.R15); a.Pop(Gpr.Rbx); }));
        Assert.Equal("4809d0" + "4d09da", Hex(a => { a.Or(Gpr.Rax, Gpr.Rdx); a.Or(Gpr.R10, Gpr.R11); }));
    }

    [Fact]
    public void Resolves_a_backward_jump_and_a_rip_relative_load()
    {
        // loop: dec r8 ; jnz loop   → the jump's offset is −(3 + 6) = −9.
        Assert.Equal("49ffc80f85f7ffffff", Hex(a => { int l = a.NewLabel(); a.Bind(l); a.Dec(Gpr.R8); a.Jnz(l); }));
        // vmovdqu64 zmm30, [rip + data] with the data right after the 7-byte load: offset 0.
        Assert.Equal("6261fe486f3500000000" + "01", Hex(a => { int d = a.NewLabel(); a.Vmovdqu64(new Zmm(30), d); a.Bind(d); a.Data([1]); }));
    }

    [Fact]
    public void Refuses_an_unbound_label_and_a_base_that_needs_a_sib_byte()
    {
        var asm = new X64Emitter();
        asm.Jnz(asm.NewLabel());
        Assert.Throws<InvalidOperationException>(() => asm.ToArray());
        Assert.Throws<ArgumentException>(() => new X64Emitter().Vmovdqu64(new Zmm(0), new Mem(Gpr.R12)));
    }

    [Theory]
    [InlineData(true, I2sCodeOrder.Rows)]
    [InlineData(false, I2sCodeOrder.Rows)]
    [InlineData(true, I2sCodeOrder.FourRowBlocks)]
    [InlineData(false, I2sCodeOrder.FourRowBlocks)]
    public void The_vnni_kernels_have_distinct_entries_before_their_64_byte_aligned_constants(bool gfni, I2sCodeOrder order)
    {
        byte[] code = I2sKernels.EmitVnniKernels(gfni, order, out int rows4, out int rows1, out int tokens4);
        Assert.Equal(0, rows4);
        Assert.True(rows4 < rows1 && rows1 < tokens4 && tokens4 < code.Length - 128, $"entries {rows4}, {rows1}, {tokens4} of {code.Length} bytes");
        Assert.Equal(0, code.Length % 64);
        Assert.True(code.Length <= 4096, "the kernels fit one page");
    }
}
