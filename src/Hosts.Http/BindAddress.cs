using System.Net;
using System.Net.NetworkInformation;
using System.Net.Sockets;
using BitNet.Inference.Api;

namespace BitNet.Hosts.Http;

/// <summary>
/// What a --host value binds: an IP address of this machine (0.0.0.0 or :: for every interface),
/// "localhost", or a name that resolves to addresses of this machine. Anything else is an error
/// naming the value; Kestrel would otherwise listen on every interface for a name it cannot bind.
/// </summary>
public static class BindAddress
{
    private static readonly TimeSpan ResolveTimeout = TimeSpan.FromSeconds(5);

    /// <summary>The hosts to put in listen URLs: "localhost" or IP literals. Throws <see cref="ConfigurationException"/>.</summary>
    public static IReadOnlyList<string> Resolve(string host)
    {
        string name = host.Trim();
        if (name.Length == 0)
            throw new ConfigurationException("the host to listen on is empty; give an IP address such as 127.0.0.1 or 0.0.0.0");
        if (name.Equals("localhost", StringComparison.OrdinalIgnoreCase))
            return ["localhost"];

        string literal = name.StartsWith('[') && name.EndsWith(']') ? name[1..^1] : name;
        bool looksNumeric = literal.All(c => char.IsAsciiDigit(c) || c == '.') || literal.Contains(':');
        if (looksNumeric)
        {
            // IPAddress.TryParse also takes "10.1" or "10"; a listen address must be written out.
            if (!IPAddress.TryParse(literal, out IPAddress? address) ||
                address.AddressFamily == AddressFamily.InterNetwork && literal.Count(c => c == '.') != 3)
                throw new ConfigurationException($"the host '{host}' is not a valid IP address");
            return IsLocal(address)
                ? [address.ToString()]
                : throw new ConfigurationException($"the host '{host}' is not an address of this machine; use one of its addresses, 127.0.0.1, or 0.0.0.0 for every interface");
        }

        IPAddress[] resolved;
        try
        {
            resolved = Dns.GetHostAddressesAsync(name).WaitAsync(ResolveTimeout).GetAwaiter().GetResult();
        }
        catch (Exception ex) when (ex is SocketException or TimeoutException or ArgumentException)
        {
            throw new ConfigurationException($"the host '{host}' does not resolve to an address ({ex.Message.TrimEnd('.')}); give an IP address such as 127.0.0.1 or 0.0.0.0");
        }
        var local = resolved.Where(IsLocal).Select(a => a.ToString()).Distinct().ToList();
        return local.Count > 0
            ? local
            : throw new ConfigurationException(resolved.Length == 0
                ? $"the host '{host}' does not resolve to an address"
                : $"the host '{host}' resolves to {string.Join(", ", resolved.Select(a => a.ToString()))}, not to an address of this machine");
    }

    /// <summary>The listen URLs of <paramref name="host"/> and <paramref name="port"/>, ';'-separated as Kestrel takes them.</summary>
    public static string Urls(string host, int port)
    {
        CheckPort(port);
        return Urls(Resolve(host), port);
    }

    /// <summary>
    /// The listen URLs of resolved hosts (<see cref="Resolve"/>). Port 0 takes one address: Kestrel would
    /// give each address a different free port, and a server is told one port to call.
    /// </summary>
    public static string Urls(IReadOnlyList<string> hosts, int port)
    {
        CheckPort(port);
        if (port == 0 && hosts.Count > 1)
            throw new ConfigurationException($"port 0 (any free port) needs one address, and the host resolves to {string.Join(", ", hosts)}; " +
                "give one of those addresses as the host, or a fixed port");
        // Kestrel cannot pick a free port for "localhost" (two addresses, one port); the IPv4 loopback can.
        return string.Join(';', hosts.Select(h => ServerRunner.Url(port == 0 && h == "localhost" ? "127.0.0.1" : h, port)));
    }

    private static void CheckPort(int port)
    {
        if (port is < 0 or > 65535)
            throw new ConfigurationException($"the port {port} is out of range: 1 to 65535, or 0 for any free port");
    }

    private static bool IsLocal(IPAddress address)
    {
        if (address.Equals(IPAddress.Any) || address.Equals(IPAddress.IPv6Any) || IPAddress.IsLoopback(address))
            return true;
        IPAddress plain = address.AddressFamily == AddressFamily.InterNetworkV6 ? new IPAddress(address.GetAddressBytes()) : address;
        try
        {
            return NetworkInterface.GetAllNetworkInterfaces()
                .SelectMany(n => n.GetIPProperties().UnicastAddresses)
                .Any(u => (u.Address.AddressFamily == AddressFamily.InterNetworkV6 ? new IPAddress(u.Address.GetAddressBytes()) : u.Address).Equals(plain));
        }
        catch (NetworkInformationException)
        {
            return false;
        }
    }
}
