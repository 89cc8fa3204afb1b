using System.Runtime.InteropServices;

namespace BitNet.Inference.Gguf;

/// <summary>
/// Paths a writer must not write to, which .NET does not tell from others. A device, pipe or socket (its
/// attributes read Normal for /dev/null): a writer that moves a finished file into place must not do so
/// over one, as root <c>bitnet dummy -o /dev/null</c> would replace the device with a regular file. And
/// the kernel's pseudo file systems (/proc, /sys, ...), whose files are settings and reports, not storage:
/// nothing can be created there, and as root writing an existing one (/proc/sys/..., /proc/sysrq-trigger)
/// would act on the kernel. Linux only (statx and statfs); elsewhere, or when the calls are missing, the
/// answers are false and null and writers behave as before. Public for the CLI's and the hub cache's checks.
/// </summary>
public static partial class SpecialFiles
{
    private const int AtFdCwd = -100, StatxType = 0x1, ModeOffset = 28, TypeMask = 0xF000, RegularType = 0x8000, DirectoryType = 0x4000,
        FifoType = 0x1000, CharacterDeviceType = 0x2000, BlockDeviceType = 0x6000, SocketType = 0xC000;

    /// <summary>True when <paramref name="path"/> exists (following symbolic links) and is neither a regular file nor a directory.</summary>
    internal static bool IsSpecial(string path) => SpecialKind(path) is not null;

    /// <summary>
    /// What <paramref name="path"/> is (following symbolic links) when it exists and is neither a regular file nor a
    /// directory: "a named pipe", "a character device", "a block device" or "a socket"; else null. Asked of the file
    /// system without opening the file: opening a named pipe for reading waits for a writer.
    /// </summary>
    public static unsafe string? SpecialKind(string path)
    {
        if (!OperatingSystem.IsLinux() || path.Length == 0)
            return null;
        byte* buffer = stackalloc byte[256];   // struct statx
        try
        {
            if (Statx(AtFdCwd, path, 0, StatxType, buffer) != 0)
                return null;   // missing, or not ours to inspect: the read or write itself reports it
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
            return null;   // not glibc, or one older than 2.28
        }
        return (*(ushort*)(buffer + ModeOffset) & TypeMask) switch
        {
            RegularType or DirectoryType => null,
            FifoType => "a named pipe",
            CharacterDeviceType => "a character device",
            BlockDeviceType => "a block device",
            SocketType => "a socket",
            _ => "a special file",
        };
    }

    /// <summary>statfs(2) magic numbers of the kernel's pseudo file systems, with their names.</summary>
    private static readonly Dictionary<long, string> PseudoFileSystems = new()
    {
        [0x9fa0] = "proc", [0x62656572] = "sysfs", [0x27e0eb] = "cgroup", [0x63677270] = "cgroup2", [0x64626720] = "debugfs",
        [0x74726163] = "tracefs", [0x73636673] = "securityfs", [0x62656570] = "configfs", [0xcafe4a11] = "bpf",
        [0xde5e81e4] = "efivarfs", [0x6165676c] = "pstore",
    };

    /// <summary>
    /// The kernel pseudo file system (such as "proc" or "sysfs") that <paramref name="path"/> lies on, following
    /// symbolic links; for a path that does not exist, that of the nearest folder above it that does. Null elsewhere.
    /// </summary>
    public static unsafe string? PseudoFileSystem(string path)
    {
        if (!OperatingSystem.IsLinux() || !Environment.Is64BitProcess || path.Length == 0)
            return null;
        byte* buffer = stackalloc byte[256];   // struct statfs, whose first field is f_type (a long on 64-bit Linux)
        try
        {
            for (string? at = Path.GetFullPath(path); at is not null; at = Path.GetDirectoryName(at))
                if (Statfs(at, buffer) == 0)
                    return PseudoFileSystems.GetValueOrDefault(*(long*)buffer);
        }
        catch (Exception e) when (e is DllNotFoundException or EntryPointNotFoundException)
        {
        }
        return null;
    }

    /// <summary>"it is on the kernel's proc file system, ...": why <paramref name="path"/> cannot be written, or null when nothing says it cannot.</summary>
    public static string? PseudoFileSystemProblem(string path) => PseudoFileSystem(path) is { } system
        ? $"it is on the kernel's {system} file system, whose files are settings and reports, not storage"
        : null;

    [LibraryImport("libc.so.6", EntryPoint = "statfs", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int Statfs(string path, byte* buffer);

    [LibraryImport("libc.so.6", EntryPoint = "statx", StringMarshalling = StringMarshalling.Utf8, SetLastError = true)]
    private static unsafe partial int Statx(int directory, string path, int flags, uint mask, byte* buffer);
}
