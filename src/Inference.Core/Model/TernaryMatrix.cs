using System.Runtime.InteropServices;
using BitNet.Inference.Gguf;
using BitNet.Inference.Kernels;

namespace BitNet.Inference.Model;

/// <summary>
/// A ternary weight matrix in the I2_S 128/32 layout (spec §3.1): <see cref="Rows"/> output features
/// of <see cref="Columns"/> inputs, each row <see cref="RowBytes"/> bytes of 2-bit codes, and one
/// float scale for the whole tensor. I2_S tensors point straight into the memory-mapped file; TQ1_0,
/// TQ2_0 and ternary-valued F32/F16/BF16 tensors are decoded at load into an owned, pinned I2_S copy.
///
/// <see cref="BlockScales"/> is null unless a TQ tensor has different fp16 scales in different blocks;
/// then it holds one scale per 256-element block (row-major) and <see cref="Scale"/> is unused.
/// </summary>
public sealed unsafe class TernaryMatrix
{
    private readonly byte[]? _owned; // pinned; keeps converted codes alive

    private TernaryMatrix(string name, int rows, int columns, byte* codes, float scale, float[]? blockScales, byte[]? owned)
    {
        Name = name;
        Rows = rows;
        Columns = columns;
        Codes = codes;
        Scale = scale;
        BlockScales = blockScales;
        _owned = owned;
    }

    public string Name { get; }
    /// <summary>Output features (ne1).</summary>
    public int Rows { get; }
    /// <summary>Input features (ne0), a multiple of 128.</summary>
    public int Columns { get; }
    public int RowBytes => Columns / 4;
    /// <summary>First byte of row 0's codes; in row order row r starts at Codes + r·RowBytes.</summary>
    public byte* Codes { get; }
    /// <summary>How the codes are ordered: as in the file, unless the model rearranged its private copy
    /// for a kernel that reads <see cref="I2sCodeOrder.FourRowBlocks"/>.</summary>
    public I2sCodeOrder CodeOrder { get; private set; }
    /// <summary>The per-tensor weight scale (from the I2_S tail, or the common TQ block scale).</summary>
    public float Scale { get; }
    public float[]? BlockScales { get; }
    /// <summary>Whether the codes were decoded at load into memory this matrix owns (not I2_S in the file).</summary>
    public bool IsConverted => _owned is not null;
    /// <summary>How the weights were stored in the file (I2_S, TQ1_0, TQ2_0, F32, F16 or BF16).</summary>
    public GgmlType SourceType { get; private init; }

    /// <summary>Row <paramref name="row"/>'s codes (row order only).</summary>
    public ReadOnlySpan<byte> Row(int row) => CodeOrder == I2sCodeOrder.Rows
        ? new(Codes + (long)row * RowBytes, RowBytes)
        : throw new InvalidOperationException($"'{Name}' holds its codes in {CodeOrder} order");

    /// <summary>All the codes, <see cref="Rows"/> · <see cref="RowBytes"/> bytes, in <see cref="CodeOrder"/>.</summary>
    public ReadOnlySpan<byte> AllCodes => new(Codes, checked(Rows * RowBytes));

    /// <summary>
    /// Rearranges the codes in place into <see cref="I2sCodeOrder.FourRowBlocks"/> order. Only for codes the
    /// process may write (a private copy of the file's, or a converted matrix) and while no product reads
    /// them (at load, or under <see cref="MatMul.Exclusively"/>); matrices with <see cref="BlockScales"/> keep
    /// row order (their reference product reads rows).
    /// Returns whether the codes were rearranged.
    /// </summary>
    internal bool RearrangeIntoFourRowBlocks()
    {
        if (BlockScales is not null || CodeOrder == I2sCodeOrder.FourRowBlocks) return false;
        var codes = new Span<byte>(Codes, checked(Rows * RowBytes));
        Span<byte> scratch = Columns <= 16384 ? stackalloc byte[Columns] : new byte[Columns];   // one group: 4 · RowBytes
        I2sLayout.InterleaveFourRowBlocks(codes, Rows, Columns, scratch);
        CodeOrder = I2sCodeOrder.FourRowBlocks;
        return true;
    }

    /// <summary>View an I2_S tensor in place (shape already checked by the caller).</summary>
    public static TernaryMatrix FromI2s(GgufFile file, GgufTensorInfo tensor)
    {
        int columns = (int)tensor.Shape[0], rows = (int)tensor.Shape[1];
        byte* data = file.GetTensorPointer(tensor);
        long elements = (long)rows * columns;
        float scale = *(float*)(data + elements / 4); // little-endian float right after the packed codes
        if (!float.IsFinite(scale))
            throw new ModelFormatException($"tensor '{tensor.Name}' has a non-finite I2_S scale {scale}");
        return new TernaryMatrix(tensor.Name, rows, columns, data, scale, null, null) { SourceType = GgmlType.I2_S };
    }

    /// <summary>An owned matrix from ternary values (−1, 0, +1; row-major, columns a multiple of 128) and one scale.</summary>
    internal static TernaryMatrix FromTernaryValues(string name, ReadOnlySpan<sbyte> values, int rows, int columns, float scale)
    {
        if (columns % I2sLayout.BlockElements != 0 || values.Length != rows * columns)
            throw new ArgumentException($"{values.Length} values do not make a {rows}×{columns} I2_S matrix", nameof(values));
        byte[] codes = GC.AllocateArray<byte>(rows * (columns / 4), pinned: true);
        I2sLayout.PackInto(values, codes);
        byte* pointer = (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(codes, 0);
        return new TernaryMatrix(name, rows, columns, pointer, scale, null, codes) { SourceType = GgmlType.I2_S };
    }

    /// <summary>
    /// A float matrix (F32, F16 or BF16) whose values are already ternary, t·m with one magnitude m per
    /// tensor — how llama.cpp's converter stores BitNet weights with --outtype f32/f16/bf16 — repacked as
    /// I2_S codes with scale m. Anything else is rejected: this engine computes BitNet matmuls in int8.
    /// </summary>
    public static TernaryMatrix FromFloatTernary(GgufFile file, GgufTensorInfo tensor)
    {
        int columns = (int)tensor.Shape[0], rows = (int)tensor.Shape[1];
        byte* data = file.GetTensorPointer(tensor);
        float Value(long i) => tensor.Type switch
        {
            GgmlType.F32 => ((float*)data)[i],
            GgmlType.F16 => (float)((Half*)data)[i],
            _ => BitConverter.Int32BitsToSingle(((ushort*)data)[i] << 16), // BF16
        };
        long n = (long)rows * columns;
        float magnitude = 0;
        for (long i = 0; i < n && magnitude == 0; i++) magnitude = MathF.Abs(Value(i));
        if (!float.IsFinite(magnitude))
            throw new ModelFormatException($"tensor '{tensor.Name}' ({tensor.Type}) has a non-finite value");

        byte[] codes = GC.AllocateArray<byte>(rows * (columns / 4), pinned: true);
        var rowValues = new sbyte[columns];
        for (int r = 0; r < rows; r++)
        {
            for (int c = 0; c < columns; c++)
            {
                float v = Value((long)r * columns + c);
                rowValues[c] = v == 0 ? (sbyte)0 : v == magnitude ? (sbyte)1 : v == -magnitude ? (sbyte)-1
                    : throw new ModelFormatException(
                        $"tensor '{tensor.Name}' ({tensor.Type}) is not ternary: element [{r}, {c}] is {v}, expected 0 or ±{magnitude}");
            }
            I2sLayout.PackInto(rowValues, codes.AsSpan(r * (columns / 4), columns / 4));
        }
        byte* pointer = (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(codes, 0);
        return new TernaryMatrix(tensor.Name, rows, columns, pointer, magnitude, null, codes) { SourceType = tensor.Type };
    }

    /// <summary>Decode a TQ1_0 or TQ2_0 tensor into I2_S codes (and one scale when the blocks agree).</summary>
    public static TernaryMatrix FromTernaryBlocks(GgufFile file, GgufTensorInfo tensor)
    {
        int columns = (int)tensor.Shape[0], rows = (int)tensor.Shape[1];
        bool tq2 = tensor.Type == GgmlType.TQ2_0;
        int blockBytes = tq2 ? TernaryFormats.Tq2BlockBytes : TernaryFormats.Tq1BlockBytes;
        int blocksPerRow = columns / TernaryFormats.BlockElements;
        byte* data = file.GetTensorPointer(tensor);

        byte[] codes = GC.AllocateArray<byte>(rows * (columns / 4), pinned: true);
        var blockScales = new float[rows * blocksPerRow];
        var hasNonZero = new bool[blockScales.Length];
        var rowValues = new sbyte[columns];
        for (int r = 0; r < rows; r++)
        {
            for (int b = 0; b < blocksPerRow; b++)
            {
                var block = new ReadOnlySpan<byte>(data + ((long)r * blocksPerRow + b) * blockBytes, blockBytes);
                var values = rowValues.AsSpan(b * TernaryFormats.BlockElements, TernaryFormats.BlockElements);
                Half d;
                try
                {
                    d = tq2 ? TernaryFormats.DecodeTq2_0(block, values) : TernaryFormats.DecodeTq1_0(block, values);
                }
                catch (InvalidDataException e)
                {
                    throw new ModelFormatException($"tensor '{tensor.Name}' row {r} block {b}: {e.Message}");
                }
                blockScales[r * blocksPerRow + b] = (float)d;
                hasNonZero[r * blocksPerRow + b] = values.ContainsAnyExcept((sbyte)0);
            }
            I2sLayout.PackInto(rowValues, codes.AsSpan(r * (columns / 4), columns / 4));
        }

        // A tensor-wide scale is the common case (BitNet weights are m·{−1,0,+1}); blocks that are all
        // zero may carry any scale (mainline writes d = 0 there), so only non-zero blocks must agree.
        float? common = null;
        bool uniform = true;
        for (int i = 0; i < blockScales.Length && uniform; i++)
        {
            if (!hasNonZero[i]) continue;
            common ??= blockScales[i];
            uniform = blockScales[i] == common;
        }
        if (blockScales.Any(s => !float.IsFinite(s)))
            throw new ModelFormatException($"tensor '{tensor.Name}' has a non-finite block scale");
        byte* pointer = (byte*)Marshal.UnsafeAddrOfPinnedArrayElement(codes, 0);
        return new TernaryMatrix(tensor.Name, rows, columns, pointer, common ?? 0f, uniform ? null : blockScales, codes)
        {
            SourceType = tensor.Type,
        };
    }
}
