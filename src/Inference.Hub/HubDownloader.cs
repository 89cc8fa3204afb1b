using System.Globalization;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Sockets;
using System.Security.Cryptography;
using System.Text;
using BitNet.Inference.Gguf;

namespace BitNet.Inference.Hub;

/// <summary>
/// Downloads model files from the Hugging Face hub into the hub cache (<see cref="ModelLocator"/>):
/// <list type="number">
/// <item>HEAD <c>{endpoint}/{repo}/resolve/{revision}/{file}</c> (endpoint = <c>HF_ENDPOINT</c> or
///   https://huggingface.co; <c>Authorization: Bearer $HF_TOKEN</c> when set) for commit, hash and size;</item>
/// <item>GET the bytes into <c>blobs/{hash}.incomplete</c>, resuming with <c>Range</c> when a partial file exists;</item>
/// <item>verify the SHA-256 (LFS) or git blob SHA-1 (small files) the hub published;</item>
/// <item>rename to <c>blobs/{hash}</c>, link <c>snapshots/{commit}/{file}</c> to it and write <c>refs/{revision}</c>.</item>
/// </list>
/// </summary>
public sealed class HubDownloader : IDisposable
{
    public const string DefaultEndpoint = "https://huggingface.co";
    private const int MaxRedirects = 5;
    private const int BufferSize = 1 << 20;

    private readonly HttpClient _http;
    private readonly bool _ownsClient;
    private readonly IEnvironment _env;

    /// <summary>
    /// <paramref name="http"/> must not follow redirects itself (the token must not travel to the CDN);
    /// leave it null to get a suitable client.
    /// </summary>
    public HubDownloader(IEnvironment? env = null, HttpClient? http = null)
    {
        _env = env ?? ProcessEnvironment.Instance;
        _ownsClient = http is null;
        _http = http ?? new HttpClient(new SocketsHttpHandler
        {
            AllowAutoRedirect = false,
            ConnectTimeout = TimeSpan.FromSeconds(15),
            AutomaticDecompression = DecompressionMethods.None,
        })
        { Timeout = Timeout.InfiniteTimeSpan };
    }

    /// <summary>The hub base URL: <c>HF_ENDPOINT</c> or https://huggingface.co; a <see cref="HubException"/> when HF_ENDPOINT is not an http(s) URL.</summary>
    public Uri Endpoint
    {
        get
        {
            string text = _env.GetVariable("HF_ENDPOINT") ?? DefaultEndpoint;
            return Uri.TryCreate(text.TrimEnd('/') + "/", UriKind.Absolute, out Uri? uri) && uri.Scheme is "http" or "https" && uri.Host.Length > 0
                ? uri
                : throw new HubException($"HF_ENDPOINT='{text}' is not an http(s) URL; unset it for {DefaultEndpoint}, or give a mirror's address such as https://hf-mirror.com");
        }
    }

    /// <summary>
    /// How long the hub may stay silent, as huggingface_hub reads it: HF_HUB_ETAG_TIMEOUT for a metadata request,
    /// HF_HUB_DOWNLOAD_TIMEOUT for a download's response and each read of its body (seconds, default 10 each).
    /// A server that accepts the connection and never answers is then an error, not a pull that waits forever.
    /// </summary>
    private TimeSpan SilenceLimit(string variable)
    {
        string? text = _env.GetVariable(variable);
        if (text is null)
            return TimeSpan.FromSeconds(10);
        return double.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out double seconds) && seconds > 0 && seconds <= 86_400
            ? TimeSpan.FromSeconds(seconds)
            : throw new HubException($"{variable}='{text}' is not a number of seconds from 0 to 86400");
    }

    private const string MetadataTimeout = "HF_HUB_ETAG_TIMEOUT", DownloadTimeout = "HF_HUB_DOWNLOAD_TIMEOUT";

    /// <summary>The resolve URL of a file.</summary>
    public Uri ResolveUri(ModelReference reference) =>
        new(Endpoint, $"{reference.Repo}/resolve/{Uri.EscapeDataString(reference.Revision)}/{EscapePath(reference.File)}");

    /// <summary>
    /// The model ready to load: the local copy when the cache already has it (no network),
    /// otherwise a fresh download. This is what a host calls when started without <c>-m</c>.
    /// </summary>
    public static async Task<string> EnsureModelAsync(ModelReference? reference = null, IProgress<DownloadProgress>? progress = null,
        IEnvironment? env = null, CancellationToken cancellationToken = default)
    {
        reference ??= ModelReference.Default;
        env ??= ProcessEnvironment.Instance;
        if (reference == ModelReference.Default && env.GetVariable(ModelLocator.ModelVariable) is not null)
            return ModelLocator.DefaultModelPath(env);
        if (ModelLocator.TryFindLocal(reference, out string local, env))
            return local;
        using var downloader = new HubDownloader(env);
        return await downloader.PullAsync(reference, progress, cancellationToken).ConfigureAwait(false);
    }

    /// <summary>Asks the hub for the file's commit, hash, size and download location (no body is fetched).</summary>
    public async Task<HubFileMetadata> GetMetadataAsync(ModelReference reference, CancellationToken cancellationToken = default)
    {
        Uri uri = ResolveUri(reference);
        string? commit = null, etag = null;
        long? size = null;
        for (int hop = 0; hop <= MaxRedirects; hop++)
        {
            using var request = NewRequest(HttpMethod.Head, uri, includeToken: IsHubHost(uri));
            using HttpResponseMessage response = await SendAsync(request, reference, MetadataTimeout, cancellationToken).ConfigureAwait(false);
            // The hub puts the facts on its own response (often a 302 to the CDN); keep the first values seen.
            commit ??= Header(response, "X-Repo-Commit");
            etag ??= NormalizeETag(Header(response, "X-Linked-Etag"));
            size ??= long.TryParse(Header(response, "X-Linked-Size"), out long linked) ? linked : null;

            if (IsRedirect(response.StatusCode) && response.Headers.Location is { } location)
            {
                uri = location.IsAbsoluteUri ? location : new Uri(uri, location);
                continue;
            }
            ThrowForStatus(response, reference);
            etag ??= NormalizeETag(response.Headers.ETag?.Tag ?? Header(response, "ETag"));
            size ??= response.Content.Headers.ContentLength;
            if (etag is null)
                throw new HubException($"{ResolveUri(reference)} returned no ETag, so the download cannot be verified");
            return new HubFileMetadata(commit, etag, size, uri);
        }
        throw new HubException($"{ResolveUri(reference)}: more than {MaxRedirects} redirects");
    }

    /// <summary>
    /// Downloads the file into the hub cache (resuming a partial download) and returns the snapshot
    /// path. Throws a <see cref="HubException"/> subtype with a clear message on failure.
    /// </summary>
    public async Task<string> PullAsync(ModelReference reference, IProgress<DownloadProgress>? progress = null,
        CancellationToken cancellationToken = default)
    {
        HubFileMetadata meta = await GetMetadataAsync(reference, cancellationToken).ConfigureAwait(false);
        string repoDir = ModelLocator.RepoCacheDirectory(reference, _env);
        string blobs = Path.Combine(repoDir, "blobs");
        CreateCacheFolder(blobs);
        string blob = Path.Combine(blobs, meta.ETag);

        if (!File.Exists(blob) || (meta.Size is { } expected && new FileInfo(blob).Length != expected))
            await DownloadBlobAsync(reference, meta, blob, progress, cancellationToken).ConfigureAwait(false);
        else
            progress?.Report(new DownloadProgress(reference.File, new FileInfo(blob).Length, meta.Size, new FileInfo(blob).Length));

        string commit = meta.Commit ?? reference.Revision;
        string snapshot = ModelLocator.SnapshotPath(repoDir, commit, reference.File);
        LinkSnapshot(snapshot, blob);
        if (meta.Commit is not null && meta.Commit != reference.Revision)
        {
            string refFile = Path.Combine([repoDir, "refs", .. reference.Revision.Split('/')]);
            Directory.CreateDirectory(Path.GetDirectoryName(refFile)!);
            await File.WriteAllTextAsync(refFile, meta.Commit, cancellationToken).ConfigureAwait(false);
        }
        return snapshot;
    }

    /// <summary>Creates a folder of the cache; a cache that cannot hold one is a <see cref="HubException"/> naming it and the variables that place it.</summary>
    private void CreateCacheFolder(string folder)
    {
        string cache = ModelLocator.HubCacheDirectory(_env);
        if (SpecialFiles.PseudoFileSystemProblem(folder) is { } problem)
            throw new HubException($"cannot write the Hugging Face cache '{cache}': {problem}; set HF_HUB_CACHE or HF_HOME to a folder on a disk");
        try
        {
            Directory.CreateDirectory(folder);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            string? file = null;
            for (string? at = Path.GetFullPath(folder); at is not null && file is null; at = Path.GetDirectoryName(at))
                file = File.Exists(at) ? at : null;
            string why = file is not null ? $"'{file}' is a file, not a folder"
                : e is UnauthorizedAccessException ? "this user may not create folders there" : e.Message.TrimEnd('.');
            throw new HubException($"cannot write the Hugging Face cache '{cache}': {why}; set HF_HUB_CACHE or HF_HOME to a folder this user may write", e);
        }
    }

    private async Task DownloadBlobAsync(ModelReference reference, HubFileMetadata meta, string blob,
        IProgress<DownloadProgress>? progress, CancellationToken cancellationToken)
    {
        string incomplete = blob + ".incomplete";
        long offset = File.Exists(incomplete) ? new FileInfo(incomplete).Length : 0;
        if (meta.Size is { } size && offset > size)
        {
            File.Delete(incomplete);
            offset = 0;
        }

        using HttpResponseMessage response = await GetBodyAsync(reference, meta.DownloadUri, offset, cancellationToken).ConfigureAwait(false);
        if (response.StatusCode == HttpStatusCode.RequestedRangeNotSatisfiable)
        {
            // The partial file already holds every byte (we were interrupted between the last write and the rename).
            VerifyAndPromote(reference, meta, incomplete, blob);
            return;
        }
        if (response.StatusCode == HttpStatusCode.PartialContent && response.Content.Headers.ContentRange?.From is { } from && from != offset)
        {
            File.Delete(incomplete);
            throw new HubTransferInterruptedException(
                $"{reference}: asked to resume at byte {offset:N0} but the server sent bytes from {from:N0}; the partial file was discarded, pull again",
                new InvalidDataException("unexpected Content-Range"));
        }
        if (response.StatusCode != HttpStatusCode.PartialContent)
            offset = 0; // the server ignored Range: start over

        long? total = meta.Size ?? (response.Content.Headers.ContentLength is { } len ? len + offset : null);
        // In whole 2 MB writes at 2 MB offsets: the page cache then holds the model in 2 MB folios, which
        // the engine can map in place instead of copying (WeightStorage.Auto).
        await using (var file = AlignedWriteStream.Create(incomplete, offset == 0 ? FileMode.Create : FileMode.Append))
        {
            Stream body = await response.Content.ReadAsStreamAsync(cancellationToken).ConfigureAwait(false);
            byte[] buffer = new byte[BufferSize];
            long done = offset;
            progress?.Report(new DownloadProgress(reference.File, done, total, offset));
            TimeSpan idleLimit = SilenceLimit(DownloadTimeout);
            using var idle = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
            try
            {
                int read;
                while ((read = await body.ReadAsync(buffer, Rearm(idle, idleLimit)).ConfigureAwait(false)) > 0)
                {
                    await file.WriteAsync(buffer.AsMemory(0, read), cancellationToken).ConfigureAwait(false);
                    done += read;
                    progress?.Report(new DownloadProgress(reference.File, done, total, offset));
                }
            }
            catch (Exception e) when (e is IOException or HttpRequestException
                || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
            {
                await file.FlushAsync(CancellationToken.None).ConfigureAwait(false);
                string why = e is OperationCanceledException ? $"no data for {idleLimit.TotalSeconds:0.#} s, {DownloadTimeout}" : e.Message;
                throw new HubTransferInterruptedException(
                    $"download of {reference} stopped at {done:N0} of {total?.ToString("N0") ?? "?"} bytes ({why}); " +
                    "run the same pull again to resume", e);
            }
            if (total is { } t && done < t)
                throw new HubTransferInterruptedException(
                    $"download of {reference} ended early at {done:N0} of {t:N0} bytes; run the same pull again to resume",
                    new EndOfStreamException());
        }
        VerifyAndPromote(reference, meta, incomplete, blob);
    }

    private async Task<HttpResponseMessage> GetBodyAsync(ModelReference reference, Uri uri, long offset, CancellationToken cancellationToken)
    {
        for (int hop = 0; hop <= MaxRedirects; hop++)
        {
            var request = NewRequest(HttpMethod.Get, uri, includeToken: IsHubHost(uri));
            if (offset > 0)
                request.Headers.Range = new RangeHeaderValue(offset, null);
            HttpResponseMessage response = await SendAsync(request, reference, DownloadTimeout, cancellationToken, HttpCompletionOption.ResponseHeadersRead).ConfigureAwait(false);
            if (IsRedirect(response.StatusCode) && response.Headers.Location is { } location)
            {
                uri = location.IsAbsoluteUri ? location : new Uri(uri, location);
                response.Dispose();
                continue;
            }
            if (response.StatusCode != HttpStatusCode.RequestedRangeNotSatisfiable)
                ThrowForStatus(response, reference);
            return response;
        }
        throw new HubException($"{ResolveUri(reference)}: more than {MaxRedirects} redirects");
    }

    private static void VerifyAndPromote(ModelReference reference, HubFileMetadata meta, string incomplete, string blob)
    {
        long length = new FileInfo(incomplete).Length;
        if (meta.Size is { } size && length != size)
        {
            File.Delete(incomplete);
            throw new HubIntegrityException($"{reference}: downloaded {length:N0} bytes but the hub announced {size:N0}; the partial file was deleted, pull again");
        }

        string? actual = null;
        if (meta.ETagIsSha256)
            actual = HashFile(incomplete, HashAlgorithmName.SHA256, prefix: null);
        else if (meta.ETagIsGitSha1)
            actual = HashFile(incomplete, HashAlgorithmName.SHA1, prefix: Encoding.ASCII.GetBytes($"blob {length}\0"));
        if (actual is not null && !string.Equals(actual, meta.ETag, StringComparison.OrdinalIgnoreCase))
        {
            File.Delete(incomplete);
            throw new HubIntegrityException(
                $"{reference}: content hash {actual} does not match the hub's {meta.ETag}; the corrupt download was deleted, pull again");
        }
        File.Move(incomplete, blob, overwrite: true);
    }

    /// <summary>Lowercase hex hash of a file, optionally over a prefix first (git hashes "blob {size}\0" + content).</summary>
    internal static string HashFile(string path, HashAlgorithmName algorithm, byte[]? prefix)
    {
        using var hash = IncrementalHash.CreateHash(algorithm);
        if (prefix is not null)
            hash.AppendData(prefix);
        using var stream = new FileStream(path, FileMode.Open, FileAccess.Read, FileShare.Read, BufferSize);
        byte[] buffer = new byte[BufferSize];
        int read;
        while ((read = stream.Read(buffer)) > 0)
            hash.AppendData(buffer, 0, read);
        return Convert.ToHexStringLower(hash.GetHashAndReset());
    }

    private static void LinkSnapshot(string snapshot, string blob)
    {
        Directory.CreateDirectory(Path.GetDirectoryName(snapshot)!);
        if (File.Exists(snapshot) || new FileInfo(snapshot).LinkTarget is not null)
            File.Delete(snapshot);
        try
        {
            // Relative, like huggingface_hub, so the cache folder can be moved or mounted elsewhere.
            File.CreateSymbolicLink(snapshot, Path.GetRelativePath(Path.GetDirectoryName(snapshot)!, blob));
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException or PlatformNotSupportedException)
        {
            File.Copy(blob, snapshot, overwrite: true); // file systems without symlinks
        }
    }

    private HttpRequestMessage NewRequest(HttpMethod method, Uri uri, bool includeToken)
    {
        var request = new HttpRequestMessage(method, uri);
        request.Headers.UserAgent.ParseAdd("bitnet-serverless/1.0");
        string? token = _env.GetVariable("HF_TOKEN") ?? _env.GetVariable("HUGGING_FACE_HUB_TOKEN");
        if (includeToken && token is not null)
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", token);
        return request;
    }

    /// <summary>The token, cancelled after <paramref name="limit"/> from now (each call restarts the clock).</summary>
    private static CancellationToken Rearm(CancellationTokenSource source, TimeSpan limit)
    {
        source.CancelAfter(limit);
        return source.Token;
    }

    private async Task<HttpResponseMessage> SendAsync(HttpRequestMessage request, ModelReference reference, string timeoutVariable,
        CancellationToken cancellationToken, HttpCompletionOption completion = HttpCompletionOption.ResponseContentRead)
    {
        TimeSpan limit = SilenceLimit(timeoutVariable);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(limit);
        try
        {
            return await _http.SendAsync(request, completion, timeout.Token).ConfigureAwait(false);
        }
        catch (HttpRequestException e)
        {
            throw new HubUnreachableException(
                $"cannot reach {request.RequestUri?.GetLeftPart(UriPartial.Authority)} to fetch {reference} ({e.Message}); " +
                "check the network or proxy, set HF_ENDPOINT for a mirror, or download the file another way and give the other commands its path (-m PATH or BITNET_MODEL)", e);
        }
        catch (TaskCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new HubUnreachableException(
                $"{request.RequestUri?.GetLeftPart(UriPartial.Authority)} did not answer within {limit.TotalSeconds:0.#} s ({timeoutVariable}) " +
                $"to fetch {reference}; check the network, or raise {timeoutVariable}", e);
        }
        catch (SocketException e)
        {
            throw new HubUnreachableException($"cannot reach the hub to fetch {reference} ({e.Message})", e);
        }
    }

    private void ThrowForStatus(HttpResponseMessage response, ModelReference reference)
    {
        if (response.IsSuccessStatusCode)
            return;
        int code = (int)response.StatusCode;
        bool hasToken = (_env.GetVariable("HF_TOKEN") ?? _env.GetVariable("HUGGING_FACE_HUB_TOKEN")) is not null;
        throw response.StatusCode switch
        {
            HttpStatusCode.Unauthorized or HttpStatusCode.Forbidden => new HubAuthenticationException(
                $"{ResolveUri(reference)} answered {code} {response.ReasonPhrase}: " +
                (hasToken
                    ? "HF_TOKEN was sent but is not accepted for this repository (wrong token, or access to a gated model not yet granted)"
                    : "the repository is gated or private; create a token at https://huggingface.co/settings/tokens and set HF_TOKEN")),
            HttpStatusCode.NotFound => new HubNotFoundException(
                $"{ResolveUri(reference)} answered 404: no file '{reference.File}' at revision '{reference.Revision}' of '{reference.Repo}' " +
                "(check the spelling; private repositories also answer 404 without HF_TOKEN)"),
            _ => new HubException($"{ResolveUri(reference)} answered {code} {response.ReasonPhrase}"),
        };
    }

    private bool IsHubHost(Uri uri) => Uri.Compare(uri, Endpoint, UriComponents.SchemeAndServer, UriFormat.Unescaped, StringComparison.OrdinalIgnoreCase) == 0;

    private static bool IsRedirect(HttpStatusCode status) => (int)status is 301 or 302 or 303 or 307 or 308;

    private static string? Header(HttpResponseMessage response, string name) =>
        response.Headers.TryGetValues(name, out var values) ? values.FirstOrDefault()
        : response.Content.Headers.TryGetValues(name, out var contentValues) ? contentValues.FirstOrDefault()
        : null;

    /// <summary>Strips the weak marker and quotes: <c>W/"abc"</c> → <c>abc</c>.</summary>
    internal static string? NormalizeETag(string? etag)
    {
        if (string.IsNullOrWhiteSpace(etag))
            return null;
        string value = etag.Trim();
        if (value.StartsWith("W/", StringComparison.Ordinal))
            value = value[2..];
        value = value.Trim('"');
        return value.Length == 0 || value.Contains('/') || value.Contains('\\') ? null : value;
    }

    private static string EscapePath(string file) => string.Join('/', file.Split('/').Select(Uri.EscapeDataString));

    public void Dispose()
    {
        if (_ownsClient)
            _http.Dispose();
    }
}
