using System.Buffers.Binary;
using System.Diagnostics;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Inference.Tests.Gguf;
using BitNet.Tests.Shared;

namespace BitNet.Inference.Tests.Model;

/// <summary>
/// Seeded random mutations of a valid tiny model: whatever the damage, loading (and, when it loads,
/// one forward pass) either works or throws the GgufFormatException family — never another exception,
/// never a hang, never an access violation (which would kill the test process).
/// </summary>
public class RandomMutationTests
{
    private const int Cases = 3000;

    // Each case must finish within a wall-clock limit (no hang), which a busy machine can exceed.
    [MachineDependent(TestCategories.NeedsTiming)]
    [Fact]
    public void Random_mutations_only_ever_raise_the_format_exception_family()
    {
        byte[] original = TinyModels.TinyBytes;
        int headerEnd = HeaderLength(original);
        var rng = new Random(20250423);
        using var temp = new TempFolder();
        string path = temp.File("mutant.gguf");
        int loaded = 0, rejected = 0;
        long slowest = 0;
        var kinds = new Dictionary<string, int>();

        for (int i = 0; i < Cases; i++)
        {
            byte[] bytes = (byte[])original.Clone();
            string kind = Mutate(bytes, headerEnd, rng, out int newLength);
            kinds[kind] = kinds.GetValueOrDefault(kind) + 1;
            File.WriteAllBytes(path, bytes.AsSpan(0, newLength).ToArray());

            var watch = Stopwatch.StartNew();
            try
            {
                using var model = BitNetModel.Load(path);
                var state = model.CreateState(8);
                model.Forward(state, [0, 1]);
                loaded++;
            }
            catch (GgufFormatException)
            {
                rejected++;
            }
            catch (Exception e)
            {
                Assert.Fail($"case {i} ({kind}): {e.GetType().Name}: {e.Message}");
            }
            slowest = Math.Max(slowest, watch.ElapsedMilliseconds);
            Assert.True(watch.ElapsedMilliseconds < 2000, $"case {i} ({kind}) took {watch.ElapsedMilliseconds} ms");
        }
        TestContext.Current.TestOutputHelper?.WriteLine(
            $"{Cases} mutants: {loaded} loaded, {rejected} rejected; slowest {slowest} ms; kinds {string.Join(", ", kinds.Select(k => $"{k.Key}={k.Value}"))}");
        Assert.True(rejected > Cases / 4, $"only {rejected} of {Cases} mutants were rejected: the mutations do not reach the header");
    }

    /// <summary>Apply one random mutation; most target the header (metadata, tensor infos) where parsing happens.</summary>
    private static string Mutate(byte[] bytes, int headerEnd, Random rng, out int length)
    {
        length = bytes.Length;
        switch (rng.Next(6))
        {
            case 0: // flip random bits in the header
                for (int k = rng.Next(1, 4); k > 0; k--) bytes[rng.Next(headerEnd)] ^= (byte)(1 << rng.Next(8));
                return "bitflip";
            case 1: // overwrite a random byte anywhere
                bytes[rng.Next(bytes.Length)] = (byte)rng.Next(256);
                return "byte";
            case 2: // a u64 somewhere in the header becomes huge or small (lengths, counts, dims, offsets)
            {
                int at = rng.Next(headerEnd - 8);
                ulong value = rng.Next(4) switch
                {
                    0 => ulong.MaxValue - (ulong)rng.Next(16),
                    1 => (ulong)rng.NextInt64(),
                    2 => (ulong)rng.Next(64),
                    _ => 1UL << rng.Next(64),
                };
                BinaryPrimitives.WriteUInt64LittleEndian(bytes.AsSpan(at), value);
                return "u64";
            }
            case 3: // a u32 in the header (types, n_dims, value types)
            {
                int at = rng.Next(headerEnd - 4);
                BinaryPrimitives.WriteUInt32LittleEndian(bytes.AsSpan(at), (uint)rng.Next(-2, 64));
                return "u32";
            }
            case 4: // truncate at a random length
                length = rng.Next(rng.Next(2) == 0 ? headerEnd + 64 : bytes.Length);
                return "truncate";
            default: // scribble over a run of tensor data (scales, embedding)
            {
                int at = rng.Next(headerEnd, bytes.Length - 16);
                for (int k = 0; k < 16; k++) bytes[at + k] = (byte)rng.Next(256);
                return "data";
            }
        }
    }

    private static int HeaderLength(byte[] file)
    {
        using var temp = new TempFolder();
        File.WriteAllBytes(temp.File("h.gguf"), file);
        using var gguf = GgufFile.Open(temp.File("h.gguf"));
        return (int)gguf.DataOffset;
    }
}
