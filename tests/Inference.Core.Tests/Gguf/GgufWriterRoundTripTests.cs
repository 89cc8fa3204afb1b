using BitNet.Inference.Gguf;

namespace BitNet.Inference.Tests.Gguf;

public class GgufWriterRoundTripTests
{
    private static readonly bool[] Bools = [true, false];
    private static readonly double[] OneDouble = [2.5];
    private static readonly string[] TokenLikeStrings = ["Ġ Ġ", "", "<|eot_id|>"];
    private static readonly int[] U16ArrayAsInt32 = [9, 65535];
    private static readonly string[] TwoStrings = ["a", "b"];

    [Fact]
    public void Every_metadata_value_type_round_trips_in_file_order()
    {
        using var temp = new TempFolder();
        var values = new (string Key, GgufValue Value)[]
        {
            ("u8", GgufValue.From((byte)200)), ("i8", GgufValue.From((sbyte)-7)),
            ("u16", GgufValue.From((ushort)65000)), ("i16", GgufValue.From((short)-30000)),
            ("u32", GgufValue.From(4_000_000_000u)), ("i32", GgufValue.From(-2_000_000_000)),
            ("f32", GgufValue.From(1e-5f)), ("bool", GgufValue.From(true)),
            ("str", GgufValue.From("héllo ✓ \"quoted\"")), ("u64", GgufValue.From(ulong.MaxValue)),
            ("i64", GgufValue.From(long.MinValue)), ("f64", GgufValue.From(Math.PI)),
            ("arr.u8", GgufValue.From(new byte[] { 1, 2, 255 })), ("arr.i8", GgufValue.From(new sbyte[] { -1, 5 })),
            ("arr.u16", GgufValue.From(new ushort[] { 9, 65535 })), ("arr.i16", GgufValue.From(new short[] { -9 })),
            ("arr.u32", GgufValue.From(new uint[] { 7, uint.MaxValue })), ("arr.i32", GgufValue.From(new[] { 1, -1, 3 })),
            ("arr.f32", GgufValue.From(new[] { 0.5f, -0f, float.PositiveInfinity })), ("arr.bool", GgufValue.From(Bools)),
            ("arr.str", GgufValue.From(TokenLikeStrings)), ("arr.u64", GgufValue.From(new ulong[] { 1UL << 60 })),
            ("arr.i64", GgufValue.From(new long[] { -5 })), ("arr.f64", GgufValue.From(OneDouble)),
            ("arr.empty", GgufValue.From(Array.Empty<string>())),
        };
        var writer = new GgufWriter();
        foreach (var (key, value) in values) writer.AddMetadata(key, value);
        writer.WriteTo(temp.File("meta.gguf"));

        using var file = GgufFile.Open(temp.File("meta.gguf"));
        Assert.Equal(values.Select(v => v.Key), file.MetadataInOrder.Select(kv => kv.Key));
        foreach (var (key, value) in values)
        {
            var read = file.Metadata[key];
            Assert.Equal(value.Type, read.Type);
            Assert.Equal(value.ElementType, read.ElementType);
            if (value.IsArray) Assert.Equal((System.Collections.IEnumerable)value.Value, (System.Collections.IEnumerable)read.Value);
            else Assert.Equal(value.Value, read.Value);
        }
        Assert.Equal(4_000_000_000L, file.GetInteger("u32"));
        Assert.Equal(-7, file.GetInteger("i8"));
        Assert.Equal((float)Math.PI, file.GetFloat("f64"));
        Assert.Equal(U16ArrayAsInt32, file.GetInt32Array("arr.u16"));
        Assert.Equal(new[] { 1, -1, 3 }, file.GetInt32Array("arr.i32"));
        Assert.Equal(TokenLikeStrings, file.GetStringArray("arr.str"));
        Assert.True(file.TryGetBool("bool", out bool b) && b);
        Assert.False(file.TryGetInteger("str", out _));
        Assert.False(file.TryGetString("missing", out _));
        var wrongType = Assert.Throws<GgufFormatException>(() => file.GetInteger("f32"));
        Assert.Contains("'f32' is f32, expected an integer", wrongType.Message);
        var absent = Assert.Throws<GgufFormatException>(() => file.GetString("nope"));
        Assert.Contains("'nope' is missing", absent.Message);
        Assert.Throws<GgufFormatException>(() => file.GetInteger("u64")); // does not fit a long
    }

    [Fact]
    public void A_vocabulary_sized_string_array_round_trips_and_a_cut_one_names_the_element()
    {
        // Arrays this long are decoded on two threads, each walking its half, after one pass that checks every element (an odd count: halves of unequal size).
        using var temp = new TempFolder();
        int n = GgufFile.ParallelStringArray * 2 + 3;
        var random = new Random(5);
        string[] alphabet = ["a", "Ġ", "é", "✓", "𝄞", " ", "<|x|>"];
        string[] strings = [.. Enumerable.Range(0, n).Select(i => i % 97 == 0 ? "" : string.Concat(Enumerable.Range(0, random.Next(1, 9)).Select(_ => alphabet[random.Next(alphabet.Length)])))];
        var writer = new GgufWriter();
        writer.AddMetadata("tokens", GgufValue.From(strings));
        writer.AddMetadata("after", GgufValue.From(42u));
        string path = temp.File("vocab.gguf");
        writer.WriteTo(path);
        using (var file = GgufFile.Open(path))
        {
            Assert.Equal(strings, file.GetStringArray("tokens"));
            Assert.Equal(42, file.GetInteger("after"));   // the position after the array is right
        }

        // Cut inside an element's length, or inside its bytes: the error names the element, as the
        // one-thread path's does.
        byte[] bytes = File.ReadAllBytes(path);
        var starts = new List<int>();   // where each element's u64 length is
        for (int i = bytes.AsSpan().IndexOf("tokens"u8) + 6 + 4 + 4 + 8, k = 0; k < n; k++)
        {
            starts.Add(i);
            i += 8 + (int)BitConverter.ToUInt64(bytes, i);
        }
        int withBytes = Enumerable.Range(20_000, n - 20_000).First(k => strings[k].Length >= 2);
        foreach (var (element, cut) in new[] { (20_000, starts[20_000] + 4), (withBytes, starts[withBytes] + 8 + 1) })
        {
            File.WriteAllBytes(path, bytes[..cut]);
            var e = Assert.Throws<GgufFormatException>(() => GgufFile.Open(path));
            Assert.Contains($"element {element} of array 'tokens'", e.Message);
        }
    }

    [Fact]
    public void A_long_string_array_stays_undecoded_until_its_strings_are_asked_for_and_only_while_open()
    {
        using var temp = new TempFolder();
        int n = GgufFile.ParallelStringArray + 1;
        string[] strings = [.. Enumerable.Range(0, n).Select(i => i % 5 == 0 ? "" : $"Ġtok{i}✓" + new string('x', i % 300))];
        var writer = new GgufWriter();
        writer.AddMetadata("long", GgufValue.From(strings));
        writer.AddMetadata("short", GgufValue.From(TwoStrings));
        string path = temp.File("strings.gguf");
        writer.WriteTo(path);
        var file = GgufFile.Open(path);
        var value = file.Metadata["long"];
        var undecoded = Assert.IsType<Utf8StringArray>(file.GetStrings("long"));
        Assert.Same(value.Utf8Strings, undecoded);
        Assert.Equal(n, value.ArrayLength);
        Assert.Equal(n, undecoded.Count);
        for (int i = 0; i < n; i += 7)
        {
            Assert.Equal(strings[i], undecoded[i]);
            Assert.True(System.Text.Encoding.UTF8.GetBytes(strings[i]).AsSpan().SequenceEqual(undecoded.Utf8(i)));
        }
        Assert.Throws<ArgumentOutOfRangeException>(() => undecoded.Utf8(n));
        Assert.Equal(strings, undecoded);
        Assert.IsType<string[]>(file.GetStrings("short"));   // short arrays are decoded as they are read
        file.Dispose();
        Assert.Throws<ObjectDisposedException>(() => value.Value);   // never decoded, and the mapping is gone
        Assert.Throws<ObjectDisposedException>(() => undecoded[0]);

        using var again = GgufFile.Open(path);
        Assert.Equal(strings, again.GetStringArray("long"));   // decoded on first use
        Assert.Same(again.Metadata["long"].Value, again.Metadata["long"].Value);
    }

    public static TheoryData<GgmlType, long[], long> TensorTypes => new()
    {
        { GgmlType.F32, [3, 2], 24 },
        { GgmlType.F16, [5], 10 },
        { GgmlType.Q8_0, [64, 2], 4 * 34 },
        { GgmlType.BF16, [7, 3], 42 },
        { GgmlType.TQ1_0, [256, 2], 2 * 54 },
        { GgmlType.TQ2_0, [512], 2 * 66 },
        { GgmlType.I2_S, [256, 3], 256 * 3 / 4 + 32 },
        { GgmlType.I8_S, [33], 33 },
        { GgmlType.TL1, [128, 2], 64 + 32 },
        // TL2: (96·2/3·5/8 = 40) + (256·2/2·4/8 = 128) = 168, padded to 192, plus the 32-byte tail
        { GgmlType.TL2, [256 + 96, 2], 192 + 32 },
    };

    [Theory]
    [MemberData(nameof(TensorTypes))]
    public void Every_tensor_type_round_trips_with_its_exact_size(GgmlType type, long[] shape, long expectedBytes)
    {
        using var temp = new TempFolder();
        var rng = new Random(42);
        var data = new byte[expectedBytes];
        rng.NextBytes(data);
        var writer = new GgufWriter();
        writer.AddTensor("before", GgmlType.F32, [3], new byte[12]); // 12 bytes: forces padding before the next tensor
        writer.AddTensor("t", type, shape, data);
        writer.AddTensor("after", GgmlType.F16, [1], new byte[] { 0x00, 0x3C });
        writer.WriteTo(temp.File("t.gguf"));

        using var file = GgufFile.Open(temp.File("t.gguf"));
        var info = file.GetTensor("t");
        Assert.Equal(type, info.Type);
        Assert.Equal(shape, info.Shape);
        Assert.Equal(expectedBytes, info.ByteSize);
        Assert.Equal(32, info.Offset);
        Assert.Equal(0, file.DataOffset % 32);
        Assert.Equal(data, file.GetTensorBytes(info).ToArray());
        Assert.Equal(new byte[] { 0x00, 0x3C }, file.GetTensorBytes(file.GetTensor("after")).ToArray());
        Assert.Equal(file.FileSize, writer.PlanFileSize());
    }

    [Fact]
    public void Custom_alignment_is_recorded_and_honoured()
    {
        using var temp = new TempFolder();
        var writer = new GgufWriter(alignment: 64);
        writer.AddMetadata("general.architecture", GgufValue.From("x"));
        writer.AddTensor("a", GgmlType.F32, [5], new byte[20]);
        writer.AddTensor("b", GgmlType.F32, [2], BitConverter.GetBytes(1.5f).Concat(BitConverter.GetBytes(-2f)).ToArray());
        writer.WriteTo(temp.File("a.gguf"));
        using var file = GgufFile.Open(temp.File("a.gguf"));
        Assert.Equal(64, file.Alignment);
        Assert.Equal(0, file.DataOffset % 64);
        Assert.Equal(64, file.GetTensor("b").Offset);
        Assert.Equal(-2f, BitConverter.ToSingle(file.GetTensorBytes(file.GetTensor("b"))[4..]));
    }

    [Fact]
    public void Writer_rejects_a_tensor_callback_that_writes_the_wrong_size()
    {
        var writer = new GgufWriter();
        writer.AddTensor("w", GgmlType.I2_S, [128, 1], new byte[32]); // needs 32 + 32
        var error = Assert.Throws<InvalidOperationException>(() => writer.WriteTo(Stream.Null));
        Assert.Contains("'w' (I2_S) wrote 32 bytes, its type and shape need 64", error.Message);
    }
}
