namespace BitNet.Inference.Hub;

/// <summary>
/// What the hub says about a file before we fetch it (from a HEAD on the resolve URL):
/// the commit the revision resolves to (<c>X-Repo-Commit</c>), the content hash (<c>X-Linked-Etag</c>
/// for LFS files = SHA-256 of the content, else <c>ETag</c> = the git blob SHA-1), the size, and
/// where the bytes actually are (a CDN redirect for LFS files).
/// </summary>
public sealed record HubFileMetadata(string? Commit, string ETag, long? Size, Uri DownloadUri)
{
    /// <summary>True when <see cref="ETag"/> is a SHA-256 (64 hex digits): an LFS file.</summary>
    public bool ETagIsSha256 => ETag.Length == 64 && ETag.All(char.IsAsciiHexDigit);

    /// <summary>True when <see cref="ETag"/> is a git blob SHA-1 (40 hex digits): a small, non-LFS file.</summary>
    public bool ETagIsGitSha1 => ETag.Length == 40 && ETag.All(char.IsAsciiHexDigit);
}
