using System.Runtime.InteropServices;
using BitNet.Inference.Gguf;

namespace BitNet.Inference.Model;

/// <summary>
/// Rows of the F16 LM head, read on demand: from the model file with positional reads (pread) when
/// the head is a tensor of the mapped file, so its pages stay in the page cache and out of this
/// process's resident set; or copied from memory when the head was converted at load.
/// </summary>
internal sealed unsafe class HeadRows
{
    /// <summary>Rows staged per read (320 KB at 2560 columns).</summary>
    public const int StagedRows = 64;

    private readonly GgufFile? _file;
    private readonly long _offset;
    private readonly Half* _memory;

    private HeadRows(int rows, int columns, GgufFile? file, long offset, Half* memory)
    {
        Rows = rows; Columns = columns; _file = file; _offset = offset; _memory = memory;
    }

    public int Rows { get; }
    public int Columns { get; }

    /// <summary>Rows read from <paramref name="file"/> at byte <paramref name="offset"/>.</summary>
    public static HeadRows FromFile(GgufFile file, long offset, int rows, int columns) => new(rows, columns, file, offset, null);

    /// <summary>Rows copied from a resident matrix.</summary>
    public static HeadRows FromMemory(Half* matrix, int rows, int columns) => new(rows, columns, null, 0, matrix);

    /// <summary>Rows first … first + count − 1 into the start of <paramref name="destination"/>.</summary>
    public void Read(int first, int count, Span<Half> destination)
    {
        if (first < 0 || count < 0 || first + count > Rows)
            throw new ArgumentOutOfRangeException(nameof(first), $"rows {first}..{first + count} of a {Rows}-row head");
        int values = checked(count * Columns);
        if (destination.Length < values)
            throw new ArgumentException($"{count} rows need {values} values, the buffer holds {destination.Length}", nameof(destination));
        if (_file is not null)
            _file.ReadAt(_offset + 2L * first * Columns, MemoryMarshal.AsBytes(destination[..values]));
        else
            new ReadOnlySpan<Half>(_memory + (long)first * Columns, values).CopyTo(destination);
    }
}
