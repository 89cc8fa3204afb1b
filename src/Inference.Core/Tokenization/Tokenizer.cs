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

    private readonly string[] _tokens;
    private readonly TokenType[] _types;
    private readonly Dictionary<string, int> _vocabulary;
    private readonly BpeMerges _merges;
    private readonly (string Text, int Id)[] _specialTokens;   // CONTROL, USER_DEFINED, UNKNOWN; longest first
    private readonly bool[] _endOfGeneration;
    private readonly byte[] _pieceBytes;                        // every token's bytes, special tokens as their text
    private readonly int[] _pieceOffsets;                       // token i is _pieceBytes[_pieceOffsets[i].._pieceOffsets[i+1]]
    private readonly bool[] _hiddenUnlessSpecial;               // control tokens render empty unless asked

    private Tokenizer(string[] tokens, TokenType[] types, IReadOnlyList<string> merges, TokenizerSettings settings)
    {
        _tokens = tokens;
        _types = types;
        PreTokenizer = settings.PreTokenizer;
        AddBos = settings.AddBos;
        BosId = CheckId(settings.BosId, "BOS");
        EosId = CheckId(settings.EosId, "EOS");

        _vocabulary = new Dictionary<string, int>(tokens.Length, StringComparer.Ordinal);
        for (int i = 0; i < tokens.Length; i++)
            _vocabulary[tokens[i]] = i;                          // llama.cpp: a later duplicate wins
        _merges = BpeMerges.Build(merges, _vocabulary, tokens.Length);

        // EOT: an explicit id if the file has one, else the token whose text is <|eot_id|>;
        // llama.cpp forces it to CONTROL so it is parsed and hidden like the other specials.
        int eot = settings.EotId ?? (_vocabulary.TryGetValue("<|eot_id|>", out int e) ? e : -1);
        EotId = eot >= 0 && eot < tokens.Length ? eot : null;
        if (EotId is int eotId) _types[eotId] = TokenType.Control;

        _endOfGeneration = new bool[tokens.Length];
        foreach (string text in EndOfGenerationTexts)
            if (_vocabulary.TryGetValue(text, out int id)) _endOfGeneration[id] = true;
        if (EosId is int eos) _endOfGeneration[eos] = true;
        if (EotId is int eot2) _endOfGeneration[eot2] = true;
        if (settings.EomId is int eom && eom >= 0 && eom < tokens.Length) _endOfGeneration[eom] = true;

        // Counted first and filled in place: a vocabulary can be mostly specials (128k in a dummy model),
        // and every byte allocated at load is a fresh page to fault in before the first token.
        bool IsSpecial(int i) => _types[i] is TokenType.Control or TokenType.UserDefined or TokenType.Unknown && tokens[i].Length > 0;
        int specialCount = 0;
        for (int i = 0; i < tokens.Length; i++)
            if (IsSpecial(i)) specialCount++;
        var specials = new (string, int)[specialCount];
        for (int i = 0, n = 0; i < tokens.Length; i++)
            if (IsSpecial(i)) specials[n++] = (tokens[i], i);
        // Longest first; equal lengths by id so the order is deterministic.
        Array.Sort(specials, (a, b) => a.Item1.Length != b.Item1.Length ? b.Item1.Length.CompareTo(a.Item1.Length) : a.Item2.CompareTo(b.Item2));
        _specialTokens = specials;

        (_pieceBytes, _pieceOffsets, _hiddenUnlessSpecial) = BuildPieces(tokens, _types);
    }

    public int VocabSize => _tokens.Length;
    public PreTokenizerKind PreTokenizer { get; }
    /// <summary>Whether <see cref="Encode"/> prepends BOS by default (`tokenizer.ggml.add_bos_token`).</summary>
    public bool AddBos { get; }
    public int? BosId { get; }
    public int? EosId { get; }
    /// <summary>&lt;|eot_id|&gt;: ends a chat turn (spec §6.1).</summary>
    public int? EotId { get; }

    /// <summary>Tokens that end a generation: EOS, EOT and every token whose text is in <see cref="EndOfGenerationTexts"/>.</summary>
    public bool IsEndOfGeneration(int id) => (uint)id < (uint)_endOfGeneration.Length && _endOfGeneration[id];

    public IReadOnlyList<int> EndOfGenerationIds =>
        Enumerable.Range(0, _endOfGeneration.Length).Where(i => _endOfGeneration[i]).ToArray();

    public string TokenText(int id) => _tokens[CheckToken(id)];
    public TokenType GetTokenType(int id) => _types[CheckToken(id)];

    /// <summary>Id of the token whose vocabulary text is exactly <paramref name="text"/>.</summary>
    public bool TryGetId(string text, out int id) => _vocabulary.TryGetValue(text, out id);

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

        string[] tokens = file.GetStringArray("tokenizer.ggml.tokens");
        // As read: Llama 3's 280k merges stay undecoded in the file until the merge table reads them.
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
                _ => throw new TokenizerException(
                    $"pre-tokenizer '{pre}' (tokenizer.ggml.pre) is not supported; choose 'llama3' or 'default' explicitly"),
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
        return new Tokenizer([.. tokens], types, merges, settings);
    }

    private static int? OptionalId(GgufFile file, string key)
    {
        if (!file.TryGetInteger(key, out long v)) return null;
        return v is >= 0 and <= int.MaxValue ? (int)v
            : throw new TokenizerException($"metadata key '{key}' = {v} is not a valid token id");
    }

    private int? CheckId(int? id, string what) => id switch
    {
        null => null,
        int v when v >= 0 && v < _tokens.Length => v,
        int v => throw new TokenizerException($"{what} token id {v} is outside the vocabulary (0..{_tokens.Length - 1})"),
    };

    private int CheckToken(int id) =>
        (uint)id < (uint)_tokens.Length ? id : throw new ArgumentOutOfRangeException(nameof(id), id, $"token id outside the vocabulary (0..{_tokens.Length - 1})");

    /// <summary>
    /// Every token's bytes end to end (offsets[i]..offsets[i + 1]), and which tokens render as nothing
    /// unless special output is asked for. Two passes, measuring then writing, so the one byte array
    /// is allocated at its final size.
    /// </summary>
    private static (byte[], int[], bool[]) BuildPieces(string[] tokens, TokenType[] types)
    {
        var offsets = new int[tokens.Length + 1];
        var hidden = new bool[tokens.Length];
        int length = 0;
        for (int i = 0; i < tokens.Length; i++)
        {
            offsets[i] = length;
            length = checked(length + WritePiece(tokens[i], types[i], []));
        }
        offsets[tokens.Length] = length;
        var bytes = new byte[length];
        for (int i = 0; i < tokens.Length; i++)
        {
            WritePiece(tokens[i], types[i], bytes.AsSpan(offsets[i], offsets[i + 1] - offsets[i]));
            hidden[i] = types[i] is not (TokenType.Normal or TokenType.UserDefined);
        }
        return (bytes, offsets, hidden);
    }

    /// <summary>The bytes a token stands for, written to <paramref name="destination"/> unless it is empty
    /// (then only counted); returns their count.</summary>
    private static int WritePiece(string text, TokenType type, Span<byte> destination)
    {
        bool write = !destination.IsEmpty;
        switch (type)
        {
            case TokenType.Normal:
                // Each character stands for one byte (GPT-2 table); one outside the table is kept as its UTF-8.
                int length = 0;
                foreach (Rune rune in text.EnumerateRunes())
                {
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
                return write ? Encoding.UTF8.GetBytes(text, destination) : Encoding.UTF8.GetByteCount(text);
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
        if (parseSpecial)
        {
            foreach (var (start, length, special) in PartitionSpecial(text))
            {
                if (special >= 0) output.Add(special);
                else EncodeRaw(text.AsSpan(start, length), output);
            }
        }
        else
        {
            EncodeRaw(text, output);
        }
        return [.. output];
    }

    /// <summary>
    /// Split text on special-token texts, longest token first (llama.cpp tokenizer_st_partition):
    /// each token in turn cuts every raw fragment left so far at its occurrences.
    /// Returns (start, length, -1) for raw text and (start, length, id) for a special token.
    /// </summary>
    private List<(int Start, int Length, int Id)> PartitionSpecial(string text)
    {
        var fragments = new List<(int Start, int Length, int Id)> { (0, text.Length, -1) };
        if (text.Length == 0) return fragments;
        var next = new List<(int, int, int)>();
        foreach (var (special, id) in _specialTokens)
        {
            if (special.Length > text.Length || !text.Contains(special, StringComparison.Ordinal))
                continue;
            next.Clear();
            foreach (var fragment in fragments)
            {
                if (fragment.Id >= 0) { next.Add(fragment); continue; }
                int pos = fragment.Start, end = fragment.Start + fragment.Length;
                while (pos < end)
                {
                    int found = text.IndexOf(special, pos, end - pos, StringComparison.Ordinal);
                    if (found < 0) break;
                    if (found > pos) next.Add((pos, found - pos, -1));
                    next.Add((found, special.Length, id));
                    pos = found + special.Length;
                }
                if (pos < end) next.Add((pos, end - pos, -1));
            }
            (fragments, next) = (next, fragments);
        }
        return fragments;
    }

    private void EncodeRaw(ReadOnlySpan<char> text, List<int> output)
    {
        if (text.IsEmpty) return;
        var cps = new CodepointText(text);
        var pieces = new List<Piece>();
        Tokenization.PreTokenizer.Split(PreTokenizer, cps, 0, cps.Length, pieces);

        int maxPiece = 0;
        foreach (var p in pieces) maxPiece = Math.Max(maxPiece, p.End - p.Start);
        var bytes = new byte[maxPiece * 4];
        var symbols = new int[maxPiece * 4];
        var ranks = new int[maxPiece * 4];
        var chars = new char[maxPiece * 4];
        var vocabulary = _vocabulary.GetAlternateLookup<ReadOnlySpan<char>>();

        foreach (var piece in pieces)
        {
            int n = 0;
            for (int i = piece.Start; i < piece.End; i++)
                n += new Rune(cps.Codepoints[i]).EncodeToUtf8(bytes.AsSpan(n));

            if (PreTokenizer == PreTokenizerKind.Llama3)
            {
                // ignore_merges: a piece that is itself a token is taken whole.
                for (int i = 0; i < n; i++) chars[i] = ByteLevelEncoding.Encode(bytes[i]);
                if (vocabulary.TryGetValue(chars.AsSpan(0, n), out int whole))
                {
                    output.Add(whole);
                    continue;
                }
            }

            for (int i = 0; i < n; i++) symbols[i] = _merges.ByteSymbol(bytes[i]);
            int count = _merges.Merge(symbols.AsSpan(0, n), ranks);
            for (int i = 0; i < count; i++)
            {
                int s = symbols[i];
                if (s < _tokens.Length) { output.Add(s); continue; }
                // Not a token: fall back to the single-byte strings of its text (only ASCII bytes can match).
                foreach (byte b in Encoding.UTF8.GetBytes(_merges.ExtraSymbolText(s)))
                    if (b < 0x80 && _vocabulary.TryGetValue(((char)b).ToString(), out int byteToken))
                        output.Add(byteToken);
            }
        }
    }

    // ---- decoding -----------------------------------------------------------------------------

    /// <summary>The bytes a token stands for. Control tokens are empty unless <paramref name="renderSpecial"/>.</summary>
    public ReadOnlySpan<byte> TokenBytes(int id, bool renderSpecial = false)
    {
        CheckToken(id);
        if (_hiddenUnlessSpecial[id] && !(renderSpecial && _types[id] is TokenType.Control or TokenType.Unknown))
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
