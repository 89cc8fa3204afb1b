namespace BitNet.Inference.Tokenization;

/// <summary>
/// GPT-2's byte↔unicode table. Byte-level BPE vocabularies store every byte as a printable
/// character: the bytes that are already printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
/// themselves; the other 68 bytes (controls, space, DEL, NBSP, soft hyphen…) are mapped in order
/// onto U+0100, U+0101, … So space is 'Ġ' (U+0120) and newline is 'Ċ' (U+010A).
/// </summary>
internal static class ByteLevelEncoding
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly short[] CharToByte = BuildCharToByte();

    /// <summary>The character that stands for <paramref name="b"/> in the vocabulary.</summary>
    public static char Encode(byte b) => ByteToChar[b];

    /// <summary>
    /// Writes the UTF-8 of the character that stands for <paramref name="b"/> (how the vocabulary's
    /// texts hold it: one byte below U+0080, else two) and returns its length.
    /// </summary>
    public static int EncodeUtf8(byte b, Span<byte> destination)
    {
        char c = ByteToChar[b];
        if (c < 0x80)
        {
            destination[0] = (byte)c;
            return 1;
        }
        destination[1] = (byte)(0x80 | (c & 0x3F));   // every character of the table is below U+0800
        destination[0] = (byte)(0xC0 | (c >> 6));
        return 2;
    }

    /// <summary>The byte that <paramref name="c"/> stands for, or -1 if it is not in the table.</summary>
    public static int Decode(int c) => c >= 0 && c < CharToByte.Length ? CharToByte[c] : -1;

    private static char[] BuildByteToChar()
    {
        var table = new char[256];
        int next = 256;
        for (int b = 0; b < 256; b++)
        {
            bool printable = b is >= '!' and <= '~' or >= 0xA1 and <= 0xAC or >= 0xAE and <= 0xFF;
            table[b] = printable ? (char)b : (char)next++;
        }
        return table;
    }

    private static short[] BuildCharToByte()
    {
        var table = new short[256 + 68];
        Array.Fill(table, (short)-1);
        for (int b = 0; b < 256; b++)
            table[ByteToChar[b]] = (short)b;
        return table;
    }
}
