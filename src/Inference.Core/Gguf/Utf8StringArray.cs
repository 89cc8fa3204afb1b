using System.Collections;
using System.Text;
using BitNet.Inference.Memory;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Gguf;

/// <summary>
/// A long GGUF string array left undecoded in the file's mapping, with where each element starts: an
/// element can be read as UTF-8 without a .NET string, and the whole array is turned into strings only
/// when asked (<see cref="GgufValue.Value"/>). For the tokenizer's vocabulary and merges, which it
/// copies as UTF-8: Llama 3's 128k tokens and 280k merges as strings are ~16 MB of fresh heap, thousands of
/// page faults before the first token.
/// Valid while its file is open (<see cref="ObjectDisposedException"/> after).
/// </summary>
public sealed unsafe class Utf8StringArray : IReadOnlyList<string>
{
    private readonly GgufFile _file;
    private readonly HugePageBlock _offsets;   // int per element: where its u64 length is, from the file's first byte

    internal Utf8StringArray(GgufFile file, HugePageBlock offsets, int count)
    {
        _file = file;
        _offsets = offsets;
        Count = count;
    }

    public int Count { get; }

    /// <summary>Element <paramref name="index"/>'s UTF-8 bytes, in the mapping.</summary>
    public ReadOnlySpan<byte> Utf8(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        byte* at = _file.MappedBase + ((int*)_offsets.Start)[index];
        int length = (int)System.Buffers.Binary.BinaryPrimitives.ReadUInt64LittleEndian(new ReadOnlySpan<byte>(at, 8));   // checked when parsed
        return new ReadOnlySpan<byte>(at + 8, length);
    }

    public string this[int index] => Encoding.UTF8.GetString(Utf8(index));

    /// <summary>Every element as a string, decoded on two threads.</summary>
    public string[] ToArray()
    {
        var strings = new string[Count];
        Threading.SplitInTwo.Run(Count, (from, to) =>
        {
            for (int i = from; i < to; i++)
                strings[i] = this[i];
        });
        return strings;
    }

    public IEnumerator<string> GetEnumerator()
    {
        for (int i = 0; i < Count; i++) yield return this[i];
    }

    IEnumerator IEnumerable.GetEnumerator() => GetEnumerator();
}
