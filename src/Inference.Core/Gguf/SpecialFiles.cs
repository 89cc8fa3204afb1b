using System.Runtime.InteropServices;

namespace BitNet.Inference.Gguf;

/// <summary>
/// Whether a path names a device, pipe or socket rather than a regular file, which .NET does not tell
/// (its attributes read Normal for /dev/null). A writer that moves a finished file into place must not
/// do so over one: as root, <c>bitnet dummy -o /dev/null</c> would replace the device with a regular file.
/// Linux only (statx, whose buffer layout is the same on every architecture); elsewhere, or when the
/// call is missing, the answer is false and writers behave as before.
/// </summary>
internal static partial class SpecialFiles
{
    private const int AtFdCwd = -100, StatxType = 0x1, ModeOffset = 28, TypeMask = 0xF000, RegularType = 0x8000, DirectoryType = 0x4000;

    /// <summary>True when <paramref name="path"/> exists (following symbolic links) and is neither a regular file nor a directory.</summary>
    public static unsafe bool IsSpecial(string path)
    {
        if (!OperatingSystem.IsLinux() || path.Length == 0)
            return false;
        byte* buffer = stackalloc byte[256];   // struct statx
        try
        {
            if (Statx(AtFdCwd, path, 0, StatxType, buffer) != 0)
                return false;   // missing, or not ours to inspect: the write itself reports it
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return false;   // not glibc, or one older than 2.28
        }
        int type = *(ushort*)(buffer + ModeOffset) & TypeMask;
        return type is not (RegularType or DirectoryType);
    }

    [LibraryImport("libc.so.6", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int Statx(int directory, string path, int flags, uint mask, byte* buffer);
}
