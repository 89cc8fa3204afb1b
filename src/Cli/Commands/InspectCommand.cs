using System.CommandLine;
using System.Globalization;
using BitNet.Inference.Gguf;
using BitNet.Inference.Model;

namespace BitNet.Cli.Commands;

/// <summary>
/// `bitnet inspect -m MODEL [--all-arrays]`: the GGUF header, every metadata key (long arrays summarized),
/// every tensor with type, shape, bytes and offset, totals per type, and the model's hyperparameters.
/// </summary>
internal static class InspectCommand
{
    public static Command Create() => Create(Console.Out, Console.Error);

    internal static Command Create(TextWriter stdout, TextWriter stderr)
    {
        var model = ModelCommandOptions.ModelOption("GGUF file to describe");
        var items = NumberOption.Create("--array-items", "Array elements shown before summarizing", 8).Must(n => n >= 0, "0 or more");
        var command = new Command("inspect", "Show a GGUF file's metadata, tensors, types and sizes") { model, items };
        command.SetAction(async (parse, _) =>
        {
            try
            {
                await stdout.WriteAsync(Describe(ModelCommandOptions.ResolveModelPath(parse.GetValue(model)), parse.GetValue(items)));
                return 0;
            }
            catch (Exception e) when (ModelCommandOptions.IsUserError(e))
            {
                await stderr.WriteLineAsync(ModelCommandOptions.ErrorLine(e));
                return 1;
            }
        });
        return command;
    }

    internal static string Describe(string path, int arrayItems)
    {
        var inv = CultureInfo.InvariantCulture;
        var text = new System.Text.StringBuilder();
        using var file = GgufFile.Open(path);
        text.AppendLine(inv, $"file      {file.Path}");
        text.AppendLine(inv, $"size      {file.FileSize:N0} bytes");
        text.AppendLine(inv, $"format    GGUF v{file.Version}, alignment {file.Alignment}, data section at offset {file.DataOffset:N0}");

        text.AppendLine(inv, $"metadata  {file.MetadataInOrder.Count} keys");
        // Names and strings from the file are printed escaped: a key holding ESC must not drive the terminal.
        int keyWidth = file.MetadataInOrder.Count == 0 ? 0 : file.MetadataInOrder.Max(kv => PrintableText.Escape(kv.Key).Length);
        foreach (var (key, value) in file.MetadataInOrder)
            text.AppendLine(inv, $"  {PrintableText.Escape(key).PadRight(keyWidth)}  {value.TypeName,-9} {PrintableText.Escape(value.ToDisplayString(arrayItems))}");

        text.AppendLine(inv, $"tensors   {file.Tensors.Count}");
        int nameWidth = file.Tensors.Count == 0 ? 0 : file.Tensors.Max(t => PrintableText.Escape(t.Name).Length);
        foreach (var t in file.Tensors)
            text.AppendLine(inv, $"  {PrintableText.Escape(t.Name).PadRight(nameWidth)}  {t.Type,-5}  {t.ShapeText,-16} {t.ByteSize,15:N0} bytes  @ {t.Offset:N0}");

        text.AppendLine("totals");
        foreach (var group in file.Tensors.GroupBy(t => t.Type).OrderBy(g => g.Key))
            text.AppendLine(inv, $"  {group.Key,-5}  {group.Count(),4} tensors  {group.Sum(t => t.ElementCount),15:N0} elements  {group.Sum(t => t.ByteSize),15:N0} bytes");
        text.AppendLine(inv, $"  all    {file.Tensors.Count,4} tensors  {file.Tensors.Sum(t => t.ElementCount),15:N0} elements  {file.Tensors.Sum(t => t.ByteSize),15:N0} bytes");

        try
        {
            var c = ModelConfig.FromGguf(file);
            var weights = BitNetWeights.Load(file, c); // checks every tensor's name, type and shape
            GraphFamily g = c.Graph;
            text.AppendLine(inv, $"model     {PrintableText.Escape(c.Architecture)} '{PrintableText.Escape(c.Name)}': {c.LayerCount} layers, embedding {c.EmbeddingLength}, " +
                $"{c.HeadCount} heads / {c.KvHeadCount} KV heads (head dim {c.HeadDim}), feed-forward {c.FeedForwardLength}, " +
                $"vocabulary {c.VocabSize}, context {c.ContextLength}, rope base {c.RopeFreqBase.ToString(inv)}, rms eps {c.RmsNormEpsilon.ToString(inv)}");
            text.AppendLine($"graph     {g.Name}: {(g.Activation == FeedForwardActivation.Silu ? "silu" : "relu²")}(gate) ⊙ up, " +
                $"{(g.SubNorms ? "sub-norms before Wo and Wdown" : "no sub-norms")}, " +
                $"RoPE {(g.Rope == RopeStyle.Neox ? "NEOX" : "adjacent pairs")} over {c.RopeDimensionCount} dims" +
                (c.RopeFrequencyScale != 1f ? $" scaled ×{c.RopeFrequencyScale.ToString(inv)}" : "") +
                (weights.Rope.Factors is not null ? " with rope_freqs" : ""));
            text.AppendLine($"LM head   {(weights.IsLmHeadTied ? "tied to token_embd" : "untied: output.weight")} ({weights.LmHeadFileType}" +
                (weights.LmHeadFileType == GgmlType.F16 ? ")" : ", converted to F16 at load)"));
            try
            {
                var tokenizer = BitNet.Inference.Tokenization.Tokenizer.FromGguf(file);
                var template = BitNet.Inference.Generation.ChatTemplate.Choose(file, t => tokenizer.TryGetId(t, out _));
                text.AppendLine(inv, $"chat      {(template.IsKnown ? template.Name : "unknown: " + template.Problem)}; " +
                    $"pre-tokenizer {tokenizer.PreTokenizer.ToString().ToLowerInvariant()}");
            }
            catch (BitNet.Inference.Tokenization.TokenizerException e)
            {
                text.AppendLine(inv, $"chat      no usable tokenizer: {e.Message}");
            }
        }
        catch (ModelFormatException e)
        {
            text.AppendLine(inv, $"model     not runnable by this engine: {e.Message}");
        }
        return text.ToString();
    }
}
