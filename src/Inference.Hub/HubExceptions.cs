namespace BitNet.Inference.Hub;

/// <summary>Base type of every failure to fetch a model from the hub; the message says what to do.</summary>
public class HubException(string message, Exception? inner = null) : Exception(message, inner);

/// <summary>401/403: the repository is gated or private, or the token is wrong.</summary>
public sealed class HubAuthenticationException(string message) : HubException(message);

/// <summary>404: no such repository, revision or file.</summary>
public sealed class HubNotFoundException(string message) : HubException(message);

/// <summary>The hub could not be reached at all (DNS, refused connection, timeout).</summary>
public sealed class HubUnreachableException(string message, Exception inner) : HubException(message, inner);

/// <summary>The transfer stopped part-way; the partial file is kept so the next pull resumes.</summary>
public sealed class HubTransferInterruptedException(string message, Exception inner) : HubException(message, inner);

/// <summary>The downloaded bytes do not match the hash the hub published; the partial file is deleted.</summary>
public sealed class HubIntegrityException(string message) : HubException(message);
