using System.Net;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;

namespace BitNet.Hosts.Tests;

/// <summary>
/// One model is loaded, so any "model" a client sends is answered by it and the response names the
/// real id (as llama.cpp's server does); the opt-in strict mode refuses other names with OpenAI's 404.
/// </summary>
public sealed class ModelNameTests
{
    private static readonly CancellationToken Ct = TestContext.Current.CancellationToken;

    private static async Task<(int Status, JsonElement Body)> PostAsync(TestServer server, string path, string json)
    {
        HttpResponseMessage response = await server.Client.PostAsync(path, new StringContent(json, Encoding.UTF8, "application/json"), Ct);
        return ((int)response.StatusCode, JsonDocument.Parse(await response.Content.ReadAsStringAsync(Ct)).RootElement.Clone());
    }

    [Theory]
    [InlineData("bitnet")]
    [InlineData("gpt-4o-mini")]
    [InlineData("fake-model")]
    [InlineData("")]
    public async Task Any_model_name_is_answered_by_the_loaded_model_under_its_real_id(string name)
    {
        await using var server = await TestServer.StartAsync(new FakeTextGenerator());
        var chat = await PostAsync(server, "/v1/chat/completions", $$"""{"model":"{{name}}","messages":[{"role":"user","content":"hi"}],"max_tokens":2}""");
        Assert.Equal(200, chat.Status);
        Assert.Equal("fake-model", chat.Body.GetProperty("model").GetString());

        var completion = await PostAsync(server, "/v1/completions", $$"""{"model":"{{name}}","prompt":"hi","max_tokens":2}""");
        Assert.Equal(200, completion.Status);
        Assert.Equal("fake-model", completion.Body.GetProperty("model").GetString());
    }

    [Theory]
    [InlineData("/v1/chat/completions", """{"model":"gpt-4o","messages":[{"role":"user","content":"hi"}]}""")]
    [InlineData("/v1/completions", """{"model":"davinci-002","prompt":"hi"}""")]
    public async Task Strict_mode_refuses_another_models_name_with_404_model_not_found(string path, string json)
    {
        var fake = new FakeTextGenerator();
        await using var server = await TestServer.StartAsync(fake, new ApiOptions { StrictModel = true });
        var (status, body) = await PostAsync(server, path, json);
        Assert.Equal(404, status);
        JsonElement error = body.GetProperty("error");
        Assert.Equal("model_not_found", error.GetProperty("code").GetString());
        Assert.Equal("model", error.GetProperty("param").GetString());
        Assert.Equal("invalid_request_error", error.GetProperty("type").GetString());
        Assert.Contains("fake-model", error.GetProperty("message").GetString());
        Assert.Equal(0, fake.Generations);
    }

    [Theory]
    [InlineData("fake-model")]
    [InlineData("FAKE-MODEL")]
    [InlineData("fake-model.gguf")]
    public async Task Strict_mode_accepts_the_loaded_models_id_and_file_name(string name)
    {
        await using var server = await TestServer.StartAsync(new FakeTextGenerator(), new ApiOptions { StrictModel = true });
        var (status, _) = await PostAsync(server, "/v1/chat/completions", $$"""{"model":"{{name}}","messages":[{"role":"user","content":"hi"}],"max_tokens":1}""");
        Assert.Equal(200, status);
    }

    [Theory]
    [InlineData("true", true)]
    [InlineData("1", true)]
    [InlineData("false", false)]
    [InlineData(null, false)]
    public void BITNET_STRICT_MODEL_turns_strict_mode_on(string? value, bool strict)
    {
        var env = new BitNet.Inference.Hub.DictionaryEnvironment(new Dictionary<string, string?> { [EnvVars.StrictModel] = value }, "/tmp");
        Assert.Equal(strict, ApiOptions.FromEnvironment(env).StrictModel);
    }
}
