using BitNet.Hosts.Http;
using BitNet.Inference.Api;

namespace BitNet.Hosts.Tests;

/// <summary>The listen URLs a host and port make (<see cref="BindAddress"/>).</summary>
public sealed class BindAddressTests
{
    [Fact]
    public void Port_0_with_several_addresses_is_refused_naming_them()
    {
        var ex = Assert.Throws<ConfigurationException>(() => BindAddress.Urls(["127.0.0.1", "::1"], 0));
        Assert.Contains("127.0.0.1, ::1", ex.Message);
        Assert.Contains("port 0", ex.Message);
    }

    [Fact]
    public void A_fixed_port_binds_every_address_on_that_port()
    {
        Assert.Equal("http://127.0.0.1:8080;http://[::1]:8080", BindAddress.Urls(["127.0.0.1", "::1"], 8080));
    }

    [Theory]
    [InlineData("127.0.0.1", "http://127.0.0.1:0")]
    [InlineData("localhost", "http://127.0.0.1:0")]
    [InlineData("::1", "http://[::1]:0")]
    public void Port_0_with_one_address_picks_a_free_port_on_it(string host, string url)
    {
        Assert.Equal(url, BindAddress.Urls([host], 0));
    }

    [Fact]
    public void A_port_out_of_range_is_refused()
    {
        Assert.Throws<ConfigurationException>(() => BindAddress.Urls(["127.0.0.1"], 65536));
    }
}
