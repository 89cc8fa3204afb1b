using System.IO.MemoryMappedFiles;
using System.Text.Json;

namespace BitNet.Inference.Conversion;

/// <summary>
/// A minimal safetensors reader: an 8-byte little-endian header length, a JSON header mapping each
/// tensor name to <c>{dtype, shape, data_offsets: [begin, end]}</c> (offsets relative to the end of
/// the header), then the raw data. The file is memory-mapped; tensors are views into it. Shapes are
/// row-major (last dimension contiguous) and are reversed into ggml <c>ne</c> order.
/// </summary>
public sealed unsafe class SafetensorsFile : IDisposable
{
    private readonly MemoryMappedFile _map;
    private readonly MemoryMappedViewAccessor _view;
    private readonly byte* _base;
    private readonly List<(string Name, string DType, long[] Shape, long Begin, long End)> _entries = [];

    public SafetensorsFile(string path)
    {
        Path = path;
        long length = new FileInfo(path).Length;
        if (length < 8)
            throw new ConversionException($"{path}: {length} bytes is too short for a safetensors file");
        _map = MemoryMappedFile.CreateFromFile(path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        _view = _map.CreateViewAccessor(0, length, MemoryMappedFileAccess.Read);
        byte* pointer = null;
        _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
        _base = pointer + _view.PointerOffset;

        ulong headerLength = *(ulong*)_base;
        if (headerLength > (ulong)(length - 8) || headerLength > 100_000_000)
            throw new ConversionException($"{path}: header length {headerLength} does not fit in the {length}-byte file (not a safetensors file?)");
        DataStart = 8 + (long)headerLength;
        try
        {
            using var header = JsonDocument.Parse(new ReadOnlyMemory<byte>(new ReadOnlySpan<byte>(_base + 8, (int)headerLength).ToArray()));
            foreach (var property in header.RootElement.EnumerateObject())
            {
                if (property.Name == "__metadata__")
                    continue;
                var e = property.Value;
                string dtype = e.GetProperty("dtype").GetString() ?? "";
                long[] shape = [.. e.GetProperty("shape").EnumerateArray().Select(d => d.GetInt64())];
                long[] offsets = [.. e.GetProperty("data_offsets").EnumerateArray().Select(d => d.GetInt64())];
                if (offsets.Length != 2 || offsets[0] < 0 || offsets[1] < offsets[0] || DataStart + offsets[1] > length)
                    throw new ConversionException($"{path}: tensor '{property.Name}' has data offsets outside the file");
                _entries.Add((property.Name, dtype, shape, offsets[0], offsets[1]));
            }
        }
        catch (Exception e) when (e is JsonException or KeyNotFoundException or InvalidOperationException)
        {
            throw new ConversionException($"{path}: unreadable safetensors header ({e.Message})", e);
        }
    }

    public string Path { get; }
    public long DataStart { get; }
    public IEnumerable<string> Names => _entries.Select(e => e.Name);

    /// <summary>The tensor under its safetensors name, shape reversed to ne order.</summary>
    public SourceTensor Tensor(string name, string ggufName)
    {
        var entry = _entries.First(e => e.Name == name);
        SourceDType dtype = entry.DType switch
        {
            "F32" => SourceDType.F32,
            "F16" => SourceDType.F16,
            "BF16" => SourceDType.BF16,
            _ => throw new ConversionException($"{Path}: tensor '{name}' is {entry.DType}; only F32, F16 and BF16 can be converted"),
        };
        long[] ne = entry.Shape.Length == 0 ? [1] : [.. entry.Shape.Reverse()];
        string shape = $"[{string.Join(", ", entry.Shape)}]";
        if (ne.Any(d => d < 1))
            throw new ConversionException($"{Path}: tensor '{name}' has shape {shape}; every dimension must be at least 1");
        long expected;
        try
        {
            expected = checked(ne.Aggregate(1L, (a, b) => a * b) * SourceTensor.ElementSize(dtype));
        }
        catch (OverflowException)
        {
            throw new ConversionException($"{Path}: tensor '{name}' has shape {shape}, more bytes than a file can hold");
        }
        if (expected != entry.End - entry.Begin)
            throw new ConversionException($"{Path}: tensor '{name}' shape [{string.Join(", ", entry.Shape)}] needs {expected} bytes but has {entry.End - entry.Begin}");
        return new SourceTensor(ggufName, ne, dtype, _base + DataStart + entry.Begin, entry.End - entry.Begin);
    }

    public void Dispose()
    {
        _view.SafeMemoryMappedViewHandle.ReleasePointer();
        _view.Dispose();
        _map.Dispose();
    }
}
