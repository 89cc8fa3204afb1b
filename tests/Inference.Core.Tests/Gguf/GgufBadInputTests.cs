using System.Buffers.Binary;
using BitNet.Inference.Gguf;

namespace BitNet.Inference.Tests.Gguf;

public class GgufBadInputTests
{
    private static readonly int[] TwoInts = [1, 2];
    private static readonly string[] TwoStrings = ["a", "b"];

    /// <summary>A small valid file: two metadata keys and two tensors (one F32, one I2_S).</summary>
    private static byte[] ValidFile()
    {
        var w = new GgufWriter();
        w.AddMetadata("general.architecture", GgufValue.From("bitnet-b1.58"));
        w.AddMetadata("some.count", GgufValue.From(7u));
        w.AddTensor("norm.weight", GgmlType.F32, [8], new byte[32]);
        w.AddTensor("mat.weight", GgmlType.I2_S, [128, 2], new byte[64 + 32]);
        using var ms = new MemoryStream();
        w.WriteTo(ms);
        return ms.ToArray();
    }

    private static GgufFormatException OpenFails(byte[] bytes)
    {
        using var temp = new TempFolder();
        string path = temp.File("bad.gguf");
        File.WriteAllBytes(path, bytes);
        return Assert.Throws<GgufFormatException>(() => GgufFile.Open(path).Dispose());
    }

    /// <summary>Offset of a tensor-info field: after the tensor's name, n_dims (4), ne (8 each), type (4), offset (8).</summary>
    private static int TensorInfo(byte[] file, string name) => ByteSearch.AfterString(file, name);

    /// <summary>Opening a named pipe for reading waits for a writer, and its size reads 0: its type is asked first.</summary>
    [Fact]
    public async Task A_named_pipe_is_named_as_not_a_regular_file_without_waiting_for_a_writer()
    {
        Assert.SkipUnless(OperatingSystem.IsLinux(), "mkfifo and statx are Linux's");
        using var temp = new TempFolder();
        string fifo = temp.File("pipe.gguf");
        using (var mkfifo = System.Diagnostics.Process.Start("mkfifo", [fifo]))
            await mkfifo.WaitForExitAsync(TestContext.Current.CancellationToken);
        var open = Task.Run(() => GgufFile.Open(fifo).Dispose(), TestContext.Current.CancellationToken);
        await Task.WhenAny(open, Task.Delay(TimeSpan.FromSeconds(30), TestContext.Current.CancellationToken));
        Assert.True(open.IsCompleted, "GgufFile.Open waited on the pipe");
        var refused = await Assert.ThrowsAsync<IOException>(() => open);
        Assert.Equal($"'{fifo}' is not a regular file but a named pipe; give a GGUF file", refused.Message);
    }

    [Fact]
    public void Valid_file_opens()
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File("ok.gguf"), ValidFile());
        using var file = GgufFile.Open(temp.File("ok.gguf"));
        Assert.Equal(2, file.Tensors.Count);
    }

    [Fact]
    public void Truncated_file_throws_format_exception_naming_the_offset()
    {
        byte[] file = ValidFile();
        int cut = ByteSearch.AfterString(file, "some.count") + 2; // inside the value type
        var error = OpenFails(file[..cut]);
        Assert.Contains("truncated file while reading the value type of 'some.count'", error.Message);
        Assert.Contains($"at offset {cut - 2}", error.Message);
    }

    [Fact]
    public void Truncated_tensor_data_is_reported_as_past_the_end()
    {
        byte[] file = ValidFile();
        var error = OpenFails(file[..^10]);
        Assert.Contains("tensor 'mat.weight' (I2_S, shape [128, 2]) needs 96 bytes", error.Message);
        Assert.Contains("past the end", error.Message);
    }

    [Fact]
    public void Empty_file_is_reported_as_truncated()
    {
        Assert.Contains("truncated file (0 bytes)", OpenFails([]).Message);
    }

    [Fact]
    public void Wrong_magic_is_named()
    {
        byte[] file = ValidFile();
        "GGML"u8.CopyTo(file);
        Assert.Contains("not a GGUF file: the magic at offset 0 is \"GGML\", expected \"GGUF\"", OpenFails(file).Message);
    }

    [Theory]
    [InlineData(1u, "GGUF version 1 is not supported")]
    [InlineData(4u, "unsupported GGUF version 4")]
    [InlineData(0x03000000u, "big-endian")]
    public void Unsupported_version_is_named(uint version, string expected)
    {
        byte[] file = ValidFile();
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(4), version);
        Assert.Contains(expected, OpenFails(file).Message);
    }

    [Fact]
    public void Version_2_is_accepted()
    {
        byte[] file = ValidFile();
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(4), 2);
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File("v2.gguf"), file);
        using var gguf = GgufFile.Open(temp.File("v2.gguf"));
        Assert.Equal(2, gguf.Version);
    }

    [Fact]
    public void Unknown_value_type_is_named_with_key_and_offset()
    {
        byte[] file = ValidFile();
        int at = ByteSearch.AfterString(file, "some.count");
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at), 13);
        Assert.Contains($"metadata key 'some.count' has unknown value type 13 at offset {at}", OpenFails(file).Message);
    }

    [Fact]
    public void Nested_array_is_rejected()
    {
        var w = new GgufWriter();
        w.AddMetadata("arr", GgufValue.From(TwoInts));
        using var ms = new MemoryStream();
        w.WriteTo(ms);
        byte[] file = ms.ToArray();
        int at = ByteSearch.AfterString(file, "arr") + 4; // element type follows the value type
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at), (uint)GgufValueType.Array);
        Assert.Contains("nested arrays are not supported", OpenFails(file).Message);
    }

    [Fact]
    public void Absurd_array_length_is_rejected_before_allocating()
    {
        var w = new GgufWriter();
        w.AddMetadata("tokens", GgufValue.From(TwoStrings));
        using var ms = new MemoryStream();
        w.WriteTo(ms);
        byte[] file = ms.ToArray();
        int at = ByteSearch.AfterString(file, "tokens") + 8; // value type, element type, then the count
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(at), 1UL << 40);
        Assert.Contains($"array 'tokens' claims 1099511627776 elements of str at offset {at}", OpenFails(file).Message);
    }

    [Fact]
    public void Absurd_string_length_is_rejected()
    {
        byte[] file = ValidFile();
        int at = ByteSearch.AfterString(file, "general.architecture") + 4;
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(at), ulong.MaxValue);
        Assert.Contains($"string length {ulong.MaxValue} at offset {at} exceeds", OpenFails(file).Message);
    }

    /// <summary><see cref="ValidFile"/> with 128 kB of tensor data after the header, room for a damaged length to point into.</summary>
    private static byte[] FileWithRoomAfterTheHeader(string key = "some.count", string tensor = "norm.weight")
    {
        var w = new GgufWriter();
        w.AddMetadata("general.architecture", GgufValue.From("bitnet-b1.58"));
        w.AddMetadata(key, GgufValue.From(7u));
        w.AddTensor(tensor, GgmlType.F32, [32768], new byte[131072]);
        using var ms = new MemoryStream();
        w.WriteTo(ms);
        return ms.ToArray();
    }

    [Fact]
    public void A_key_longer_than_the_specification_allows_is_refused_without_quoting_it()
    {
        // A damaged key length that still fits the file made the key swallow what follows (a 67 MB
        // key from one flipped bit in a real model): 20 s, 1 GB and an error line of 143 MB.
        byte[] file = FileWithRoomAfterTheHeader();
        int at = ByteSearch.AfterString(file, "some.count") - "some.count".Length - 8;
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(at), 100_000);
        var error = OpenFails(file);
        Assert.Contains($"the key of metadata entry 1 at offset {at} is 100000 bytes long; GGUF keys are at most 65535 bytes", error.Message);
        Assert.True(error.Message.Length < 200, error.Message);
    }

    [Fact]
    public void A_tensor_name_longer_than_the_specification_allows_is_refused_without_quoting_it()
    {
        byte[] file = FileWithRoomAfterTheHeader();
        int at = ByteSearch.AfterString(file, "norm.weight") - "norm.weight".Length - 8;
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(at), 65);
        Assert.Contains($"the name of tensor 0 at offset {at} is 65 bytes long; GGUF tensor names are at most 64 bytes", OpenFails(file).Message);
    }

    [Fact]
    public void Keys_and_tensor_names_as_long_as_the_specification_allows_open()
    {
        string key = new('k', 65535), name = new('t', 64);   // the specification's limits
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File("long.gguf"), FileWithRoomAfterTheHeader(key, name));
        using var file = GgufFile.Open(temp.File("long.gguf"));
        Assert.Equal(7, file.GetInteger(key));
        Assert.Equal(name, file.Tensors[0].Name);
    }

    [Fact]
    public void Absurd_tensor_count_is_rejected()
    {
        byte[] file = ValidFile();
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(8), 1UL << 50);
        Assert.Contains("tensor count 1125899906842624 at offset 8 is absurd", OpenFails(file).Message);
    }

    [Fact]
    public void Unknown_tensor_type_is_named()
    {
        byte[] file = ValidFile();
        int at = TensorInfo(file, "mat.weight") + 4 + 16;
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at), 99);
        Assert.Contains($"tensor 'mat.weight' has unknown ggml type 99 at offset {at}", OpenFails(file).Message);
    }

    [Fact]
    public void Bad_dimension_count_and_zero_dimension_are_rejected()
    {
        byte[] file = ValidFile();
        int at = TensorInfo(file, "mat.weight");
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at), 5);
        Assert.Contains("tensor 'mat.weight' has 5 dimensions", OpenFails(file).Message);

        file = ValidFile();
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(at + 4 + 8), 0);
        Assert.Contains("tensor 'mat.weight' has bad dimension 1 = 0", OpenFails(file).Message);
    }

    [Fact]
    public void Block_type_with_a_partial_block_is_rejected()
    {
        byte[] file = ValidFile();
        int at = TensorInfo(file, "mat.weight");
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at + 4 + 16), (uint)GgmlType.TQ2_0); // ne0 = 128, block is 256
        Assert.Contains("ne0 = 128 is not a multiple of the TQ2_0 block size 256", OpenFails(file).Message);
    }

    [Fact]
    public void Misaligned_tensor_offset_is_rejected()
    {
        byte[] file = ValidFile();
        int at = TensorInfo(file, "mat.weight") + 4 + 16 + 4;
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(at), 33);
        Assert.Contains("tensor 'mat.weight' data offset 33", OpenFails(file).Message);
        Assert.Contains("is not a multiple of the alignment 32", OpenFails(file).Message);
    }

    [Fact]
    public void Tensor_past_the_end_of_the_file_is_rejected()
    {
        byte[] file = ValidFile();
        int at = TensorInfo(file, "mat.weight") + 4 + 16 + 4;
        BinaryPrimitives.WriteUInt64LittleEndian(file.AsSpan(at), 64);
        var error = OpenFails(file);
        Assert.Contains("tensor 'mat.weight' (I2_S, shape [128, 2]) needs 96 bytes", error.Message);
        Assert.Contains("past the end", error.Message);
    }

    [Fact]
    public void Bad_alignment_value_is_rejected()
    {
        var w = new GgufWriter(alignment: 64);
        using var ms = new MemoryStream();
        w.WriteTo(ms);
        byte[] file = ms.ToArray();
        int at = ByteSearch.AfterString(file, "general.alignment") + 4;
        BinaryPrimitives.WriteUInt32LittleEndian(file.AsSpan(at), 48);
        Assert.Contains("'general.alignment' must be a u32 power of two", OpenFails(file).Message);
    }

    [Fact]
    public void Duplicate_key_is_rejected()
    {
        var w = new GgufWriter();
        w.AddMetadata("k.aaaa", GgufValue.From(1u));
        w.AddMetadata("k.bbbb", GgufValue.From(2u));
        using var ms = new MemoryStream();
        w.WriteTo(ms);
        byte[] file = ms.ToArray();
        int second = ByteSearch.AfterString(file, "k.bbbb") - "k.bbbb".Length;
        "k.aaaa"u8.CopyTo(file.AsSpan(second)); // same length, so the rest of the file stays valid
        Assert.Contains("duplicate metadata key 'k.aaaa'", OpenFails(file).Message);
    }
}
