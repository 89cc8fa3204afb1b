using BitNet.Inference.Dummy;
using BitNet.Inference.Model;
using BitNet.Inference.Tests.Gguf;

namespace BitNet.Inference.Tests.Model;

/// <summary>Small generated models shared by the model tests (written once per test run).</summary>
internal static class TinyModels
{
    private static readonly Lazy<string> TinyPath = new(() =>
    {
        string dir = Path.Combine(Path.GetTempPath(), "bitnet-engine-tests-shared");
        Directory.CreateDirectory(dir);
        string path = Path.Combine(dir, $"tiny-{Environment.ProcessId}.gguf");
        DummyModel.Write(path, DummyShape.Tiny, seed: 7);
        AppDomain.CurrentDomain.ProcessExit += (_, _) => { try { File.Delete(path); } catch (IOException) { } };
        return path;
    });

    /// <summary>A 2-layer, 128-wide random model with a 300-token synthetic vocabulary.</summary>
    public static string Tiny => TinyPath.Value;
    public static byte[] TinyBytes => File.ReadAllBytes(Tiny);

    public static string WriteCopy(TempFolder temp, byte[] bytes, string name = "m.gguf")
    {
        string path = temp.File(name);
        File.WriteAllBytes(path, bytes);
        return path;
    }
}
