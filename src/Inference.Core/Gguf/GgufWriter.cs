using System.Buffers.Binary;
using System.Text;

namespace BitNet.Inference.Gguf;

/// <summary>
/// Writes GGUF v3 files (spec §1): header, metadata in insertion order, tensor infos, alignment
/// padding, then tensor data. Tensor data is streamed: each tensor supplies its exact byte size and
/// a callback that writes it, called one tensor at a time, so multi-gigabyte files are written in
/// bounded memory. Offsets follow the ggml writer: each tensor starts at the previous offset plus the
/// previous size rounded up to the alignment; the first is 0.
/// </summary>
public sealed class GgufWriter
{
    /// <summary>One tensor to write: its info and the callback that writes exactly ByteSize bytes.</summary>
    public sealed record TensorSpec(string Name, GgmlType Type, long[] Shape, long ByteSize, Action<Stream> WriteData);

    private readonly List<KeyValuePair<string, GgufValue>> _metadata = [];
    private readonly List<TensorSpec> _tensors = [];
    private readonly HashSet<string> _keys = new(StringComparer.Ordinal);
    private readonly HashSet<string> _names = new(StringComparer.Ordinal);

    /// <param name="alignment">Data alignment; anything but the default 32 is also recorded as general.alignment.</param>
    public GgufWriter(int alignment = GgufFile.DefaultAlignment)
    {
        if (alignment <= 0 || (alignment & (alignment - 1)) != 0)
            throw new ArgumentOutOfRangeException(nameof(alignment), alignment, "alignment must be a power of two");
        Alignment = alignment;
        if (alignment != GgufFile.DefaultAlignment)
            AddMetadata(GgufFile.AlignmentKey, GgufValue.From((uint)alignment));
    }

    public int Alignment { get; }
    public IReadOnlyList<KeyValuePair<string, GgufValue>> Metadata => _metadata;
    public IReadOnlyList<TensorSpec> Tensors => _tensors;

    public GgufWriter AddMetadata(string key, GgufValue value)
    {
        ArgumentNullException.ThrowIfNull(value);
        if (key == GgufFile.AlignmentKey && _keys.Contains(key))
            return this; // set by the constructor
        if (!_keys.Add(key)) throw new ArgumentException($"metadata key '{key}' was already added", nameof(key));
        if (value.IsArray && value.ElementType == GgufValueType.Array)
            throw new ArgumentException("nested arrays are not supported", nameof(value));
        _metadata.Add(new(key, value));
        return this;
    }

    /// <summary>Add a tensor whose data a callback streams; its size comes from the type rules (I2_S: n/4 + 32).</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] shape, Action<Stream> writeData)
    {
        if (shape.Length is < 1 or > 4) throw new ArgumentException($"tensor '{name}' needs 1 to 4 dimensions", nameof(shape));
        long bytes = GgmlTypeInfo.TensorBytes(type, shape, out string? error);
        if (error is not null) throw new ArgumentException($"tensor '{name}': {error}", nameof(shape));
        if (!_names.Add(name)) throw new ArgumentException($"tensor '{name}' was already added", nameof(name));
        _tensors.Add(new TensorSpec(name, type, (long[])shape.Clone(), bytes, writeData));
        return this;
    }

    /// <summary>Add a tensor from bytes in memory (must be exactly the type's size).</summary>
    public GgufWriter AddTensor(string name, GgmlType type, long[] shape, byte[] data) =>
        AddTensor(name, type, shape, stream => stream.Write(data));

    /// <summary>Offsets (from the data section start) the tensors will get, in order.</summary>
    public long[] PlanOffsets()
    {
        var offsets = new long[_tensors.Count];
        long offset = 0;
        for (int i = 0; i < _tensors.Count; i++)
        {
            offsets[i] = offset;
            offset += AlignUp(_tensors[i].ByteSize, Alignment);
        }
        return offsets;
    }

    /// <summary>Total file size this writer will produce.</summary>
    public long PlanFileSize()
    {
        using var counter = new CountingStream(Stream.Null);
        WriteHeader(counter);
        long size = AlignUp(counter.Count, Alignment);
        foreach (var t in _tensors) size += AlignUp(t.ByteSize, Alignment);
        return size;
    }

    /// <summary>
    /// Writes the file as <c>path.partial</c>, then moves it to <paramref name="path"/>; <paramref name="check"/>,
    /// when given, reads the complete partial file first and throws to leave <paramref name="path"/> untouched.
    /// A symbolic link is written through (its final target gets the file, the link stays); a device, pipe
    /// or socket is refused, since the move would replace it (as root, /dev/null or /dev/stdout itself), and so is
    /// a path on the kernel's pseudo file systems (/proc, /sys).
    /// </summary>
    public void WriteTo(string path, Action<string>? check = null)
    {
        if (SpecialFiles.IsSpecial(path))
            throw new IOException($"cannot write '{path}': it is a device, pipe or socket, which the finished file would replace; give a file name");
        if (SpecialFiles.PseudoFileSystemProblem(path) is { } problem)
            throw new IOException($"cannot write '{path}': {problem}; give a path on a disk");
        if (new FileInfo(path).LinkTarget is not null && File.ResolveLinkTarget(path, returnFinalTarget: true) is { } target)
            path = target.FullName;
        string temp = path + ".partial";
        try
        {
            using (var file = AlignedWriteStream.Create(temp))   // 2 MB writes: the page cache keeps it in 2 MB folios
                WriteTo(file);
            check?.Invoke(temp);
            File.Move(temp, path, overwrite: true);
        }
        finally
        {
            if (File.Exists(temp)) File.Delete(temp);
        }
    }

    public void WriteTo(Stream output)
    {
        using var counter = new CountingStream(output);
        WriteHeader(counter);
        Pad(counter, Alignment);
        foreach (var tensor in _tensors)
        {
            long before = counter.Count;
            tensor.WriteData(counter);
            long written = counter.Count - before;
            if (written != tensor.ByteSize)
                throw new InvalidOperationException(
                    $"tensor '{tensor.Name}' ({tensor.Type}) wrote {written} bytes, its type and shape need {tensor.ByteSize}");
            Pad(counter, Alignment);
        }
        counter.Flush();
    }

    private void WriteHeader(Stream s)
    {
        WriteU32(s, GgufFile.Magic);
        WriteU32(s, 3);
        WriteU64(s, (ulong)_tensors.Count);
        WriteU64(s, (ulong)_metadata.Count);
        foreach (var (key, value) in _metadata)
        {
            WriteString(s, key);
            WriteU32(s, (uint)value.Type);
            if (value.IsArray)
            {
                WriteU32(s, (uint)value.ElementType);
                var array = (Array)value.Value;
                WriteU64(s, (ulong)array.Length);
                foreach (object element in array) WriteScalar(s, element);
            }
            else WriteScalar(s, value.Value);
        }
        long[] offsets = PlanOffsets();
        for (int i = 0; i < _tensors.Count; i++)
        {
            var t = _tensors[i];
            WriteString(s, t.Name);
            WriteU32(s, (uint)t.Shape.Length);
            foreach (long ne in t.Shape) WriteU64(s, (ulong)ne);
            WriteU32(s, (uint)t.Type);
            WriteU64(s, (ulong)offsets[i]);
        }
    }

    private static void WriteScalar(Stream s, object value)
    {
        switch (value)
        {
            case byte v: s.WriteByte(v); break;
            case sbyte v: s.WriteByte((byte)v); break;
            case bool v: s.WriteByte(v ? (byte)1 : (byte)0); break;
            case ushort v: WriteU16(s, v); break;
            case short v: WriteU16(s, (ushort)v); break;
            case uint v: WriteU32(s, v); break;
            case int v: WriteU32(s, (uint)v); break;
            case float v: WriteU32(s, BitConverter.SingleToUInt32Bits(v)); break;
            case ulong v: WriteU64(s, v); break;
            case long v: WriteU64(s, (ulong)v); break;
            case double v: WriteU64(s, BitConverter.DoubleToUInt64Bits(v)); break;
            case string v: WriteString(s, v); break;
            default: throw new ArgumentException($"cannot write a {value.GetType().Name} as a GGUF value");
        }
    }

    private static void WriteString(Stream s, string value)
    {
        byte[] bytes = Encoding.UTF8.GetBytes(value);
        WriteU64(s, (ulong)bytes.Length);
        s.Write(bytes);
    }

    private static void WriteU16(Stream s, ushort v) { Span<byte> b = stackalloc byte[2]; BinaryPrimitives.WriteUInt16LittleEndian(b, v); s.Write(b); }
    private static void WriteU32(Stream s, uint v) { Span<byte> b = stackalloc byte[4]; BinaryPrimitives.WriteUInt32LittleEndian(b, v); s.Write(b); }
    private static void WriteU64(Stream s, ulong v) { Span<byte> b = stackalloc byte[8]; BinaryPrimitives.WriteUInt64LittleEndian(b, v); s.Write(b); }

    private static void Pad(CountingStream s, int alignment)
    {
        int pad = (int)(AlignUp(s.Count, alignment) - s.Count);
        if (pad > 0) s.Write(new byte[pad]);
    }

    private static long AlignUp(long value, int alignment) => (value + alignment - 1) / alignment * alignment;

    /// <summary>Forwards writes and counts the bytes, so the writer can check each tensor's size.</summary>
    private sealed class CountingStream(Stream inner) : Stream
    {
        public long Count { get; private set; }
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => Count;
        public override long Position { get => Count; set => throw new NotSupportedException(); }
        public override void Flush() => inner.Flush();
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();
        public override void Write(byte[] buffer, int offset, int count) { inner.Write(buffer, offset, count); Count += count; }
        public override void Write(ReadOnlySpan<byte> buffer) { inner.Write(buffer); Count += buffer.Length; }
        public override void WriteByte(byte value) { inner.WriteByte(value); Count++; }
        protected override void Dispose(bool disposing) => base.Dispose(disposing); // the caller owns the inner stream
    }
}
