namespace BitNet.Inference.Tests.Gguf;

/// <summary>A per-test temporary folder, deleted on dispose.</summary>
internal sealed class TempFolder : IDisposable
{
    public TempFolder()
    {
        Path = System.IO.Path.Combine(System.IO.Path.GetTempPath(), "bitnet-engine-tests-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path);
    }

    public string Path { get; }
    public string File(string name) => System.IO.Path.Combine(Path, name);

    public void Dispose()
    {
        try { Directory.Delete(Path, recursive: true); } catch (IOException) { } catch (UnauthorizedAccessException) { }
    }
}

internal static class ByteSearch
{
    /// <summary>Offset just after the gguf string (u64 length + bytes) holding <paramref name="text"/>.</summary>
    public static int AfterString(byte[] file, string text)
    {
        byte[] needle = System.Text.Encoding.UTF8.GetBytes(text);
        var length = BitConverter.GetBytes((ulong)needle.Length);
        byte[] pattern = [.. length, .. needle];
        int at = file.AsSpan().IndexOf(pattern);
        if (at < 0) throw new InvalidOperationException($"'{text}' not found");
        return at + pattern.Length;
    }
}
