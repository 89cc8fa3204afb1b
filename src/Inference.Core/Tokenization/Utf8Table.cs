using System.Numerics;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using BitNet.Inference.Gguf;
using BitNet.Inference.Memory;
using BitNet.Inference.Threading;

namespace BitNet.Inference.Tokenization;

/// <summary>
/// A list of UTF-8 texts, numbered in the order given, with a hash index from text to number: the
/// tokenizer's vocabulary (text → token id) and its merge list ("left right" → rank). The texts are
/// copied end to end, with their offsets and an open-addressing index (linear probing, at most 2/3
/// full), into one block of huge-page memory.
/// </summary>
/// <remarks>
/// Why not a Dictionary&lt;string, int&gt;: Llama 3's 128k tokens and 280k merges as .NET strings and
/// dictionary entries were ~25 MB of fresh 4 KB pages, faulted in one at a time on the path to the
/// first token; here they are a few 2 MB pages. Texts are compared as
/// bytes, as llama.cpp compares its std::string keys, and a GGUF's texts are read straight from the
/// file's mapping without being decoded.
/// </remarks>
internal sealed unsafe class Utf8Table
{
    /// <summary>Which number an equal text keeps.</summary>
    public enum Duplicates
    {
        /// <summary>The last one (llama.cpp's vocabulary map: a later duplicate token wins).</summary>
        KeepLast,
        /// <summary>The first one (a merge's rank is that of its first appearance).</summary>
        KeepFirst,
    }

    private readonly HugePageBlock _block;   // slots, offsets, texts; held so the memory lives as long as this
    private readonly ulong* _slots;          // high half: the hash's low 32 bits; low half: number + 1 (0: empty)
    private readonly int* _offsets;          // text i is _texts[_offsets[i] .. _offsets[i + 1])
    private readonly byte* _texts;
    private readonly int _shift;
    private readonly ulong _mask;

    private Utf8Table(HugePageBlock block, int count, long slots)
    {
        _block = block;
        Count = count;
        _slots = (ulong*)block.Start;
        _offsets = (int*)(_slots + slots);
        _texts = (byte*)(_offsets + count + 1);
        _shift = 64 - BitOperations.Log2((ulong)slots);
        _mask = (ulong)slots - 1;
    }

    /// <summary>How many texts the list holds (duplicates included).</summary>
    public int Count { get; }

    /// <summary>How many texts equal an earlier one.</summary>
    public int RepeatedTexts { get; private set; }

    /// <summary>
    /// The table of <paramref name="texts"/>: an undecoded GGUF array (<see cref="Utf8StringArray"/>) is
    /// copied as its bytes, any other list encoded as UTF-8 (a lone surrogate becomes U+FFFD).
    /// </summary>
    public static Utf8Table Build(IReadOnlyList<string> texts, Duplicates duplicates)
    {
        ArgumentNullException.ThrowIfNull(texts);
        var undecoded = texts as Utf8StringArray;
        int count = texts.Count;
        long textBytes = 0;
        for (int i = 0; i < count; i++)
            textBytes += undecoded is not null ? undecoded.Utf8(i).Length : Encoding.UTF8.GetByteCount(texts[i]);
        if (textBytes > int.MaxValue)
            throw new TokenizerException($"the {count} texts hold {textBytes} bytes, more than a table takes");

        long slots = (long)BitOperations.RoundUpToPowerOf2((ulong)Math.Max(16L, count + count / 2L + 1));
        var block = new HugePageBlock(slots * sizeof(ulong) + (count + 1L) * sizeof(int) + textBytes);
        NativeMemory.Clear(block.Start, (nuint)(slots * sizeof(ulong)));
        var table = new Utf8Table(block, count, slots);
        int at = 0;
        for (int i = 0; i < count; i++)
        {
            var destination = new Span<byte>(table._texts + at, (int)(textBytes - at));
            int length;
            if (undecoded is not null)
            {
                ReadOnlySpan<byte> text = undecoded.Utf8(i);
                text.CopyTo(destination);
                length = text.Length;
            }
            else
                length = Encoding.UTF8.GetBytes(texts[i], destination);
            table._offsets[i] = at;
            if (!table.Insert(i, destination[..length], duplicates)) table.RepeatedTexts++;
            at += length;
        }
        table._offsets[count] = at;
        return table;
    }

    /// <summary>Text <paramref name="index"/>.</summary>
    public ReadOnlySpan<byte> Text(int index)
    {
        ArgumentOutOfRangeException.ThrowIfGreaterThanOrEqual((uint)index, (uint)Count, nameof(index));
        return new ReadOnlySpan<byte>(_texts + _offsets[index], _offsets[index + 1] - _offsets[index]);
    }

    /// <summary>The number of <paramref name="text"/> (first or last of equal ones, as built), or −1.</summary>
    public int Find(ReadOnlySpan<byte> text)
    {
        ulong hash = Hash(text);
        uint tag = (uint)hash;
        for (ulong slot = hash >> _shift; ; slot = (slot + 1) & _mask)
        {
            ulong entry = _slots[slot];
            int numberPlusOne = (int)(uint)entry;
            if (numberPlusOne == 0) return -1;
            if ((uint)(entry >> 32) == tag && Text(numberPlusOne - 1).SequenceEqual(text)) return numberPlusOne - 1;
        }
    }

    /// <summary>Index text <paramref name="index"/>; false when an equal text was there already.</summary>
    private bool Insert(int index, ReadOnlySpan<byte> text, Duplicates duplicates)
    {
        ulong hash = Hash(text);
        uint tag = (uint)hash;
        for (ulong slot = hash >> _shift; ; slot = (slot + 1) & _mask)
        {
            ulong entry = _slots[slot];
            int numberPlusOne = (int)(uint)entry;
            if (numberPlusOne == 0 || (uint)(entry >> 32) == tag && Text(numberPlusOne - 1).SequenceEqual(text))
            {
                if (numberPlusOne == 0 || duplicates == Duplicates.KeepLast)
                    _slots[slot] = (ulong)tag << 32 | (uint)(index + 1);
                return numberPlusOne == 0;
            }
        }
    }

    /// <summary>
    /// A 64-bit hash of a short text: eight bytes at a time, each folded in by a multiply and a shift
    /// (the slot comes from the top bits, the tag from the bottom ones, so both halves must mix well).
    /// </summary>
    private static ulong Hash(ReadOnlySpan<byte> text)
    {
        const ulong golden = 0x9E3779B97F4A7C15UL;
        ulong hash = (ulong)text.Length * golden;
        ref byte start = ref MemoryMarshal.GetReference(text);
        int i = 0;
        for (; i + 8 <= text.Length; i += 8)
        {
            hash = (hash ^ Unsafe.ReadUnaligned<ulong>(ref Unsafe.Add(ref start, i))) * golden;
            hash ^= hash >> 29;
        }
        ulong tail = 0;
        for (int j = text.Length - 1; j >= i; j--)
            tail = tail << 8 | Unsafe.Add(ref start, j);
        hash = (hash ^ tail) * 0xBF58476D1CE4E5B9UL;
        hash ^= hash >> 31;
        hash *= golden;
        return hash ^ hash >> 32;
    }
}
