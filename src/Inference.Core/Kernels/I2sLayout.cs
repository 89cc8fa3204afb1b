using System.Buffers.Binary;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Runtime.Intrinsics;

namespace BitNet.Inference.Kernels;

/// <summary>
/// The I2_S ternary format of bitnet.cpp (ggml type 36), in the 128/32 layout used by the published
/// 2B4T file on every CPU (spec §3.1).
///
/// Elements are numbered row-major, e = row·ne0 + col. Element e sits in block b = e / 128 at
/// position j = e % 128; group g = j / 32 and lane p = j % 32 put it in byte b·32 + p, bits
/// [7−2g : 6−2g]. So byte p of a block holds elements p, 32+p, 64+p and 96+p, from the most
/// significant bit pair down. Codes are 0 → −1, 1 → 0, 2 → +1 (3 is never written; read as 0).
///
/// After the n/4 packed bytes comes a 32-byte tail whose first 4 bytes are the one float32 scale
/// of the whole tensor. Total size: n/4 + 32 bytes.
/// </summary>
public static class I2sLayout
{
    /// <summary>Elements per block: each block is 32 bytes holding 4 groups of 32 two-bit codes.</summary>
    public const int BlockElements = 128;
    public const int BlockBytes = 32;
    public const int TailBytes = 32;

    /// <summary>Bytes of packed codes for a row of <paramref name="columns"/> elements.</summary>
    public static int RowBytes(int columns) => columns / 4;

    /// <summary>Bytes an I2_S tensor of n elements takes in a file (before alignment padding).</summary>
    public static long TensorBytes(long elements) => elements / 4 + TailBytes;

    /// <summary>The two-bit code of element <paramref name="index"/> (row-major) in packed data.</summary>
    public static int Code(ReadOnlySpan<byte> packed, long index)
    {
        long block = index / BlockElements;
        int position = (int)(index % BlockElements);
        int group = position / 32, lane = position % 32;
        return (packed[(int)(block * BlockBytes + lane)] >> (6 - 2 * group)) & 3;
    }

    /// <summary>The ternary value (−1, 0, +1) a code stands for; code 3 reads as 0 like dequantize_row_i2_s.</summary>
    public static int CodeToValue(int code) => code switch { 0 => -1, 2 => 1, _ => 0 };

    /// <summary>The per-tensor scale stored after the packed codes.</summary>
    public static float ReadScale(ReadOnlySpan<byte> tensor, long elements) =>
        BinaryPrimitives.ReadSingleLittleEndian(tensor.Slice((int)(elements / 4), 4));

    /// <summary>
    /// Rearranges row-order codes (<paramref name="rows"/> rows of <paramref name="columns"/>) into
    /// <see cref="I2sCodeOrder.FourRowBlocks"/> order, in place: within each whole group of 4 rows, block b of
    /// row i moves to byte (4b + i)·32 of the group. Rows after the last whole group stay as they are.
    /// <paramref name="scratch"/> holds at least one group (4 · columns / 4 bytes).
    /// </summary>
    public static void InterleaveFourRowBlocks(Span<byte> codes, int rows, int columns, Span<byte> scratch) =>
        Rearrange(codes, rows, columns, scratch, toBlocks: true);

    /// <summary>The inverse of <see cref="InterleaveFourRowBlocks"/>: back to row order, in place.</summary>
    public static void DeinterleaveFourRowBlocks(Span<byte> codes, int rows, int columns, Span<byte> scratch) =>
        Rearrange(codes, rows, columns, scratch, toBlocks: false);

    private static void Rearrange(Span<byte> codes, int rows, int columns, Span<byte> scratch, bool toBlocks)
    {
        int rowBytes = RowBytes(columns), groupBytes = 4 * rowBytes;
        if (columns % BlockElements != 0 || rows < 0 || codes.Length < (long)rows * rowBytes || scratch.Length < groupBytes)
            throw new ArgumentException($"{rows} rows of {columns} columns do not fit {codes.Length} bytes of codes and {scratch.Length} of scratch");
        scratch = scratch[..groupBytes];
        for (int g = 0; g + 4 <= rows; g += 4)
        {
            Span<byte> group = codes.Slice(g * rowBytes, groupBytes);
            group.CopyTo(scratch);
            Regroup(scratch, group, columns, toBlocks);
        }
    }

    /// <summary>One group of 4 rows from one order into the other (<paramref name="toBlocks"/>: row order → four-row blocks).</summary>
    [MethodImpl(MethodImplOptions.AggressiveOptimization)]   // runs over every weight at load, before tiering would promote it
    private static void Regroup(ReadOnlySpan<byte> from, Span<byte> to, int columns, bool toBlocks)
    {
        int rowBytes = RowBytes(columns), blocks = columns / BlockElements;
        ref byte source = ref MemoryMarshal.GetReference(from);
        ref byte destination = ref MemoryMarshal.GetReference(to);
        for (int b = 0; b < blocks; b++)
            for (int i = 0; i < 4; i++)
            {
                nuint inRows = (nuint)(i * rowBytes + b * BlockBytes), inBlocks = (nuint)((4 * b + i) * BlockBytes);
                Vector256.LoadUnsafe(ref source, toBlocks ? inRows : inBlocks).StoreUnsafe(ref destination, toBlocks ? inBlocks : inRows);
            }
    }

    /// <summary>
    /// Pack ternary values (−1, 0, +1, row-major, length a multiple of 128) and a scale into I2_S
    /// bytes, tail included (the 28 padding bytes are written as zero).
    /// </summary>
    public static byte[] Pack(ReadOnlySpan<sbyte> ternary, float scale)
    {
        if (ternary.Length % BlockElements != 0)
            throw new ArgumentException($"I2_S needs a multiple of {BlockElements} elements, got {ternary.Length}", nameof(ternary));
        var bytes = new byte[TensorBytes(ternary.Length)];
        PackInto(ternary, bytes);
        BinaryPrimitives.WriteSingleLittleEndian(bytes.AsSpan(ternary.Length / 4, 4), scale);
        return bytes;
    }

    /// <summary>Pack ternary values into codes only (no tail); destination holds length/4 bytes.</summary>
    public static void PackInto(ReadOnlySpan<sbyte> ternary, Span<byte> destination)
    {
        for (int e = 0; e < ternary.Length; e++)
        {
            int value = ternary[e];
            if (value is < -1 or > 1)
                throw new ArgumentException($"element {e} is {value}, not a ternary value", nameof(ternary));
            int block = e / BlockElements, position = e % BlockElements;
            int group = position / 32, lane = position % 32;
            int code = value + 1;
            destination[block * BlockBytes + lane] |= (byte)(code << (6 - 2 * group));
        }
    }
}

/// <summary>
/// How a ternary matrix's I2_S codes are ordered in memory. <see cref="Rows"/> is the file's: row after
/// row. <see cref="FourRowBlocks"/> keeps each group of 4 rows (rows 4g … 4g + 3) in the same bytes but
/// interleaves them block by block (row 0's block 0, row 1's block 0, …, row 0's block 1, …), so a kernel
/// that reads the four rows together reads one sequential stream instead of four short ones: the
/// hardware prefetcher follows it, and decode reads the weights faster. Rows after the last whole group
/// stay in row order.
/// </summary>
public enum I2sCodeOrder
{
    Rows,
    FourRowBlocks,
}
