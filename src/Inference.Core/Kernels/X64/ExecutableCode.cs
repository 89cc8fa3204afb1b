using System.Runtime.InteropServices;
using static BitNet.Inference.Memory.LinuxMemory;

namespace BitNet.Inference.Kernels.X64;

/// <summary>
/// Machine code copied into its own pages, which are then made read + execute (never writable and
/// executable at once). Kernels live for the process: they are built once and shared by every model.
/// </summary>
internal static unsafe class ExecutableCode
{
    /// <summary>Whether this process can map code pages: Linux only (the hosts' platform), and a
    /// hardened kernel may still refuse, which <see cref="TryLoad"/> reports.</summary>
    public static bool IsAvailable => OperatingSystem.IsLinux() && (RuntimeInformation.ProcessArchitecture == Architecture.X64);

    /// <summary>The address of a copy of <paramref name="code"/> in executable pages, or null when the
    /// platform or the kernel's policy does not allow it.</summary>
    public static void* TryLoad(ReadOnlySpan<byte> code)
    {
        if (!IsAvailable) return null;
        nuint size = PageRounded(code.Length);
        nint pages = Mmap(0, size, ProtRead | ProtWrite, MapPrivate | MapAnonymous, -1, 0);
        if (pages == -1) return null;
        code.CopyTo(new Span<byte>((void*)pages, code.Length));
        if (Mprotect(pages, size, ProtRead | ProtExec) != 0)
        {
            Munmap(pages, size);
            return null;
        }
        return (void*)pages;
    }

    /// <summary>The entry points of <paramref name="code"/> (one routine at each of <paramref name="offsets"/>) once
    /// loaded by <see cref="TryLoad"/>, or null where that fails.</summary>
    public static nint[]? TryLoadEntries(ReadOnlySpan<byte> code, ReadOnlySpan<int> offsets)
    {
        byte* start = (byte*)TryLoad(code);
        if (start == null) return null;
        var entries = new nint[offsets.Length];
        for (int i = 0; i < offsets.Length; i++) entries[i] = (nint)(start + offsets[i]);
        return entries;
    }

    /// <summary>Unmap code from <see cref="TryLoad"/> of <paramref name="length"/> bytes; it must not run again.</summary>
    public static void Unload(void* code, int length) => Munmap((nint)code, PageRounded(length));

    private static nuint PageRounded(int length) => (nuint)((length + 4095) & ~4095);
}
