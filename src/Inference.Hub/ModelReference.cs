namespace BitNet.Inference.Hub;

/// <summary>
/// One file in a Hugging Face hub model repository, at a revision (branch, tag or commit).
/// Written on the command line as <c>org/name[:file][@revision]</c>.
/// </summary>
public sealed record ModelReference(string Repo, string File, string Revision = "main")
{
    /// <summary>Microsoft's official BitNet b1.58 2B-4T GGUF repository.</summary>
    public const string DefaultRepo = "microsoft/bitnet-b1.58-2B-4T-gguf";

    /// <summary>The I2_S file in that repository (the format our engine runs).</summary>
    public const string DefaultFile = "ggml-model-i2_s.gguf";

    /// <summary>The model every command uses when none is named.</summary>
    public static ModelReference Default { get; } = new(DefaultRepo, DefaultFile);

    /// <summary>
    /// Parses <c>org/name[:file][@revision]</c>; a missing file means <see cref="DefaultFile"/>,
    /// a missing revision means <c>main</c>. Throws <see cref="FormatException"/> on anything the hub
    /// could not address.
    /// </summary>
    public static ModelReference Parse(string text)
    {
        ArgumentNullException.ThrowIfNull(text);
        string rest = text.Trim();
        string revision = "main";
        int at = rest.LastIndexOf('@');
        if (at >= 0)
        {
            revision = rest[(at + 1)..];
            rest = rest[..at];
            if (revision.Length == 0)
                throw new FormatException($"model reference '{text}': empty revision after '@'");
        }

        string repo = rest, file = DefaultFile;
        int colon = rest.IndexOf(':');
        if (colon >= 0)
        {
            repo = rest[..colon];
            file = rest[(colon + 1)..];
            if (file.Length == 0)
                throw new FormatException($"model reference '{text}': empty file name after ':'");
        }

        ValidateRepo(repo, text);
        if (file.StartsWith('/') || file.Split('/').Any(part => part is "" or "." or ".."))
            throw new FormatException($"model reference '{text}': file '{file}' must be a relative path inside the repository");
        if (revision.Contains('/') && revision.Split('/').Any(part => part is "" or "." or ".."))
            throw new FormatException($"model reference '{text}': invalid revision '{revision}'");
        return new ModelReference(repo, file, revision);
    }

    /// <summary>The hub cache folder name for the repository: <c>models--org--name</c>.</summary>
    public string CacheFolderName => "models--" + Repo.Replace("/", "--", StringComparison.Ordinal);

    public override string ToString() =>
        Revision == "main" ? $"{Repo}:{File}" : $"{Repo}:{File}@{Revision}";

    private static void ValidateRepo(string repo, string original)
    {
        string[] parts = repo.Split('/');
        if (parts.Length != 2 || parts.Any(p => p.Length == 0))
            throw new FormatException($"model reference '{original}': repository must be 'org/name' (e.g. {DefaultRepo})");
        foreach (string part in parts)
        {
            if (part is "." or ".." || part.Any(c => !(char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.')))
                throw new FormatException($"model reference '{original}': '{part}' may only contain letters, digits, '-', '_' and '.'");
        }
    }
}
