namespace BitNet.Inference.Gguf;

/// <summary>
/// A write-only stream that hands its data to a file in whole 2 MB writes at 2 MB-aligned file
/// offsets (the last write takes what is left). Why: Linux 6.x caches a file written that way in
/// 2 MB folios (ext4, xfs), which a mapping advised MADV_HUGEPAGE maps whole, so a model just written
/// or downloaded can be used in place (<see cref="Model.WeightStorage.Auto"/>); 1 MB writes leave it
/// in small pages (docs/weight-storage.md).
/// </summary>
public sealed class AlignedWriteStream : Stream
{
    public const int ChunkBytes = 2 << 20;
    private readonly FileStream _file;
    private readonly byte[] _chunk = new byte[ChunkBytes];
    private int _filled;
    /// <summary>Bytes that fit before the next 2 MB boundary of the file (the first chunk may be short).</summary>
    private int _room;
    private bool _disposed;

    /// <summary>Writes to <paramref name="file"/> from its current position on; the stream owns and disposes it.</summary>
    public AlignedWriteStream(FileStream file)
    {
        ArgumentNullException.ThrowIfNull(file);
        if (!file.CanWrite) throw new ArgumentException("the file is not open for writing", nameof(file));
        _file = file;
        _room = ChunkBytes - (int)(file.Position % ChunkBytes);
    }

    /// <summary>Create (or truncate) <paramref name="path"/> for writing.</summary>
    public static AlignedWriteStream Create(string path, FileMode mode = FileMode.Create) =>
        new(new FileStream(path, mode, FileAccess.Write, FileShare.None, bufferSize: 1));

    public override bool CanRead => false;
    public override bool CanSeek => false;
    public override bool CanWrite => true;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _file.Position + _filled; set => throw new NotSupportedException(); }

    public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

    public override void Write(ReadOnlySpan<byte> buffer)
    {
        while (!buffer.IsEmpty)
        {
            buffer = buffer[Fill(buffer)..];
            if (_filled == _room) WriteHeld();
        }
    }

    public override async ValueTask WriteAsync(ReadOnlyMemory<byte> buffer, CancellationToken cancellationToken = default)
    {
        while (!buffer.IsEmpty)
        {
            buffer = buffer[Fill(buffer.Span)..];
            if (_filled == _room) await WriteHeldAsync(cancellationToken).ConfigureAwait(false);
        }
    }

    public override Task WriteAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) =>
        WriteAsync(buffer.AsMemory(offset, count), cancellationToken).AsTask();

    /// <summary>Copy as much of <paramref name="data"/> as fits before the next boundary; returns the bytes taken.</summary>
    private int Fill(ReadOnlySpan<byte> data)
    {
        int n = Math.Min(data.Length, _room - _filled);
        data[..n].CopyTo(_chunk.AsSpan(_filled));
        _filled += n;
        return n;
    }

    private void WriteHeld()
    {
        _file.Write(_chunk, 0, _filled);
        Written();
    }

    private async ValueTask WriteHeldAsync(CancellationToken cancellationToken)
    {
        await _file.WriteAsync(_chunk.AsMemory(0, _filled), cancellationToken).ConfigureAwait(false);
        Written();
    }

    /// <summary>After the held bytes reached the file: the room left before the next boundary (a whole chunk once reached).</summary>
    private void Written()
    {
        _room -= _filled;
        _filled = 0;
        if (_room == 0) _room = ChunkBytes;
    }

    /// <summary>Writes what is held (a partial chunk) and flushes the file.</summary>
    public override void Flush()
    {
        if (_filled > 0) WriteHeld();
        _file.Flush();
    }

    public override async Task FlushAsync(CancellationToken cancellationToken)
    {
        if (_filled > 0) await WriteHeldAsync(cancellationToken).ConfigureAwait(false);
        await _file.FlushAsync(cancellationToken).ConfigureAwait(false);
    }

    public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();

    protected override void Dispose(bool disposing)
    {
        if (disposing && !_disposed)
        {
            _disposed = true;
            Flush();
            _file.Dispose();
        }
        base.Dispose(disposing);
    }

    public override async ValueTask DisposeAsync()
    {
        if (!_disposed)
        {
            _disposed = true;
            await FlushAsync(CancellationToken.None).ConfigureAwait(false);
            await _file.DisposeAsync().ConfigureAwait(false);
        }
        // Stream's own DisposeAsync runs Dispose(true), a no-op now, and suppresses finalization.
        await base.DisposeAsync().ConfigureAwait(false);
    }
}
