namespace BitNet.Inference.Tokenization;

/// <summary>
/// GPT-2's byte↔unicode table. Byte-level BPE vocabularies store every byte as a printable
/// character: the bytes that are already printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for
/// themselves; the other 68 bytes (controls, space, DEL, NBSP, soft hyphen…) are mapped in order
/// onto U+0100, U+0101, … So space is 'Ġ' (U+0120) and newline is 'Ċ' (U+010A).
/// </summary>
public static class ByteLevelEncoding
{
    private static readonly char[] ByteToChar = BuildByteToChar();
    private static readonly short[] CharToByte = BuildCharToByte();

    /// <summary>The character that stands for <paramref name="b"/> in the vocabulary.</summary>
    public static char Encode(byte b) => ByteToChar[b];

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
