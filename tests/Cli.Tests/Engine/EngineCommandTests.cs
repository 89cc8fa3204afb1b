using System.CommandLine;
using System.IO.Compression;
using System.Runtime.InteropServices;
using System.Text.Json;
using BitNet.Cli.Commands;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;
using BitNet.Tests.Shared;

namespace BitNet.Cli.Tests.Engine;

/// <summary>`bitnet inspect`, `logits` and `dummy`, run in-process.</summary>
public sealed class EngineCommandTests : IDisposable
{
    private readonly StringWriter _out = new();
    private readonly StringWriter _err = new();
    private readonly string _dir = Directory.CreateTempSubdirectory("bitnet-engine-cli-").FullName;

    public void Dispose()
    {
        try { Directory.Delete(_dir, recursive: true); } catch (IOException) { }
    }

    private static Task<int> Run(Command command, params string[] args) =>
        CommandCatalog.Parse([command.Name, .. args], [command]).InvokeAsync(cancellationToken: TestContext.Current.CancellationToken);

    [Fact]
    public async Task Inspect_lists_metadata_with_long_arrays_summarized_tensors_and_totals()
    {
        Assert.Equal(0, await Run(InspectCommand.Create(_out, _err), "-m", SharedData.OracleModelPath));
        string text = _out.ToString();
        Assert.Contains("GGUF v3, alignment 32", text);
        Assert.Contains("general.architecture", text);
        Assert.Contains("\"bitnet-b1.58\"", text);
        Assert.Contains("arr[str]", text);
        Assert.Contains("… (128256 items)]", text);
        Assert.Contains("… (280147 items)]", text);
        Assert.Contains("blk.3.ffn_down.weight", text);
        Assert.Matches(@"token_embd\.weight\s+F16\s+\[256, 128256\]\s+65,667,072 bytes", text);
        Assert.Matches(@"I2_S\s+28 tensors", text);
        Assert.Contains("tensors   46", text);
        Assert.Contains("model     bitnet-b1.58 'bitnet-small-dummy': 4 layers, embedding 256, 4 heads / 2 KV heads (head dim 64)", text);
        Assert.Contains("graph     build_bitnet_158: relu²(gate) ⊙ up, sub-norms before Wo and Wdown, RoPE NEOX over 64 dims", text);
        Assert.Contains("LM head   tied to token_embd (F16)", text);
        Assert.Contains("chat      bitnet; pre-tokenizer llama3", text);
    }

    [Fact]
    public async Task Inspect_names_the_llama_graph_the_untied_head_and_the_chat_template()
    {
        Assert.Equal(0, await Run(InspectCommand.Create(_out, _err), "-m", ArchModels.PathOf(ArchModels.LlamaUntied)));
        string text = _out.ToString();
        Assert.Contains("model     llama 'llama-untied-h128-dummy'", text);
        Assert.Contains("graph     build_llama: silu(gate) ⊙ up, no sub-norms, RoPE adjacent pairs over 64 dims", text);
        Assert.Contains("LM head   untied: output.weight (F16)", text);
        Assert.Contains("chat      llama3; pre-tokenizer llama3", text);
    }

    [Fact]
    public async Task Dummy_writes_a_llama_architecture_model_with_an_untied_head()
    {
        string path = Path.Combine(_dir, "falcon.gguf");
        var plan = BitNet.Inference.Dummy.DummyModel.Plan(BitNet.Inference.Dummy.DummyShape.Falcon3_1B, seed: 1);
        Assert.InRange(plan.PlanFileSize(), 1_350_000_000L, 1_370_000_000L);
        Assert.Contains(plan.Metadata, kv => kv.Key == "llama.rope.freq_base" && kv.Value.ToDisplayString(1) == "1000042");
        Assert.Equal(1, await Run(DummyCommand.Create(_out, _err), "-o", path, "--shape", "qwen-7b"));
    }

    [Fact]
    public async Task Inspect_of_a_bad_file_is_a_one_line_error()
    {
        string path = Path.Combine(_dir, "bad.gguf");
        await File.WriteAllTextAsync(path, "not a gguf file at all", TestContext.Current.CancellationToken);
        Assert.Equal(1, await Run(InspectCommand.Create(_out, _err), "-m", path));
        Assert.StartsWith("error: bad.gguf: not a GGUF file", _err.ToString());
    }

    [Fact]
    public async Task Logits_writes_the_oracle_layout_and_reproduces_the_oracle_file()
    {
        using var json = JsonDocument.Parse(await File.ReadAllTextAsync(SharedData.OracleFile("bitnet-small-i2_s.bitnetcpp.t1.tokens.json"), TestContext.Current.CancellationToken));
        int[] prompt = json.RootElement.GetProperty("prompt_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int[] generated = json.RootElement.GetProperty("generated_ids").EnumerateArray().Select(e => e.GetInt32()).ToArray();
        int[] fed = [.. prompt, .. generated.Take(15)];
        string output = Path.Combine(_dir, "out.f32");

        Assert.Equal(0, await Run(LogitsCommand.Create(_err), "-m", SharedData.OracleModelPath,
            "--tokens", string.Join(",", fed), "-o", output, "--prompt-length", prompt.Length.ToString()));

        const int vocab = 128256;
        byte[] ours = await File.ReadAllBytesAsync(output, TestContext.Current.CancellationToken);
        Assert.Equal(fed.Length * vocab * 4, ours.Length); // no header, one row per input token
        var oracle = new byte[ours.Length];
        await using (var gz = new GZipStream(File.OpenRead(SharedData.OracleFile("bitnet-small-i2_s.bitnetcpp.t1.logits.f32.gz")), CompressionMode.Decompress))
            await gz.ReadExactlyAsync(oracle, TestContext.Current.CancellationToken);
        ReadOnlySpan<float> a = MemoryMarshal.Cast<byte, float>(ours), b = MemoryMarshal.Cast<byte, float>(oracle);
        float worst = 0;
        for (int i = 0; i < a.Length; i++) worst = Math.Max(worst, Math.Abs(a[i] - b[i]));
        Assert.True(worst < 1e-4f, $"max |Δ| {worst}");
    }

    [Fact]
    public async Task Logits_rejects_a_token_outside_the_vocabulary()
    {
        Assert.Equal(1, await Run(LogitsCommand.Create(_err), "-m", SharedData.OracleModelPath,
            "--tokens", "128000,999999", "-o", Path.Combine(_dir, "x.f32")));
        Assert.Contains("token id 999999 is outside the vocabulary (0 to 128255)", _err.ToString());
    }

    [Fact]
    public async Task Dummy_writes_a_model_that_round_trips_and_runs()
    {
        string path = Path.Combine(_dir, "tiny.gguf");
        Assert.Equal(0, await Run(DummyCommand.Create(_out, _err), "-o", path, "--shape", "tiny", "--seed", "11"));
        Assert.Contains("wrote", _out.ToString());
        using (var file = GgufFile.Open(path))
        {
            Assert.Equal("bitnet-b1.58", file.GetString("general.architecture"));
            Assert.Equal(24, file.Tensors.Count);
        }
        using var model = BitNetModel.Load(path);
        Assert.True(float.IsFinite(model.Forward(model.CreateState(8), [1, 2, 3])[0]));
    }

    [Fact]
    public async Task Dummy_small_with_vocab_from_copies_the_real_vocabulary()
    {
        string path = Path.Combine(_dir, "small.gguf");
        Assert.Equal(0, await Run(DummyCommand.Create(_out, _err), "-o", path, "--shape", "small", "--vocab-from", SharedData.OracleModelPath));
        using var file = GgufFile.Open(path);
        using var source = GgufFile.Open(SharedData.OracleModelPath);
        Assert.Equal(source.GetStringArray("tokenizer.ggml.merges"), file.GetStringArray("tokenizer.ggml.merges"));
        Assert.Equal(source.GetStringArray("tokenizer.ggml.tokens"), file.GetStringArray("tokenizer.ggml.tokens"));
        Assert.Equal(source.Tensors.Select(t => (t.Name, t.Type, string.Join("x", t.Shape))), file.Tensors.Select(t => (t.Name, t.Type, string.Join("x", t.Shape))));
    }
}
