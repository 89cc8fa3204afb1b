using System.Text;
using BitNet.Inference.Gguf;

namespace BitNet.Inference.Tokenization;

/// <summary>
/// Byte-level BPE tokenizer (GGUF `tokenizer.ggml.model = gpt2`), as llama.cpp runs it (spec §6):
/// special-token partition → pre-tokenizer → GPT-2 byte encoding → rank-ordered merges →
/// vocabulary lookup with byte fallback. Immutable after construction, so thread-safe.
/// </summary>
public sealed class Tokenizer
{
    /// <summary>Token texts that end a generation when present in the vocabulary (llama.cpp's EOG list).</summary>
    public static readonly IReadOnlyList<string> EndOfGenerationTexts =
        ["<|eot_id|>", "<|im_end|>", "<|end|>", "<end_of_turn>", "<|endoftext|>", "<|eom_id|>", "<EOT>"];

    private readonly Utf8Table _vocabulary;                     // token texts by id, and text → id
    private readonly TokenType[] _types;
    private readonly BpeMerges _merges;
    private readonly SpecialTokens _specialTokens;
    private readonly int[] _endOfGeneration;                    // ids, ascending
    private readonly byte[] _pieceBytes;                        // every token's bytes, special tokens as their text
    private readonly int[] _pieceOffsets;                       // token i is _pieceBytes[_pieceOffsets[i].._pieceOffsets[i+1]]

    private Tokenizer(IReadOnlyList<string> tokens, TokenType[] types, IReadOnlyList<string> merges, TokenizerSettings settings)
    {
        _types = types;
        // Every id the file names must be a token; only a missing key falls back (EOT to <|eot_id|>).
        BosId = CheckId(settings.BosId, tokens.Count, "BOS");
        EosId = CheckId(settings.EosId, tokens.Count, "EOS");
        int? eomId = CheckId(settings.EomId, tokens.Count, "EOM");
        CheckId(settings.EotId, tokens.Count, "EOT");
        PreTokenizer = settings.PreTokenizer;
        AddBos = settings.AddBos;

        // The vocabulary (and the token bytes, which need it) on this thread, the merges on another:
        // for Llama 3 they take about as long, and they are on a cold start's path to the first token.
        Utf8Table vocabulary = null!;
        BpeMerges bpeMerges = null!;
        int? eotId = null;
        byte[] pieceBytes = null!;
        int[] pieceOffsets = null!;
        Threading.SplitInTwo.Run(2, (from, to) =>
        {
            if (from == 0)
            {
                vocabulary = Utf8Table.Build(tokens, Utf8Table.Duplicates.KeepLast);   // llama.cpp: a later duplicate wins
                // EOT: an explicit id if the file has one, else the token whose text is <|eot_id|>;
                // llama.cpp forces it to CONTROL so it is parsed and hidden like the other specials.
                int eot = settings.EotId ?? vocabulary.Find("<|eot_id|>"u8);
                eotId = eot >= 0 && eot < vocabulary.Count ? eot : null;
                if (eotId is int id) types[id] = TokenType.Control;
                (pieceBytes, pieceOffsets) = BuildPieces(vocabulary, types);
            }
            if (to == 2) bpeMerges = BpeMerges.Build(merges);
        }, parallel: merges.Count >= ParallelBuildMerges);
        _vocabulary = vocabulary;
        _merges = bpeMerges;
        _pieceBytes = pieceBytes;
        _pieceOffsets = pieceOffsets;
        EotId = eotId;

        var endOfGeneration = new SortedSet<int>();
        foreach (string text in EndOfGenerationTexts)
            if (Find(text) is int id and >= 0) endOfGeneration.Add(id);
        if (EosId is int eos) endOfGeneration.Add(eos);
        if (EotId is int eot2) endOfGeneration.Add(eot2);
        if (eomId is int eom) endOfGeneration.Add(eom);
        _endOfGeneration = [.. endOfGeneration];

        _specialTokens = new SpecialTokens(_vocabulary, _types);
    }

    /// <summary>Merge lists at least this long are built on a second thread (Llama 3 has 280k; tests' toy lists stay on one).</summary>
    internal const int ParallelBuildMerges = 16384;

    public int VocabSize => _vocabulary.Count;
    public PreTokenizerKind PreTokenizer { get; }
    /// <summary>Whether <see cref="Encode"/> prepends BOS by default (`tokenizer.ggml.add_bos_token`).</summary>
    public bool AddBos { get; }
    public int? BosId { get; }
    public int? EosId { get; }
    /// <summary>&lt;|eot_id|&gt;: ends a chat turn (spec §6.1).</summary>
    public int? EotId { get; }

    /// <summary>Tokens that end a generation: EOS, EOT and every token whose text is in <see cref="EndOfGenerationTexts"/>.</summary>
    public bool IsEndOfGeneration(int id) => Array.IndexOf(_endOfGeneration, id) >= 0;

    public IReadOnlyList<int> EndOfGenerationIds => [.. _endOfGeneration];

    public string TokenText(int id) => Encoding.UTF8.GetString(_vocabulary.Text(CheckToken(id)));
    public TokenType GetTokenType(int id) => _types[CheckToken(id)];

    /// <summary>Id of the token whose vocabulary text is exactly <paramref name="text"/> (the last such token).</summary>
    public bool TryGetId(string text, out int id)
    {
        ArgumentNullException.ThrowIfNull(text);
        id = Find(text);
        return id >= 0;
    }

    private int Find(string text) => _vocabulary.Find(Encoding.UTF8.GetBytes(text));

    /// <summary>"llama3" (also "llama-bpe") or "default", case-insensitive; anything else is an ArgumentException.</summary>
    public static PreTokenizerKind ParsePreTokenizer(string name) => Tokenization.PreTokenizer.Parse(name);

    // ---- construction -------------------------------------------------------------------------

    /// <summary>
    /// Reads the tokenizer from a GGUF's `tokenizer.ggml.*` keys. The pre-tokenizer is
    /// <paramref name="preTokenizer"/> when given; otherwise `tokenizer.ggml.pre` decides
    /// (`llama-bpe`/`llama3` → llama3, `default` → default), and a file without the key gets
    /// <see cref="PreTokenizerKind.Llama3"/> (Hugging Face-correct; pass Default for bitnet.cpp parity).
    /// </summary>
    public static Tokenizer FromGguf(GgufFile file, PreTokenizerKind? preTokenizer = null)
    {
        string model = file.TryGetString("tokenizer.ggml.model", out string m) ? m
            : throw new TokenizerException("the model file has no tokenizer (metadata key 'tokenizer.ggml.model' is missing)");
        if (model != "gpt2")
            throw new TokenizerException($"tokenizer model '{model}' is not supported; only byte-level BPE ('gpt2') is");

        // As read: Llama 3's 128k tokens and 280k merges stay undecoded in the file until the tables copy them.
        IReadOnlyList<string> tokens = file.GetStrings("tokenizer.ggml.tokens");
        IReadOnlyList<string> merges = file.ContainsKey("tokenizer.ggml.merges") ? file.GetStrings("tokenizer.ggml.merges") : [];
        int[]? types = file.ContainsKey("tokenizer.ggml.token_type") ? file.GetInt32Array("tokenizer.ggml.token_type") : null;

        PreTokenizerKind kind;
        if (preTokenizer is PreTokenizerKind explicitKind)
            kind = explicitKind;
        else if (file.TryGetString("tokenizer.ggml.pre", out string pre))
        {
            kind = pre switch
            {
                "llama3" or "llama-bpe" or "llama-v3" => PreTokenizerKind.Llama3,
                "default" => PreTokenizerKind.Default,
                "falcon3" or "falcon_e" => PreTokenizerKind.Falcon3,
                _ => throw new TokenizerException(
                    $"pre-tokenizer '{pre}' (tokenizer.ggml.pre) is not supported; choose 'llama3', 'default' or 'falcon3' explicitly"),
            };
        }
        else
            kind = PreTokenizerKind.Llama3;

        var settings = new TokenizerSettings
        {
            PreTokenizer = kind,
            AddBos = !file.TryGetBool("tokenizer.ggml.add_bos_token", out bool addBos) || addBos,
            BosId = OptionalId(file, "tokenizer.ggml.bos_token_id"),
            EosId = OptionalId(file, "tokenizer.ggml.eos_token_id"),
            EotId = OptionalId(file, "tokenizer.ggml.eot_token_id"),
            EomId = OptionalId(file, "tokenizer.ggml.eom_token_id"),
        };
        return Create(tokens, types, merges, settings);
    }

    /// <summary>Builds a tokenizer from plain tables (vocabulary in id order, GGUF token types, "left right" merges).</summary>
    public static Tokenizer Create(IReadOnlyList<string> tokens, IReadOnlyList<int>? tokenTypes, IReadOnlyList<string> merges, TokenizerSettings settings)
    {
        if (tokens.Count == 0)
            throw new TokenizerException("the vocabulary is empty");
        if (tokenTypes is not null && tokenTypes.Count != tokens.Count)
            throw new TokenizerException($"the vocabulary has {tokens.Count} tokens but {tokenTypes.Count} token types");
        var types = new TokenType[tokens.Count];
        for (int i = 0; i < types.Length; i++)
            types[i] = tokenTypes is null ? TokenType.Normal : (TokenType)tokenTypes[i];
        return new Tokenizer(tokens, types, merges, settings);
    }

    private static int? OptionalId(GgufFile file, string key)
    {
        if (!file.TryGetInteger(key, out long v)) return null;
        return v is >= 0 and <= int.MaxValue ? (int)v
            : throw new TokenizerException($"metadata key '{key}' = {v} is not a valid token id");
    }

    private static int? CheckId(int? id, int vocabSize, string what) => id switch
    {
        null => null,
        int v when v >= 0 && v < vocabSize => v,
        int v => throw new TokenizerException($"{what} token id {v} is outside the vocabulary (0..{vocabSize - 1})"),
    };

    private int CheckToken(int id) =>
        (uint)id < (uint)VocabSize ? id : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary (0..{VocabSize - 1})");

    /// <summary>
    /// Every token's bytes end to end (offsets[i]..offsets[i + 1]). Two passes, measuring then
    /// writing, so the one byte array is allocated at its final size.
    /// </summary>
    private static (byte[], int[]) BuildPieces(Utf8Table vocabulary, TokenType[] types)
    {
        var offsets = new int[vocabulary.Count + 1];
        int length = 0;
        for (int i = 0; i < vocabulary.Count; i++)
        {
            offsets[i] = length;
            length = checked(length + WritePiece(vocabulary.Text(i), types[i], []));
        }
        offsets[vocabulary.Count] = length;
        var bytes = GC.AllocateUninitializedArray<byte>(length);
        for (int i = 0; i < vocabulary.Count; i++)
            WritePiece(vocabulary.Text(i), types[i], bytes.AsSpan(offsets[i], offsets[i + 1] - offsets[i]));
        return (bytes, offsets);
    }

    /// <summary>The bytes a token of vocabulary text <paramref name="text"/> stands for, written to
    /// <paramref name="destination"/> unless it is empty (then only counted); returns their count.</summary>
    private static int WritePiece(ReadOnlySpan<byte> text, TokenType type, Span<byte> destination)
    {
        bool write = !destination.IsEmpty;
        switch (type)
        {
            case TokenType.Normal:
                // Each character stands for one byte (GPT-2 table); one outside the table is kept as its
                // UTF-8 (U+FFFD for an invalid sequence).
                int length = 0;
                while (!text.IsEmpty)
                {
                    Rune.DecodeFromUtf8(text, out Rune rune, out int used);
                    text = text[used..];
                    int b = ByteLevelEncoding.Decode(rune.Value);
                    if (b >= 0)
                    {
                        if (write) destination[length] = (byte)b;
                        length++;
                    }
                    else length += write ? rune.EncodeToUtf8(destination[length..]) : rune.Utf8SequenceLength;
                }
                return length;
            case TokenType.UserDefined:
            case TokenType.Control:
            case TokenType.Unknown:
                if (write) text.CopyTo(destination);
                return text.Length;
            default:
                return 0;       // llama.cpp renders other types as nothing, even with special output
        }
    }

    // ---- encoding -----------------------------------------------------------------------------

    /// <summary>Tokenize with the file's BOS setting and special tokens parsed.</summary>
    public int[] Encode(string text) => Encode(text, AddBos, parseSpecial: true);

    /// <summary>
    /// Tokenize <paramref name="text"/>. With <paramref name="parseSpecial"/>, exact (case-sensitive)
    /// occurrences of control-token text become those tokens, longest first, and the text between
    /// them is tokenized separately. BOS is prepended when <paramref name="addBos"/> and the vocabulary has one.
    /// </summary>
    public int[] Encode(string text, bool addBos, bool parseSpecial)
    {
        ArgumentNullException.ThrowIfNull(text);
        var output = new List<int>(text.Length / 3 + 2);
        if (addBos && BosId is int bos)
            output.Add(bos);
        // As UTF-8, the form the vocabulary's texts have (a lone surrogate becomes U+FFFD).
        byte[] utf8 = Encoding.UTF8.GetBytes(text);
        if (parseSpecial)
        {
            foreach (var (start, length, special) in _specialTokens.Partition(utf8))
            {
                if (special >= 0) output.Add(special);
                else EncodeRaw(utf8.AsSpan(start, length), output);
            }
        }
        else
        {
            EncodeRaw(utf8, output);
        }
        return [.. output];
    }

    /// <summary>
    /// Tokenize text made of pieces, as if concatenated, except that control-token text becomes its
    /// token only inside pieces with <see cref="PromptPiece.ParseSpecial"/>: a chat template's own
    /// text can hold control tokens, the messages it wraps cannot. Text between control tokens is
    /// one run across piece boundaries, so pieces tokenize exactly as the concatenated text would.
    /// </summary>
    public int[] Encode(IReadOnlyList<PromptPiece> pieces, bool addBos)
    {
        ArgumentNullException.ThrowIfNull(pieces);
        var output = new List<int>();
        if (addBos && BosId is int bos)
            output.Add(bos);
        var utf8 = new List<byte[]>(pieces.Count);
        foreach (PromptPiece piece in pieces)
            utf8.Add(Encoding.UTF8.GetBytes(piece.Text ?? throw new ArgumentException("a prompt piece has no text", nameof(pieces))));
        byte[] all = [.. utf8.SelectMany(bytes => bytes)];

        int rawStart = 0, offset = 0;
        for (int i = 0; i < pieces.Count; i++)
        {
            if (pieces[i].ParseSpecial)
            {
                foreach (var (start, length, special) in _specialTokens.Partition(utf8[i]))
                {
                    if (special < 0) continue;
                    EncodeRaw(all.AsSpan(rawStart, offset + start - rawStart), output);
                    output.Add(special);
                    rawStart = offset + start + length;
                }
            }
            offset += utf8[i].Length;
        }
        EncodeRaw(all.AsSpan(rawStart, offset - rawStart), output);
        return [.. output];
    }

    private void EncodeRaw(ReadOnlySpan<byte> utf8, List<int> output)
    {
        if (utf8.IsEmpty) return;
        var cps = new CodepointText(utf8);
        var pieces = new List<Piece>();
        Tokenization.PreTokenizer.Split(PreTokenizer, cps, 0, cps.Length, pieces);

        int maxPiece = 0;
        foreach (var p in pieces) maxPiece = Math.Max(maxPiece, p.End - p.Start);
        // A code point is at most 4 bytes, and each byte at most 2 bytes of byte-level text.
        var text = new byte[maxPiece * 8];
        var starts = new int[maxPiece * 4 + 1];
        var ranks = new int[maxPiece * 4];
        var scratch = new byte[maxPiece * 8 + 1];
        Span<byte> raw = stackalloc byte[4];

        foreach (var piece in pieces)
        {
            // The piece as byte-level text (each byte as the vocabulary's character for it), one symbol per byte.
            int symbols = 0, length = 0;
            for (int i = piece.Start; i < piece.End; i++)
            {
                int rawLength = new Rune(cps.Codepoints[i]).EncodeToUtf8(raw);
                for (int j = 0; j < rawLength; j++)
                {
                    starts[symbols++] = length;
                    length += ByteLevelEncoding.EncodeUtf8(raw[j], text.AsSpan(length));
                }
            }
            starts[symbols] = length;
            ReadOnlySpan<byte> pieceText = text.AsSpan(0, length);

            // ignore_merges (llama3): a piece that is itself a token is taken whole.
            if (PreTokenizer == PreTokenizerKind.Llama3 && _vocabulary.Find(pieceText) is int whole and >= 0)
            {
                output.Add(whole);
                continue;
            }

            int count = _merges.Merge(pieceText, starts, symbols, ranks, scratch);
            for (int i = 0; i < count; i++)
            {
                ReadOnlySpan<byte> symbol = pieceText[starts[i]..starts[i + 1]];
                int token = _vocabulary.Find(symbol);
                if (token >= 0) { output.Add(token); continue; }
                // Not a token: each of its bytes that is a token on its own, as llama.cpp falls back
                // (in practice its ASCII characters).
                for (int j = 0; j < symbol.Length; j++)
                    if (_vocabulary.Find(symbol.Slice(j, 1)) is int byteToken and >= 0)
                        output.Add(byteToken);
            }
        }
    }

    // ---- decoding -----------------------------------------------------------------------------

    /// <summary>The bytes a token stands for. Control tokens are empty unless <paramref name="renderSpecial"/>.</summary>
    public ReadOnlySpan<byte> TokenBytes(int id, bool renderSpecial = false)
    {
        CheckToken(id);
        bool hiddenUnlessSpecial = _types[id] is not (TokenType.Normal or TokenType.UserDefined);
        if (hiddenUnlessSpecial && !(renderSpecial && _types[id] is TokenType.Control or TokenType.Unknown))
            return [];
        return _pieceBytes.AsSpan(_pieceOffsets[id], _pieceOffsets[id + 1] - _pieceOffsets[id]);
    }

    /// <summary>Text of a token sequence; invalid UTF-8 becomes U+FFFD.</summary>
    public string Decode(IEnumerable<int> ids, bool renderSpecial = false)
    {
        var bytes = new List<byte>();
        foreach (int id in ids)
            foreach (byte b in TokenBytes(id, renderSpecial))
                bytes.Add(b);
        return Encoding.UTF8.GetString([.. bytes]);
    }
}

/// <summary>Part of a prompt; <paramref name="ParseSpecial"/> lets control-token text inside it become control tokens.</summary>
public readonly record struct PromptPiece(string Text, bool ParseSpecial);

/// <summary>The scalar settings of a tokenizer (the tables come separately).</summary>
public sealed record TokenizerSettings
{
    public PreTokenizerKind PreTokenizer { get; init; } = PreTokenizerKind.Llama3;
    public bool AddBos { get; init; } = true;
    public int? BosId { get; init; }
    public int? EosId { get; init; }
    /// <summary>Explicit EOT id; when null the token whose text is &lt;|eot_id|&gt; is used.</summary>
    public int? EotId { get; init; }
    public int? EomId { get; init; }
}
