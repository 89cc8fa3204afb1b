using System.Net;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;

namespace BitNet.Hosts.Tests;

/// <summary>One running server (fake engine) for the size limits of the request line and headers.</summary>
public sealed class RequestSizeLimitServer : IAsyncLifetime
{
    internal TestServer Server { get; private set; } = null!;
    internal FakeTextGenerator Fake { get; } = new();

    public async ValueTask InitializeAsync() => Server = await TestServer.StartAsync(Fake, new ApiOptions());
    public ValueTask DisposeAsync() => Server.DisposeAsync();
}

/// <summary>
/// A request URL over 8 KiB gets 414, and header fields over 32 KiB in all or more than 100 of them get 431, through the real
/// Kestrel host, in the OpenAI error shape like every other refusal (Kestrel's own answers to these
/// have an empty body). Up to the limits, requests are served; far beyond them Kestrel's hard ceiling
/// still refuses without buffering more.
/// </summary>
public sealed class RequestSizeLimitTests(RequestSizeLimitServer fixture) : IClassFixture<RequestSizeLimitServer>
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;
    private const int TargetLimit = 8192, HeaderLimit = 32768, HeaderCountLimit = 100;

    private HttpClient Client => fixture.Server.Client;

    /// <summary>"/v1/models?pad=xxx…" exactly <paramref name="length"/> bytes long.</summary>
    private static string Target(int length)
    {
        const string start = "/v1/models?pad=";
        return start + new string('x', length - start.Length);
    }

    private static async Task<JsonElement> ErrorOf(HttpResponseMessage response)
    {
        string text = await response.Content.ReadAsStringAsync(Ct);
        Assert.True(text.Length > 0, $"{(int)response.StatusCode} with an empty body");
        Assert.Equal("application/json", response.Content.Headers.ContentType?.MediaType);
        return JsonDocument.Parse(text).RootElement.GetProperty("error").Clone();
    }

    [Fact]
    public async Task A_url_over_8_KiB_gets_414_in_the_openai_error_shape()
    {
        HttpResponseMessage response = await Client.GetAsync(Target(TargetLimit + 1), Ct);
        Assert.Equal(HttpStatusCode.RequestUriTooLong, response.StatusCode);
        JsonElement error = await ErrorOf(response);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("url_too_long", error.GetProperty("code").GetString());
        Assert.Equal($"the request URL is {TargetLimit + 1} bytes long; the limit is {TargetLimit}", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task A_generation_request_with_a_url_over_the_limit_is_refused_before_it_generates()
    {
        int before = fixture.Fake.Generations;
        HttpResponseMessage response = await Client.PostAsync("/v1/completions?pad=" + new string('x', 3 * TargetLimit),
            Sse.Json("""{"prompt":"abc","max_tokens":2}"""), Ct);
        Assert.Equal(HttpStatusCode.RequestUriTooLong, response.StatusCode);
        Assert.Equal("url_too_long", (await ErrorOf(response)).GetProperty("code").GetString());
        Assert.Equal(before, fixture.Fake.Generations);
    }

    [Fact]
    public async Task A_url_of_exactly_8_KiB_is_served()
    {
        HttpResponseMessage response = await Client.GetAsync(Target(TargetLimit), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("list", JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.GetProperty("object").GetString());
    }

    [Fact]
    public async Task Headers_over_32_KiB_in_all_get_431_in_the_openai_error_shape()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        for (int i = 0; i < 5; i++)
            request.Headers.Add($"X-Pad-{i}", new string('h', 8000));
        HttpResponseMessage response = await Client.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
        JsonElement error = await ErrorOf(response);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("headers_too_large", error.GetProperty("code").GetString());
        Assert.StartsWith("the request headers are ", error.GetProperty("message").GetString());
        Assert.EndsWith($" bytes in all; the limit is {HeaderLimit}", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Headers_just_under_32_KiB_are_served()
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        for (int i = 0; i < 3; i++)
            request.Headers.Add($"X-Pad-{i}", new string('h', 10_000));
        HttpResponseMessage response = await Client.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    /// <summary>A GET with <paramref name="extra"/> header fields besides those HttpClient sends (Host).</summary>
    private static HttpRequestMessage WithHeaderFields(int extra)
    {
        var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        for (int i = 0; i < extra; i++)
            request.Headers.Add($"X-Field-{i}", "1");
        return request;
    }

    [Fact]
    public async Task More_than_100_header_fields_get_431_in_the_openai_error_shape()
    {
        HttpResponseMessage response = await Client.SendAsync(WithHeaderFields(HeaderCountLimit + 20), Ct);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, response.StatusCode);
        JsonElement error = await ErrorOf(response);
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Equal("too_many_headers", error.GetProperty("code").GetString());
        Assert.Matches($"^the request has 12[0-9] header fields; the limit is {HeaderCountLimit}$", error.GetProperty("message").GetString());
    }

    [Fact]
    public async Task Up_to_100_header_fields_are_served()
    {
        HttpResponseMessage response = await Client.SendAsync(WithHeaderFields(HeaderCountLimit - 5), Ct);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task Far_beyond_the_limits_the_server_still_refuses_and_keeps_serving()
    {
        HttpResponseMessage url = await Client.GetAsync("/v1/models?pad=" + new string('x', 40_000), Ct);
        Assert.Equal(HttpStatusCode.RequestUriTooLong, url.StatusCode);

        var request = new HttpRequestMessage(HttpMethod.Get, "/v1/models");
        for (int i = 0; i < 10; i++)
            request.Headers.Add($"X-Pad-{i}", new string('h', 16_000));
        HttpResponseMessage headers = await Client.SendAsync(request, Ct);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, headers.StatusCode);

        HttpResponseMessage fields = await Client.SendAsync(WithHeaderFields(5 * HeaderCountLimit), Ct);
        Assert.Equal(HttpStatusCode.RequestHeaderFieldsTooLarge, fields.StatusCode);

        Assert.Equal(HttpStatusCode.OK, (await Client.GetAsync("/health", Ct)).StatusCode);
    }
}
