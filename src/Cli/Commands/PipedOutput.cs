using System.Text;
using Microsoft.Win32.SafeHandles;

namespace BitNet.Cli.Commands;

/// <summary>Standard output is a pipe whose reader has gone (`bitnet generate … | head`).</summary>
internal sealed class OutputClosedException(IOException inner) : IOException("standard output was closed", inner);

/// <summary>
/// Standard output for a command that streams while it computes. .NET's console stream drops writes to a pipe
/// whose reader has gone (it ignores EPIPE), so `generate … | head -c 20` went on generating for nobody; written
/// through a file stream on the descriptor, the pipe's end is an <see cref="OutputClosedException"/>. Terminals and
/// files keep the console writer: a file stream would write files at its own offset, over what stderr wrote there.
/// </summary>
internal static class PipedOutput
{
    public static TextWriter OpenStandardOutput()
    {
        if (!Console.IsOutputRedirected || OperatingSystem.IsWindows())
            return Console.Out;
        try
        {
            var stream = new FileStream(new SafeFileHandle(1, ownsHandle: false), FileAccess.Write, bufferSize: 0);
            if (stream.CanSeek)
            {
                stream.Dispose();
                return Console.Out;
            }
            return new StreamWriter(new ClosedAware(stream), new UTF8Encoding(false), bufferSize: 256) { AutoFlush = true };
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or ArgumentException)
        {
            return Console.Out; // descriptor 1 closed or not writable: the console writer copes as before
        }
    }

    /// <summary>A pipe's write fails only when its reader has gone (the runtime ignores SIGPIPE): say so by type.</summary>
    private sealed class ClosedAware(FileStream pipe) : Stream
    {
        public override bool CanRead => false;
        public override bool CanSeek => false;
        public override bool CanWrite => true;
        public override long Length => throw new NotSupportedException();
        public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }

        public override void Write(byte[] buffer, int offset, int count) => Write(buffer.AsSpan(offset, count));

        public override void Write(ReadOnlySpan<byte> buffer)
        {
            try
            {
                pipe.Write(buffer);
            }
            catch (IOException e)
            {
                throw new OutputClosedException(e);
            }
        }

        public override void Flush() { }
        public override int Read(byte[] buffer, int offset, int count) => throw new NotSupportedException();
        public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
        public override void SetLength(long value) => throw new NotSupportedException();

        protected override void Dispose(bool disposing)
        {
            if (disposing) pipe.Dispose();
            base.Dispose(disposing);
        }
    }
}
