using System.IO.MemoryMappedFiles;
using System.Text;
using Microsoft.Win32.SafeHandles;

namespace BitNet.Inference.Gguf;

/// <summary>
/// A GGUF v3 (or v2) file opened through a read-only memory map (spec §1). Metadata and tensor
/// infos are parsed and validated once at open; GetTensorBytes and GetTensorPointer return views
/// straight into the mapping, valid until Dispose, except for tensors the owner chose to read into
/// private memory (<see cref="CopyTensorsToMemory"/>), whose views are the copies.
///
/// Every read during parsing is checked against the file length, and every tensor's data range is
/// checked to lie inside the file, so later pointer access cannot leave the mapping. Anything
/// malformed raises <see cref="GgufFormatException"/> naming what was read and where.
/// </summary>
public sealed unsafe class GgufFile : IDisposable
{
    public const uint Magic = 0x46554747; // "GGUF" read as a little-endian u32
    public const int DefaultAlignment = 32;
    public const string AlignmentKey = "general.alignment";

    private readonly MemoryMappedFile? _map;
    private readonly MemoryMappedViewAccessor? _view;
    private byte* _base;
    private SafeFileHandle? _reader;   // opened on the first ReadAt
    private TensorCopies? _copies;     // set by CopyTensorsToMemory
    private readonly Dictionary<string, GgufValue> _metadata;
    private readonly List<KeyValuePair<string, GgufValue>> _metadataInOrder;
    private readonly List<GgufTensorInfo> _tensors;
    private readonly Dictionary<string, GgufTensorInfo> _tensorsByName;

    private GgufFile(string path)
    {
        if (string.IsNullOrEmpty(path))
            throw new FileNotFoundException("no GGUF file given: the path is empty");
        Path = System.IO.Path.GetFullPath(path);
        var info = new FileInfo(Path);
        if (Directory.Exists(Path)) throw new IOException($"'{Path}' is a directory, not a GGUF file");
        if (SpecialFiles.SpecialKind(Path) is { } kind) throw new IOException($"'{Path}' is not a regular file but {kind}; give a GGUF file");
        if (!info.Exists) throw new FileNotFoundException($"GGUF file not found: {Path}", Path);
        FileSize = info.Length;
        _metadata = new Dictionary<string, GgufValue>(StringComparer.Ordinal);
        _metadataInOrder = [];
        _tensors = [];
        _tensorsByName = new Dictionary<string, GgufTensorInfo>(StringComparer.Ordinal);

        if (FileSize < 8)
            throw new GgufFormatException($"{Path}: truncated file ({FileSize} bytes) while reading the GGUF header at offset 0");

        _map = MemoryMappedFile.CreateFromFile(Path, FileMode.Open, null, 0, MemoryMappedFileAccess.Read);
        try
        {
            _view = _map.CreateViewAccessor(0, 0, MemoryMappedFileAccess.Read);
            byte* pointer = null;
            _view.SafeMemoryMappedViewHandle.AcquirePointer(ref pointer);
            _base = pointer + _view.PointerOffset;
            Parse();
        }
        catch
        {
            Dispose();
            throw;
        }
    }

    /// <summary>Open and validate a GGUF file. Throws <see cref="GgufFormatException"/> for malformed input.</summary>
    public static GgufFile Open(string path) => new(path);

    public string Path { get; }
    public long FileSize { get; }
    public int Version { get; private set; }
    public int Alignment { get; private set; } = DefaultAlignment;
    /// <summary>File offset where the data section starts (tensor offsets count from here).</summary>
    public long DataOffset { get; private set; }

    public IReadOnlyDictionary<string, GgufValue> Metadata => _metadata;
    /// <summary>The metadata in file order.</summary>
    public IReadOnlyList<KeyValuePair<string, GgufValue>> MetadataInOrder => _metadataInOrder;
    public IReadOnlyList<GgufTensorInfo> Tensors => _tensors;

    // ---- metadata accessors -------------------------------------------------------------------

    public bool ContainsKey(string key) => _metadata.ContainsKey(key);

    public string GetString(string key) =>
        Require(key).Value as string ?? throw WrongType(key, "a string");

    public bool TryGetString(string key, out string value)
    {
        value = _metadata.TryGetValue(key, out var v) && v.Value is string s ? s : "";
        return v?.Value is string;
    }

    /// <summary>Any integer type (u8..i64; u64 only if it fits a long).</summary>
    public long GetInteger(string key) =>
        Require(key).TryGetInteger(out long value) ? value : throw WrongType(key, "an integer");

    public bool TryGetInteger(string key, out long value)
    {
        value = 0;
        return _metadata.TryGetValue(key, out var v) && v.TryGetInteger(out value);
    }

    /// <summary>A Float32 (or Float64, narrowed) value.</summary>
    public float GetFloat(string key) =>
        Require(key).TryGetFloat(out float value) ? value : throw WrongType(key, "a float");

    public bool TryGetFloat(string key, out float value)
    {
        value = 0;
        return _metadata.TryGetValue(key, out var v) && v.TryGetFloat(out value);
    }

    public bool GetBool(string key) => Require(key).Value is bool b ? b : throw WrongType(key, "a bool");

    public bool TryGetBool(string key, out bool value)
    {
        value = _metadata.TryGetValue(key, out var v) && v.Value is true;
        return v?.Value is bool;
    }

    public string[] GetStringArray(string key) =>
        Require(key).Value as string[] ?? throw WrongType(key, "an array of strings");

    /// <summary>
    /// A string array without turning it into strings: a long one (16k+ elements) as its undecoded bytes
    /// (<see cref="Utf8StringArray"/>, valid while this file is open), a short one as its strings. For a
    /// list read once, an element at a time (the tokenizer's vocabulary and merges, copied as UTF-8).
    /// </summary>
    public IReadOnlyList<string> GetStrings(string key)
    {
        var value = Require(key);
        if (value.Utf8Strings is { } raw) return raw;
        return value.Value as string[] ?? throw WrongType(key, "an array of strings");
    }

    /// <summary>The mapping's first byte (for <see cref="Utf8StringArray"/>); ObjectDisposedException once closed.</summary>
    internal byte* MappedBase
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base == null, this);
            return _base;
        }
    }

    /// <summary>An array of any integer type whose values fit an int (token types are i32 in practice).</summary>
    public int[] GetInt32Array(string key)
    {
        var value = Require(key);
        if (value.Value is int[] ints) return ints;
        if (!value.IsArray || value.ElementType is GgufValueType.String or GgufValueType.Bool
            or GgufValueType.Float32 or GgufValueType.Float64)
            throw WrongType(key, "an array of integers");
        var source = (Array)value.Value;
        var result = new int[source.Length];
        for (int i = 0; i < result.Length; i++)
        {
            long v = Convert.ToInt64(source.GetValue(i) is ulong u && u > long.MaxValue ? long.MaxValue : source.GetValue(i));
            if (v is < int.MinValue or > int.MaxValue)
                throw new GgufFormatException($"metadata key '{key}' element {i} = {v} does not fit a 32-bit integer");
            result[i] = (int)v;
        }
        return result;
    }

    public float[] GetFloat32Array(string key)
    {
        var value = Require(key);
        if (value.Value is float[] floats) return floats;
        if (value.Value is double[] doubles) return Array.ConvertAll(doubles, d => (float)d);
        throw WrongType(key, "an array of floats");
    }

    private GgufValue Require(string key) =>
        _metadata.TryGetValue(key, out var value) ? value
            : throw new GgufFormatException($"{System.IO.Path.GetFileName(Path)}: metadata key '{key}' is missing");

    private GgufFormatException WrongType(string key, string expected) =>
        new($"{System.IO.Path.GetFileName(Path)}: metadata key '{key}' is {_metadata[key].TypeName}, expected {expected}");

    // ---- tensors ------------------------------------------------------------------------------

    public GgufTensorInfo GetTensor(string name) =>
        _tensorsByName.TryGetValue(name, out var info) ? info
            : throw new GgufFormatException($"{System.IO.Path.GetFileName(Path)}: tensor '{name}' is missing");

    public bool TryGetTensor(string name, out GgufTensorInfo info) =>
        _tensorsByName.TryGetValue(name, out info!);

    /// <summary>The tensor's bytes (exact size by the type rules), straight from the mapping.</summary>
    public ReadOnlySpan<byte> GetTensorBytes(GgufTensorInfo tensor)
    {
        if (tensor.ByteSize > int.MaxValue)
            throw new NotSupportedException($"tensor '{PrintableText.Escape(tensor.Name)}' is {tensor.ByteSize} bytes, too large for a span; use GetTensorPointer");
        return new ReadOnlySpan<byte>(GetTensorPointer(tensor), (int)tensor.ByteSize);
    }

    /// <summary>The whole mapped file: its first byte and length (valid until Dispose).</summary>
    public (nint Start, long Bytes) Mapping
    {
        get
        {
            ObjectDisposedException.ThrowIf(_base == null, this);
            return ((nint)_base, FileSize);
        }
    }

    /// <summary>
    /// Copy bytes at a file offset with a positional read (pread) rather than through the mapping, so
    /// the pages stay out of this process's resident set. Safe from several threads at once.
    /// </summary>
    public void ReadAt(long offset, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        if (offset < 0 || offset > FileSize - destination.Length)
            throw new ArgumentOutOfRangeException(nameof(offset), offset, $"{destination.Length} bytes at {offset} run past the end of {Path} ({FileSize} bytes)");
        SafeFileHandle reader = _reader ?? OpenReader();
        for (int done = 0; done < destination.Length;)
        {
            int n = RandomAccess.Read(reader, destination[done..], offset + done);
            if (n == 0) throw new EndOfStreamException($"{Path} ended at {offset + done} while reading {destination.Length} bytes at {offset}");
            done += n;
        }
    }

    private SafeFileHandle OpenReader()
    {
        var handle = File.OpenHandle(Path, FileMode.Open, FileAccess.Read, FileShare.Read);
        SafeFileHandle? other = Interlocked.CompareExchange(ref _reader, handle, null);
        if (other is null) return handle;
        handle.Dispose();   // another thread opened one first
        return other;
    }

    /// <summary>
    /// Pointer to the tensor's first byte: inside the mapping, or in its private copy if it was copied
    /// (valid until Dispose).
    /// </summary>
    public byte* GetTensorPointer(GgufTensorInfo tensor)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        GgufTensorInfo own = Own(tensor);
        if (_copies is not null && _copies.TryGetPointer(own.Name, out byte* copy)) return copy;
        return _base + DataOffset + own.Offset;
    }

    private GgufTensorInfo Own(GgufTensorInfo tensor) =>
        _tensorsByName.TryGetValue(tensor.Name, out var own) && (ReferenceEquals(own, tensor) || own == tensor) ? own
            : throw new ArgumentException($"tensor '{tensor.Name}' does not belong to this file", nameof(tensor));

    /// <summary>
    /// Read the data of <paramref name="tensors"/> into private memory, 2 MB pages where the OS gives
    /// them, with positional reads (pread) rather than through the mapping; from then on
    /// <see cref="GetTensorPointer"/> returns the copies. Returns the bytes laid out.
    /// Why: a mapping shares the page cache's pages, but on some virtual machines every pass over
    /// file-backed pages mapped into a process is many times slower than over the same bytes in
    /// anonymous memory (docs/weight-storage.md), and a first pass costs a page-table fill per 4 KB page everywhere.
    /// <paramref name="parallelFor"/> (piece ranges) spreads the reads over threads, or null for one.
    /// Once per file.
    /// </summary>
    public long CopyTensorsToMemory(IReadOnlyList<GgufTensorInfo> tensors, Action<int, Action<int, int>>? parallelFor = null)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        ArgumentNullException.ThrowIfNull(tensors);
        if (_copies is not null) throw new InvalidOperationException($"{Path}: tensors were already copied to memory");
        var own = tensors.Select(Own).ToList();
        var copies = new TensorCopies(own);
        try
        {
            var pieces = new List<(long FileOffset, nint Destination, int Bytes)>();
            foreach (GgufTensorInfo tensor in own)
            {
                copies.TryGetPointer(tensor.Name, out byte* destination);
                for (long done = 0; done < tensor.ByteSize; done += TensorCopies.PieceBytes)
                    pieces.Add((DataOffset + tensor.Offset + done, (nint)(destination + done),
                        (int)Math.Min(TensorCopies.PieceBytes, tensor.ByteSize - done)));
            }
            void Read(int start, int end)
            {
                for (int i = start; i < end; i++)
                    ReadAt(pieces[i].FileOffset, new Span<byte>((void*)pieces[i].Destination, pieces[i].Bytes));
            }
            if (parallelFor is null) Read(0, pieces.Count);
            else parallelFor(pieces.Count, Read);
        }
        catch
        {
            copies.Dispose();
            throw;
        }
        _copies = copies;
        return copies.Bytes;
    }

    /// <summary>
    /// Copy a tensor's bytes (its exact size) into <paramref name="destination"/>: from its private copy
    /// if it has one, else with a positional read, so a small tensor read once (a norm vector) does not
    /// map the page cache's folio around it into the resident set (up to 2 MB each where the file is
    /// cached in large folios).
    /// </summary>
    public void ReadTensor(GgufTensorInfo tensor, Span<byte> destination)
    {
        ObjectDisposedException.ThrowIf(_base == null, this);
        GgufTensorInfo own = Own(tensor);
        if (destination.Length != own.ByteSize)
            throw new ArgumentException($"tensor '{own.Name}' is {own.ByteSize} bytes, the destination holds {destination.Length}", nameof(destination));
        if (_copies is not null && _copies.TryGetPointer(own.Name, out byte* copy))
            new ReadOnlySpan<byte>(copy, destination.Length).CopyTo(destination);
        else
            ReadAt(DataOffset + own.Offset, destination);
    }

    /// <summary>Bytes of tensor data held in private memory (<see cref="CopyTensorsToMemory"/>); 0 when all is mapped.</summary>
    public long CopiedBytes => _copies?.Bytes ?? 0;

    /// <summary>Whether <paramref name="tensor"/>'s data was copied to private memory.</summary>
    public bool IsCopied(GgufTensorInfo tensor) => _copies is not null && _copies.TryGetPointer(Own(tensor).Name, out _);

    public void Dispose()
    {
        if (_base != null)
        {
            _view!.SafeMemoryMappedViewHandle.ReleasePointer();
            _base = null;
        }
        _view?.Dispose();
        _map?.Dispose();
        _reader?.Dispose();
        _copies?.Dispose();
    }

    // ---- parsing ------------------------------------------------------------------------------

    private void Parse()
    {
        var r = new Reader(_base, FileSize, System.IO.Path.GetFileName(Path));
        uint magic = r.U32("the magic");
        if (magic != Magic)
            throw new GgufFormatException(
                $"{r.File}: not a GGUF file: the magic at offset 0 is {Describe(magic)}, expected \"GGUF\"");
        uint version = r.U32("the version");
        if (version is not (2 or 3))
            throw new GgufFormatException(version == 1
                ? $"{r.File}: GGUF version 1 is not supported (only versions 2 and 3)"
                : $"{r.File}: unsupported GGUF version {version} (only versions 2 and 3"
                  + (version > 0xFFFF ? "; this may be a big-endian file)" : ")"));
        Version = (int)version;

        long tensorCountAt = r.Position;
        ulong tensorCount = r.U64("the tensor count");
        long kvCountAt = r.Position;
        ulong kvCount = r.U64("the metadata count");
        // Each metadata entry takes at least 13 bytes (key length, value type, 1-byte value) and each
        // tensor info at least 28 (name length, n_dims, one dim, type, offset): counts beyond that are lies.
        if (kvCount > (ulong)(r.Remaining / 13))
            throw new GgufFormatException($"{r.File}: metadata count {kvCount} at offset {kvCountAt} is absurd for the {r.Remaining} bytes that follow");
        if (tensorCount > (ulong)(r.Remaining / 28))
            throw new GgufFormatException($"{r.File}: tensor count {tensorCount} at offset {tensorCountAt} is absurd for the {r.Remaining} bytes that follow");

        for (ulong i = 0; i < kvCount; i++)
        {
            long keyAt = r.Position;
            string key = r.String($"the key of metadata entry {i}", MaxKeyBytes, "GGUF keys");
            long typeAt = r.Position;
            uint type = r.U32($"the value type of '{key}'");
            if (!GgufValue.IsDefined(type))
                throw new GgufFormatException($"{r.File}: metadata key '{key}' has unknown value type {type} at offset {typeAt}");
            var value = ReadValue(ref r, key, (GgufValueType)type, this);
            if (!_metadata.TryAdd(key, value))
                throw new GgufFormatException($"{r.File}: duplicate metadata key '{key}' at offset {keyAt}");
            _metadataInOrder.Add(new(key, value));
        }

        if (_metadata.TryGetValue(AlignmentKey, out var alignment))
        {
            if (alignment.Value is not uint a || a == 0 || (a & (a - 1)) != 0 || a > 1 << 20)
                throw new GgufFormatException($"{r.File}: '{AlignmentKey}' must be a u32 power of two, got {alignment.TypeName} {alignment}");
            Alignment = (int)a;
        }

        var pending = new List<(string Name, GgmlType Type, long[] Shape, long Offset, long Bytes, long At)>();
        for (ulong i = 0; i < tensorCount; i++)
        {
            long at = r.Position;
            string name = r.String($"the name of tensor {i}", MaxTensorNameBytes, "GGUF tensor names");
            uint nDims = r.U32($"the dimension count of tensor '{name}'");
            if (nDims is < 1 or > 4)
                throw new GgufFormatException($"{r.File}: tensor '{name}' has {nDims} dimensions at offset {r.Position - 4}, expected 1 to 4");
            var shape = new long[nDims];
            for (int d = 0; d < nDims; d++)
            {
                ulong ne = r.U64($"dimension {d} of tensor '{name}'");
                if (ne == 0 || ne > int.MaxValue * 16UL)
                    throw new GgufFormatException($"{r.File}: tensor '{name}' has bad dimension {d} = {ne} at offset {r.Position - 8}");
                shape[d] = (long)ne;
            }
            long typeAt = r.Position;
            uint typeId = r.U32($"the type of tensor '{name}'");
            var type = (GgmlType)typeId;
            if (!GgmlTypeInfo.IsKnown(type))
                throw new GgufFormatException($"{r.File}: tensor '{name}' has unknown ggml type {typeId} at offset {typeAt}");
            long offsetAt = r.Position;
            ulong offset = r.U64($"the data offset of tensor '{name}'");
            long bytes = GgmlTypeInfo.TensorBytes(type, shape, out string? error);
            if (error is not null)
                throw new GgufFormatException($"{r.File}: tensor '{name}' ({type}, shape [{string.Join(", ", shape)}]) has bad dimensions: {error}");
            if (offset % (ulong)Alignment != 0)
                throw new GgufFormatException($"{r.File}: tensor '{name}' data offset {offset} (at offset {offsetAt}) is not a multiple of the alignment {Alignment}");
            if (offset > (ulong)FileSize)
                throw new GgufFormatException($"{r.File}: tensor '{name}' data offset {offset} lies past the end of the {FileSize}-byte file");
            pending.Add((name, type, shape, (long)offset, bytes, at));
        }

        DataOffset = AlignUp(r.Position, Alignment);
        if (DataOffset > FileSize && tensorCount > 0)
            throw new GgufFormatException($"{r.File}: truncated file: the data section would start at offset {DataOffset}, past the end ({FileSize} bytes)");

        foreach (var t in pending)
        {
            long available = FileSize - DataOffset - t.Offset;
            if (t.Bytes > available)
                throw new GgufFormatException(
                    $"{r.File}: tensor '{t.Name}' ({t.Type}, shape [{string.Join(", ", t.Shape)}]) needs {t.Bytes} bytes at file offset " +
                    $"{DataOffset + t.Offset}, past the end of the {FileSize}-byte file");
            var info = new GgufTensorInfo(t.Name, t.Type, t.Shape, t.Offset, t.Bytes);
            if (!_tensorsByName.TryAdd(t.Name, info))
                throw new GgufFormatException($"{r.File}: duplicate tensor name '{t.Name}' at offset {t.At}");
            _tensors.Add(info);
        }
    }

    private static GgufValue ReadValue(ref Reader r, string key, GgufValueType type, GgufFile owner)
    {
        switch (type)
        {
            case GgufValueType.UInt8: return GgufValue.From(r.U8(key));
            case GgufValueType.Int8: return GgufValue.From((sbyte)r.U8(key));
            case GgufValueType.UInt16: return GgufValue.From(r.U16(key));
            case GgufValueType.Int16: return GgufValue.From((short)r.U16(key));
            case GgufValueType.UInt32: return GgufValue.From(r.U32(key));
            case GgufValueType.Int32: return GgufValue.From((int)r.U32(key));
            case GgufValueType.Float32: return GgufValue.From(BitConverter.UInt32BitsToSingle(r.U32(key)));
            case GgufValueType.Bool: return GgufValue.From(r.U8(key) != 0);
            case GgufValueType.String: return GgufValue.From(r.String($"the value of '{key}'"));
            case GgufValueType.UInt64: return GgufValue.From(r.U64(key));
            case GgufValueType.Int64: return GgufValue.From((long)r.U64(key));
            case GgufValueType.Float64: return GgufValue.From(BitConverter.UInt64BitsToDouble(r.U64(key)));
            case GgufValueType.Array: return ReadArray(ref r, key, owner);
            default: throw new InvalidOperationException("unreachable: type validated by the caller");
        }
    }

    private static GgufValue ReadArray(ref Reader r, string key, GgufFile owner)
    {
        long typeAt = r.Position;
        uint elementTypeId = r.U32($"the element type of array '{key}'");
        if (!GgufValue.IsDefined(elementTypeId))
            throw new GgufFormatException($"{r.File}: array '{key}' has unknown element type {elementTypeId} at offset {typeAt}");
        var elementType = (GgufValueType)elementTypeId;
        if (elementType == GgufValueType.Array)
            throw new GgufFormatException($"{r.File}: array '{key}' at offset {typeAt} contains arrays; nested arrays are not supported");
        long countAt = r.Position;
        ulong count = r.U64($"the length of array '{key}'");
        int minimum = GgufValue.MinimumSize(elementType);
        if (count > (ulong)(r.Remaining / minimum) || count > int.MaxValue)
            throw new GgufFormatException(
                $"{r.File}: array '{key}' claims {count} elements of {GgufValue.ShortName(elementType)} at offset {countAt}, " +
                $"but only {r.Remaining} bytes remain");
        int n = (int)count;
        string what = $"array '{key}'";
        switch (elementType)
        {
            case GgufValueType.UInt8: return GgufValue.From(r.Copy<byte>(n, what));
            case GgufValueType.Int8: return GgufValue.From(r.Copy<sbyte>(n, what));
            case GgufValueType.UInt16: return GgufValue.From(r.Copy<ushort>(n, what));
            case GgufValueType.Int16: return GgufValue.From(r.Copy<short>(n, what));
            case GgufValueType.UInt32: return GgufValue.From(r.Copy<uint>(n, what));
            case GgufValueType.Int32: return GgufValue.From(r.Copy<int>(n, what));
            case GgufValueType.Float32: return GgufValue.From(r.Copy<float>(n, what));
            case GgufValueType.UInt64: return GgufValue.From(r.Copy<ulong>(n, what));
            case GgufValueType.Int64: return GgufValue.From(r.Copy<long>(n, what));
            case GgufValueType.Float64: return GgufValue.From(r.Copy<double>(n, what));
            case GgufValueType.Bool:
            {
                byte[] raw = r.Copy<byte>(n, what);
                return GgufValue.From(Array.ConvertAll(raw, b => b != 0));
            }
            case GgufValueType.String:
            {
                if (n < ParallelStringArray)
                {
                    var strings = new string[n];
                    for (int i = 0; i < n; i++)
                        strings[i] = r.ArrayString(key, i);
                    return GgufValue.From(strings);
                }
                // A vocabulary (128k) or merge list (280k): check every element in order and note where
                // each starts; the strings are decoded on first use, on two threads (Utf8StringArray), and
                // a merge list is read as characters without them. Decoding and allocating the strings was
                // most of the metadata's cost, on the path to the first token.
                var offsets = new Memory.HugePageBlock((long)n * sizeof(int));
                try
                {
                    int* at = (int*)offsets.Start;
                    for (int i = 0; i < n; i++)
                    {
                        if (r.Position > int.MaxValue)
                            throw new GgufFormatException($"{r.File}: array '{key}' reaches past 2 GB of metadata");
                        at[i] = (int)r.Position;
                        r.SkipArrayString(key, i);
                    }
                }
                catch
                {
                    offsets.Dispose();
                    throw;
                }
                return new GgufValue(new Utf8StringArray(owner, offsets, n));
            }
            default: throw new InvalidOperationException("unreachable");
        }
    }

    /// <summary>The longest metadata key the GGUF specification allows (2^16 − 1 bytes).</summary>
    public const int MaxKeyBytes = ushort.MaxValue;
    /// <summary>The longest tensor name the GGUF specification allows (64 bytes; ggml itself keeps 63).</summary>
    public const int MaxTensorNameBytes = 64;

    /// <summary>String arrays at least this long are decoded on two threads (a vocabulary; tests' small arrays stay on one).</summary>
    internal const int ParallelStringArray = 16384;

    private static long AlignUp(long value, int alignment) => (value + alignment - 1) / alignment * alignment;

    private static string Describe(uint magic)
    {
        Span<byte> bytes = stackalloc byte[4];
        BitConverter.TryWriteBytes(bytes, magic);
        var text = new StringBuilder("\"");
        foreach (byte b in bytes)
            text.Append(b is >= 0x20 and < 0x7F ? ((char)b).ToString() : $"\\x{b:X2}");
        return text.Append('"').ToString();
    }

    /// <summary>A bounds-checked little-endian cursor over the mapping.</summary>
    private ref struct Reader(byte* start, long length, string file)
    {
        private readonly byte* _start = start;
        private readonly long _length = length;
        public readonly string File = file;
        public long Position { get; private set; }
        public readonly long Remaining => _length - Position;

        private readonly void Need(long bytes, string what)
        {
            if (bytes > _length - Position)
                throw new GgufFormatException(
                    $"{File}: truncated file while reading {what} at offset {Position} (needs {bytes} bytes, {_length - Position} remain)");
        }

        public byte U8(string what) { Need(1, what); return _start[Position++]; }

        public ushort U16(string what)
        {
            Need(2, what);
            ushort v = System.Buffers.Binary.BinaryPrimitives.ReadUInt16LittleEndian(new ReadOnlySpan<byte>(_start + Position, 2));
            Position += 2;
            return v;
        }

        public uint U32(string what)
        {
            Need(4, what);
            uint v = System.Buffers.Binary.BinaryPrimitives.ReadUInt32LittleEndian(new ReadOnlySpan<byte>(_start + Position, 4));
            Position += 4;
            return v;
        }

        public ulong U64(string what)
        {
            Need(8, what);
            ulong v = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_start + Position, 8));
            Position += 8;
            return v;
        }

        /// <summary>A gguf string: u64 byte length, then UTF-8 bytes (no terminator), decoded in place.</summary>
        public string String(string what) => String(what, int.MaxValue, "");

        /// <summary>
        /// A gguf string of at most <paramref name="maxBytes"/> bytes (<paramref name="kind"/> names the rule): a
        /// name whose length was damaged is refused before it is decoded, or quoted in an error, whole.
        /// </summary>
        public string String(string what, int maxBytes, string kind)
        {
            long at = Position;
            ulong length = U64($"the length of {what}");
            if (length > (ulong)maxBytes && length <= (ulong)Remaining)
                throw new GgufFormatException(
                    $"{File}: {what} at offset {at} is {length} bytes long; {kind} are at most {maxBytes} bytes");
            if (length > (ulong)Remaining || length > int.MaxValue)
                throw new GgufFormatException(
                    $"{File}: truncated file while reading {what}: string length {length} at offset {at} exceeds the {Remaining} bytes that remain");
            string s = length == 0 ? "" : Encoding.UTF8.GetString(_start + Position, (int)length);
            Position += (long)length;
            return s;
        }

        /// <summary>
        /// Element <paramref name="index"/> of string array <paramref name="key"/>. Same checks and errors as
        /// <see cref="String"/>, but the description is formatted only when something is wrong: a
        /// vocabulary has 128k elements (and a merge list 280k), so formatting it for every element made
        /// tens of MB of garbage and most of the parse time.
        /// </summary>
        public string ArrayString(string key, int index)
        {
            if (Remaining >= 8)
            {
                ulong length = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_start + Position, 8));
                if (length <= (ulong)(Remaining - 8) && length <= int.MaxValue)
                {
                    Position += 8;
                    string s = length == 0 ? "" : Encoding.UTF8.GetString(_start + Position, (int)length);
                    Position += (long)length;
                    return s;
                }
            }
            return String($"element {index} of array '{key}'");   // throws the detailed error
        }

        /// <summary>
        /// Like <see cref="ArrayString"/>, without decoding: where element <paramref name="index"/>'s bytes
        /// start and how many there are; the position moves past them.
        /// </summary>
        public (long At, int Length) SkipArrayString(string key, int index)
        {
            if (Remaining >= 8)
            {
                ulong length = System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(_start + Position, 8));
                if (length <= (ulong)(Remaining - 8) && length <= int.MaxValue)
                {
                    long at = Position + 8;
                    Position = at + (long)length;
                    return (at, (int)length);
                }
            }
            String($"element {index} of array '{key}'");   // throws the detailed error
            throw new InvalidOperationException("unreachable");
        }

        /// <summary>Copy n little-endian elements (the engine only runs on little-endian CPUs).</summary>
        public T[] Copy<T>(int n, string what) where T : unmanaged
        {
            long bytes = (long)n * sizeof(T);
            Need(bytes, what);
            var result = new T[n];
            new ReadOnlySpan<T>(_start + Position, n).CopyTo(result);
            Position += bytes;
            return result;
        }
    }
}
