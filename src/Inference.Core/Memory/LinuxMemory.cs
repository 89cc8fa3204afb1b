using System.Runtime.InteropServices;

namespace BitNet.Inference.Memory;

/// <summary>
/// The Linux memory calls the engine makes itself (glibc entry points), in one place: code pages
/// for the emitted kernels (<see cref="Kernels.X64.ExecutableCode"/>), the weight move
/// (<see cref="MappingMove"/>), page advice (<see cref="PageWarmup"/>) and the page-table scan
/// (<see cref="PageTableScan"/>). Each returns what libc returns;
/// callers decide what a failure means for them. The values are those of linux-x64 and linux-arm64.
/// </summary>
internal static partial class LinuxMemory
{
    public const int ProtRead = 1, ProtWrite = 2, ProtExec = 4;
    public const int MapPrivate = 0x02, MapAnonymous = 0x20, MapNoReserve = 0x4000;
    public const int MremapMayMove = 1, MremapFixed = 2;
    public const int MadvDontNeed = 4, MadvHugePage = 14, MadvPopulateRead = 22;
    /// <summary>mmap's MAP_FAILED, (void*)-1.</summary>
    public static readonly nint MapFailed = -1;

    // "libc.so.6": the glibc soname, present without development packages (plain "libc" needs libc.so).
    [LibraryImport("libc.so.6", EntryPoint = "mmap", SetLastError = true)]
    public static partial nint Mmap(nint address, nuint length, int protection, int flags, int fd, long offset);

    [LibraryImport("libc.so.6", EntryPoint = "munmap", SetLastError = true)]
    public static partial int Munmap(nint address, nuint length);

    [LibraryImport("libc.so.6", EntryPoint = "mprotect", SetLastError = true)]
    public static partial int Mprotect(nint address, nuint length, int protection);

    // mremap is variadic in C (the new address is the fifth argument); linux-x64 and linux-arm64 pass
    // variadic integer arguments in the same registers as fixed ones, so a fixed signature calls it.
    [LibraryImport("libc.so.6", EntryPoint = "mremap", SetLastError = true)]
    public static partial nint Mremap(nint oldAddress, nuint oldLength, nuint newLength, int flags, nint newAddress);

    [LibraryImport("libc.so.6", EntryPoint = "madvise", SetLastError = true)]
    public static partial int Madvise(nint address, nuint length, int advice);

    // ioctl is variadic in C; linux-x64 and linux-arm64 pass the pointer argument in the same register either way.
    [LibraryImport("libc.so.6", EntryPoint = "ioctl", SetLastError = true)]
    public static unsafe partial int Ioctl(int fd, nuint request, void* argument);
}
