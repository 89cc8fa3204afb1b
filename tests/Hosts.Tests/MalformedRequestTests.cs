using System.Net.Http.Headers;
using System.Text;
using System.Text.Json;
using BitNet.Hosts.Tests.Support;
using BitNet.Inference.Api;

namespace BitNet.Hosts.Tests;

/// <summary>One running server (fake engine, 512-token context) for the whole table.</summary>
public sealed class MalformedRequestServer : IAsyncLifetime
{
    internal TestServer Server { get; private set; } = null!;
    internal FakeTextGenerator Fake { get; } = new(contextLength: 512);

    public async ValueTask InitializeAsync() => Server = await TestServer.StartAsync(Fake, new ApiOptions { MaxRequestBytes = 64 * 1024 });
    public ValueTask DisposeAsync() => Server.DisposeAsync();
}

/// <summary>
/// A table of malformed requests, each a different mistake: every one is answered with the exact
/// 4xx it deserves, in the OpenAI error shape, with a message, a "code" naming the kind of mistake
/// and the offending field as "param" where there is one — never a 5xx, never a generation.
/// </summary>
public sealed class MalformedRequestTests(MalformedRequestServer fixture) : IClassFixture<MalformedRequestServer>
{
    private const string Chat = "/v1/chat/completions";
    private const string Completions = "/v1/completions";
    private const string Legacy = "/completion";
    private const string User = """{"role":"user","content":"hi"}""";
    private static readonly string LongText = new('x', 600); // > the 512-token context of the fake

    private static string B64(string s) => Convert.ToBase64String(Encoding.UTF8.GetBytes(s));
    private static string WithMessages(string extra) => $$"""{"messages":[{{User}}]{{extra}}}""";

    public static readonly TheoryData<string, string, string, string, int, string?, string> Cases = new()
    {
        // name, method, path, body, status, param, code
        { "empty body", "POST", Chat, "", 400, null, "invalid_json" },
        { "whitespace body", "POST", Chat, "  \n ", 400, null, "invalid_json" },
        { "JSON null", "POST", Chat, "null", 400, null, "invalid_type" },
        { "JSON array", "POST", Chat, "[]", 400, null, "invalid_type" },
        { "JSON number", "POST", Chat, "42", 400, null, "invalid_type" },
        { "JSON string", "POST", Chat, "\"hello\"", 400, null, "invalid_type" },
        { "truncated object", "POST", Chat, "{\"messages\":", 400, null, "invalid_json" },
        { "unclosed array", "POST", Chat, "{\"messages\":[}", 400, null, "invalid_json" },
        { "trailing comma", "POST", Chat, "{\"messages\":[],}", 400, null, "invalid_json" },
        { "comment", "POST", Chat, "{/* hi */\"messages\":[]}", 400, null, "invalid_json" },
        { "single quotes", "POST", Chat, "{'messages':[]}", 400, null, "invalid_json" },
        { "unquoted key", "POST", Chat, "{messages:[]}", 400, null, "invalid_json" },
        { "missing messages", "POST", Chat, "{}", 400, "messages", "missing_required_parameter" },
        { "messages null", "POST", Chat, """{"messages":null}""", 400, "messages", "missing_required_parameter" },
        { "messages empty", "POST", Chat, """{"messages":[]}""", 400, "messages", "invalid_value" },
        { "messages a string", "POST", Chat, """{"messages":"hi"}""", 400, "messages", "invalid_type" },
        { "messages an object", "POST", Chat, """{"messages":{"role":"user"}}""", 400, "messages", "invalid_type" },
        { "message a number", "POST", Chat, """{"messages":[1]}""", 400, "messages[0]", "invalid_type" },
        { "message null", "POST", Chat, """{"messages":[null]}""", 400, "messages[0]", "invalid_type" },
        { "role missing", "POST", Chat, """{"messages":[{"content":"x"}]}""", 400, "messages[0].role", "missing_required_parameter" },
        { "role unknown", "POST", Chat, """{"messages":[{"role":"robot","content":"x"}]}""", 400, "messages[0].role", "invalid_value" },
        { "tool message without tool_call_id", "POST", Chat, """{"messages":[{"role":"tool","content":"x"}]}""", 400, "messages[0].tool_call_id", "missing_required_parameter" },
        { "tool message without content", "POST", Chat, """{"messages":[{"role":"tool","tool_call_id":"1"}]}""", 400, "messages[0].content", "missing_required_parameter" },
        { "tool_calls a string", "POST", Chat, $$"""{"messages":[{{User}},{"role":"assistant","content":null,"tool_calls":"f"}]}""", 400, "messages[1].tool_calls", "invalid_type" },
        { "assistant content null without tool_calls", "POST", Chat, $$"""{"messages":[{{User}},{"role":"assistant","content":null}]}""", 400, "messages[1].content", "missing_required_parameter" },
        { "assistant content null with empty tool_calls", "POST", Chat, $$"""{"messages":[{{User}},{"role":"assistant","content":null,"tool_calls":[]}]}""", 400, "messages[1].content", "missing_required_parameter" },
        { "role a number", "POST", Chat, """{"messages":[{"role":5,"content":"x"}]}""", 400, "messages[0].role", "invalid_type" },
        { "content missing", "POST", Chat, """{"messages":[{"role":"user"}]}""", 400, "messages[0].content", "missing_required_parameter" },
        { "content null", "POST", Chat, """{"messages":[{"role":"user","content":null}]}""", 400, "messages[0].content", "missing_required_parameter" },
        { "content a number", "POST", Chat, """{"messages":[{"role":"user","content":5}]}""", 400, "messages[0].content", "invalid_type" },
        { "content an object", "POST", Chat, """{"messages":[{"role":"user","content":{"text":"x"}}]}""", 400, "messages[0].content", "invalid_type" },
        { "content part image", "POST", Chat, """{"messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"http://x/y.png"}}]}]}""", 400, "messages[0].content", "invalid_value" },
        { "content part without text", "POST", Chat, """{"messages":[{"role":"user","content":[{"type":"text"}]}]}""", 400, "messages[0].content", "missing_required_parameter" },
        { "content part text a number", "POST", Chat, """{"messages":[{"role":"user","content":[{"type":"text","text":5}]}]}""", 400, "messages[0].content", "invalid_type" },
        { "content parts not objects", "POST", Chat, """{"messages":[{"role":"user","content":["x"]}]}""", 400, "messages[0].content", "invalid_type" },
        { "name a number", "POST", Chat, """{"messages":[{"role":"user","content":"x","name":5}]}""", 400, "messages[0].name", "invalid_type" },
        { "second message bad role", "POST", Chat, $$"""{"messages":[{{User}},{"role":"","content":"x"}]}""", 400, "messages[1].role", "invalid_value" },
        { "max_tokens 0", "POST", Chat, WithMessages(""","max_tokens":0"""), 400, "max_tokens", "invalid_value" },
        { "max_tokens negative", "POST", Chat, WithMessages(""","max_tokens":-5"""), 400, "max_tokens", "invalid_value" },
        { "max_tokens a string", "POST", Chat, WithMessages(""","max_tokens":"10" """), 400, "max_tokens", "invalid_type" },
        { "max_tokens fractional", "POST", Chat, WithMessages(""","max_tokens":1.5"""), 400, "max_tokens", "invalid_type" },
        { "max_tokens 1e400", "POST", Chat, WithMessages(""","max_tokens":1e400"""), 400, "max_tokens", "invalid_type" },
        { "max_tokens beyond int32 as a float", "POST", Chat, WithMessages(""","max_tokens":2147483648.0"""), 400, "max_tokens", "invalid_type" },
        { "n a hair above 1", "POST", Chat, WithMessages(""","n":1.0000000000000000000000000001"""), 400, "n", "invalid_type" },
        { "top_k fractional by its exponent", "POST", Chat, WithMessages(""","top_k":15e-1"""), 400, "top_k", "invalid_type" },
        { "seed beyond int64 as an exponent", "POST", Chat, WithMessages(""","seed":1e19"""), 400, "seed", "invalid_type" },
        { "max_tokens boolean", "POST", Chat, WithMessages(""","max_tokens":true"""), 400, "max_tokens", "invalid_type" },
        { "max_tokens beyond context", "POST", Chat, WithMessages(""","max_tokens":100000"""), 400, "max_tokens", "context_length_exceeded" },
        { "max_tokens overflows int32", "POST", Chat, WithMessages(""","max_tokens":1099511627776"""), 400, "max_tokens", "invalid_type" },
        { "max_tokens an array", "POST", Chat, WithMessages(""","max_tokens":[5]"""), 400, "max_tokens", "invalid_type" },
        { "max_completion_tokens 0", "POST", Chat, WithMessages(""","max_completion_tokens":0"""), 400, "max_completion_tokens", "invalid_value" },
        { "max_completion_tokens beyond context", "POST", Chat, WithMessages(""","max_completion_tokens":5000"""), 400, "max_completion_tokens", "context_length_exceeded" },
        { "n_predict 0 on chat", "POST", Chat, WithMessages(""","n_predict":0"""), 400, "n_predict", "invalid_value" },
        { "temperature a string", "POST", Chat, WithMessages(""","temperature":"hot" """), 400, "temperature", "invalid_type" },
        { "temperature negative", "POST", Chat, WithMessages(""","temperature":-1"""), 400, "temperature", "invalid_value" },
        { "temperature above 2", "POST", Chat, WithMessages(""","temperature":3"""), 400, "temperature", "invalid_value" },
        { "top_p above 1", "POST", Chat, WithMessages(""","top_p":1.5"""), 400, "top_p", "invalid_value" },
        { "top_p negative", "POST", Chat, WithMessages(""","top_p":-0.1"""), 400, "top_p", "invalid_value" },
        { "top_p a string", "POST", Chat, WithMessages(""","top_p":"x" """), 400, "top_p", "invalid_type" },
        { "top_k a string", "POST", Chat, WithMessages(""","top_k":"x" """), 400, "top_k", "invalid_type" },
        { "top_k fractional", "POST", Chat, WithMessages(""","top_k":1.5"""), 400, "top_k", "invalid_type" },
        { "min_p above 1", "POST", Chat, WithMessages(""","min_p":2"""), 400, "min_p", "invalid_value" },
        { "repeat_penalty 0", "POST", Chat, WithMessages(""","repeat_penalty":0"""), 400, "repeat_penalty", "invalid_value" },
        { "repeat_penalty a string", "POST", Chat, WithMessages(""","repeat_penalty":"x" """), 400, "repeat_penalty", "invalid_type" },
        { "repeat_last_n -2", "POST", Chat, WithMessages(""","repeat_last_n":-2"""), 400, "repeat_last_n", "invalid_value" },
        { "presence_penalty above 2", "POST", Chat, WithMessages(""","presence_penalty":3"""), 400, "presence_penalty", "invalid_value" },
        { "frequency_penalty below -2", "POST", Chat, WithMessages(""","frequency_penalty":-3"""), 400, "frequency_penalty", "invalid_value" },
        { "presence_penalty a string", "POST", Chat, WithMessages(""","presence_penalty":"x" """), 400, "presence_penalty", "invalid_type" },
        { "seed a string", "POST", Chat, WithMessages(""","seed":"abc" """), 400, "seed", "invalid_type" },
        { "seed fractional", "POST", Chat, WithMessages(""","seed":1.5"""), 400, "seed", "invalid_type" },
        { "stop a number", "POST", Chat, WithMessages(""","stop":5"""), 400, "stop", "invalid_type" },
        { "stop numbers", "POST", Chat, WithMessages(""","stop":[1,2]"""), 400, "stop", "invalid_type" },
        { "stop empty string", "POST", Chat, WithMessages(""","stop":[""]"""), 400, "stop", "invalid_value" },
        { "stop too many", "POST", Chat, WithMessages(""","stop":["a","b","c","d","e","f","g","h","i","j","k","l","m","n","o","p","q"]"""), 400, "stop", "invalid_value" },
        { "stop an object", "POST", Chat, WithMessages(""","stop":{"a":1}"""), 400, "stop", "invalid_type" },
        { "stream a string", "POST", Chat, WithMessages(""","stream":"yes" """), 400, "stream", "invalid_type" },
        { "stream a number", "POST", Chat, WithMessages(""","stream":1"""), 400, "stream", "invalid_type" },
        { "stream_options a string", "POST", Chat, WithMessages(""","stream":true,"stream_options":"x" """), 400, "stream_options", "invalid_type" },
        { "include_usage a string", "POST", Chat, WithMessages(""","stream":true,"stream_options":{"include_usage":"yes"}"""), 400, "stream_options.include_usage", "invalid_type" },
        { "n 17", "POST", Chat, WithMessages(""","n":17"""), 400, "n", "invalid_value" },
        { "n 0", "POST", Chat, WithMessages(""","n":0"""), 400, "n", "invalid_value" },
        { "n a string", "POST", Chat, WithMessages(""","n":"1" """), 400, "n", "invalid_type" },
        { "model a number", "POST", Chat, WithMessages(""","model":5"""), 400, "model", "invalid_type" },
        { "tool_choice required", "POST", Chat, WithMessages(""","tool_choice":"required" """), 400, "tool_choice", "unsupported_parameter" },
        { "tool_choice a function", "POST", Chat, WithMessages(""","tool_choice":{"type":"function","function":{"name":"f"}}"""), 400, "tool_choice", "unsupported_parameter" },
        { "tool_choice a number", "POST", Chat, WithMessages(""","tool_choice":5"""), 400, "tool_choice", "invalid_type" },
        { "tool_choice unknown word", "POST", Chat, WithMessages(""","tool_choice":"always" """), 400, "tool_choice", "invalid_value" },
        { "tool_choice with a lone surrogate", "POST", Chat, WithMessages(""","tool_choice":"\ud800" """), 400, "tool_choice", "invalid_encoding" },
        { "tool_choice with invalid UTF-8", "POST", Chat, WithMessages(""","tool_choice":"<FF>" """), 400, "tool_choice", "invalid_encoding" },
        { "content with a lone surrogate", "POST", Chat, """{"messages":[{"role":"user","content":"a\ud800b"}]}""", 400, "messages[0].content", "invalid_encoding" },
        { "content part with a lone surrogate", "POST", Chat, """{"messages":[{"role":"user","content":[{"type":"text","text":"\udc00"}]}]}""", 400, "messages[0].content", "invalid_encoding" },
        { "content with invalid UTF-8", "POST", Chat, """{"messages":[{"role":"user","content":"a<FF FE>b"}]}""", 400, "messages[0].content", "invalid_encoding" },
        { "role with invalid UTF-8", "POST", Chat, """{"messages":[{"role":"us<C0>er","content":"x"}]}""", 400, "messages[0].role", "invalid_encoding" },
        { "seed below -1", "POST", Chat, WithMessages(""","seed":-5"""), 400, "seed", "invalid_value" },
        { "n_predict -2 on chat", "POST", Chat, WithMessages(""","n_predict":-2"""), 400, "n_predict", "invalid_value" },
        { "max_tokens -1 on chat", "POST", Chat, WithMessages(""","max_tokens":-1"""), 400, "max_tokens", "invalid_value" },
        { "logit_bias above 100", "POST", Chat, WithMessages(""","logit_bias":{"5":101}"""), 400, "logit_bias", "invalid_value" },
        { "logit_bias below -100", "POST", Chat, WithMessages(""","logit_bias":{"5":-100.5}"""), 400, "logit_bias", "invalid_value" },
        { "logit_bias key not a token id", "POST", Chat, WithMessages(""","logit_bias":{"hello":1}"""), 400, "logit_bias", "invalid_value" },
        { "logit_bias key negative", "POST", Chat, WithMessages(""","logit_bias":{"-1":1}"""), 400, "logit_bias", "invalid_value" },
        { "logit_bias key beyond vocabulary", "POST", Chat, WithMessages(""","logit_bias":{"256":1}"""), 400, "logit_bias", "invalid_value" },
        { "logit_bias value a string", "POST", Chat, WithMessages(""","logit_bias":{"5":"x"}"""), 400, "logit_bias.5", "invalid_type" },
        { "logit_bias an array", "POST", Chat, WithMessages(""","logit_bias":[5]"""), 400, "logit_bias", "invalid_type" },
        { "user a number", "POST", Chat, WithMessages(""","user":5"""), 400, "user", "invalid_type" },
        { "stop an empty string", "POST", Chat, WithMessages(""","stop":"" """), 400, "stop", "invalid_value" },
        { "top_logprobs without logprobs", "POST", Chat, WithMessages(""","top_logprobs":2"""), 400, "top_logprobs", "invalid_value" },
        { "top_logprobs 0 with logprobs false", "POST", Chat, WithMessages(""","logprobs":false,"top_logprobs":0"""), 400, "top_logprobs", "invalid_value" },
        { "top_logprobs above 20", "POST", Chat, WithMessages(""","logprobs":true,"top_logprobs":21"""), 400, "top_logprobs", "invalid_value" },
        { "top_logprobs negative", "POST", Chat, WithMessages(""","logprobs":true,"top_logprobs":-1"""), 400, "top_logprobs", "invalid_value" },
        { "logprobs a number on chat", "POST", Chat, WithMessages(""","logprobs":1"""), 400, "logprobs", "invalid_type" },
        { "message a string", "POST", Chat, """{"messages":["hi"]}""", 400, "messages[0]", "invalid_type" },
        { "second message null", "POST", Chat, $$"""{"messages":[{{User}},null]}""", 400, "messages[1]", "invalid_type" },
        { "completions logit_bias above 100", "POST", Completions, """{"prompt":"a","logit_bias":{"5":1000}}""", 400, "logit_bias", "invalid_value" },
        { "completions user an object", "POST", Completions, """{"prompt":"a","user":{}}""", 400, "user", "invalid_type" },
        { "tools", "POST", Chat, WithMessages(""","tools":[{"type":"function","function":{"name":"f"}}]"""), 400, "tools", "unsupported_parameter" },
        { "tools a string", "POST", Chat, WithMessages(""","tools":"f" """), 400, "tools", "invalid_type" },
        { "tools an object", "POST", Chat, WithMessages(""","tools":{"type":"function"}"""), 400, "tools", "invalid_type" },
        { "response_format json_object", "POST", Chat, WithMessages(""","response_format":{"type":"json_object"}"""), 400, "response_format.type", "unsupported_parameter" },
        { "response_format a string", "POST", Chat, WithMessages(""","response_format":"json" """), 400, "response_format", "invalid_type" },
        { "prompt longer than the context", "POST", Chat, $$"""{"messages":[{"role":"user","content":"{{LongText}}"}]}""", 400, "messages", "context_length_exceeded" },
        { "nesting deeper than 64", "POST", Chat, "{\"messages\":[" + User + "],\"extra\":" + new string('[', 70) + new string(']', 70) + "}", 400, null, "invalid_json" },
        { "invalid UTF-8", "POST", Chat, "\u00ff\u00fe{bytes}", 400, null, "invalid_json" },
        // /v1/completions
        { "completions prompt missing", "POST", Completions, """{"max_tokens":3}""", 400, "prompt", "missing_required_parameter" },
        { "completions prompt null", "POST", Completions, """{"prompt":null}""", 400, "prompt", "missing_required_parameter" },
        { "completions prompt a number", "POST", Completions, """{"prompt":5}""", 400, "prompt", "invalid_type" },
        { "completions two prompts", "POST", Completions, """{"prompt":["a","b"]}""", 400, "prompt", "invalid_value" },
        { "completions empty token list", "POST", Completions, """{"prompt":[]}""", 400, "prompt", "invalid_value" },
        { "completions mixed prompt", "POST", Completions, """{"prompt":[1,"a"]}""", 400, "prompt", "invalid_type" },
        { "completions negative token id", "POST", Completions, """{"prompt":[-1]}""", 400, "prompt", "invalid_value" },
        { "completions token id beyond vocabulary", "POST", Completions, """{"prompt":[999999]}""", 400, "prompt", "invalid_value" },
        { "completions negative token id among others", "POST", Completions, """{"prompt":[-1,5]}""", 400, "prompt", "invalid_value" },
        { "completions fractional token id", "POST", Completions, """{"prompt":[5,1.5]}""", 400, "prompt", "invalid_type" },
        { "completions token id beyond int32", "POST", Completions, """{"prompt":[5,4294967296]}""", 400, "prompt", "invalid_type" },
        { "completions two token lists", "POST", Completions, """{"prompt":[[1],[2]]}""", 400, "prompt", "invalid_value" },
        { "completions token list beside ids", "POST", Completions, """{"prompt":[[1],2]}""", 400, "prompt", "invalid_type" },
        { "completions token list beside a string", "POST", Completions, """{"prompt":["a",[2]]}""", 400, "prompt", "invalid_type" },
        { "completions string in a token list", "POST", Completions, """{"prompt":[["a"]]}""", 400, "prompt", "invalid_type" },
        { "completions list in a token list", "POST", Completions, """{"prompt":[[1,[2]]]}""", 400, "prompt", "invalid_type" },
        { "completions prompt with a lone surrogate", "POST", Completions, """{"prompt":"\udfff"}""", 400, "prompt", "invalid_encoding" },
        { "completions max_tokens -1", "POST", Completions, """{"prompt":"a","max_tokens":-1}""", 400, "max_tokens", "invalid_value" },
        { "completions parse_special a string", "POST", Completions, """{"prompt":"a","parse_special":"yes"}""", 400, "parse_special", "invalid_type" },
        { "completions best_of 2", "POST", Completions, """{"prompt":"a","best_of":2}""", 400, "best_of", "invalid_value" },
        { "completions best_of 3 for n 2", "POST", Completions, """{"prompt":"a","n":2,"best_of":3}""", 400, "best_of", "invalid_value" },
        { "completions suffix", "POST", Completions, """{"prompt":"a","suffix":"z"}""", 400, "suffix", "unsupported_parameter" },
        { "completions echo a string", "POST", Completions, """{"prompt":"a","echo":"yes"}""", 400, "echo", "invalid_type" },
        { "completions max_tokens 0", "POST", Completions, """{"prompt":"a","max_tokens":0}""", 400, "max_tokens", "invalid_value" },
        { "completions n_predict -2", "POST", Completions, """{"prompt":"a","n_predict":-2}""", 400, "n_predict", "invalid_value" },
        { "completions prompt longer than the context", "POST", Completions, $$"""{"prompt":"{{LongText}}"}""", 400, "prompt", "context_length_exceeded" },
        { "completions stop an empty string", "POST", Completions, """{"prompt":"a","stop":["x",""]}""", 400, "stop", "invalid_value" },
        { "completions stop too many", "POST", Completions, """{"prompt":"a","stop":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]}""", 400, "stop", "invalid_value" },
        { "completions logprobs above 20", "POST", Completions, """{"prompt":"a","logprobs":21}""", 400, "logprobs", "invalid_value" },
        { "completions logprobs with echo", "POST", Completions, """{"prompt":"a","logprobs":1,"echo":true}""", 400, "logprobs", "unsupported_parameter" },
        { "completions JSON null", "POST", Completions, "null", 400, null, "invalid_type" },
        { "completions empty body", "POST", Completions, "", 400, null, "invalid_json" },
        { "completions temperature above 2", "POST", Completions, """{"prompt":"a","temperature":2.5}""", 400, "temperature", "invalid_value" },
        { "completions n 0", "POST", Completions, """{"prompt":"a","n":0}""", 400, "n", "invalid_value" },
        // The seed payload (/completion, /)
        { "legacy neither JSON nor base64", "POST", Legacy, "hello world!", 400, null, "invalid_json" },
        { "legacy base64 of text", "POST", Legacy, B64("hello there"), 400, null, "invalid_json" },
        { "legacy prompt missing", "POST", Legacy, """{"n_predict":5}""", 400, "prompt", "missing_required_parameter" },
        { "legacy prompt a number", "POST", Legacy, """{"prompt":5}""", 400, "prompt", "invalid_type" },
        { "legacy two prompts", "POST", Legacy, """{"prompt":["a","b"]}""", 400, "prompt", "invalid_value" },
        { "legacy empty token list", "POST", Legacy, """{"prompt":[]}""", 400, "prompt", "invalid_value" },
        { "legacy token id beyond vocabulary", "POST", Legacy, """{"prompt":[1,256]}""", 400, "prompt", "invalid_value" },
        { "legacy n_predict a string", "POST", Legacy, """{"prompt":"a","n_predict":"5"}""", 400, "n_predict", "invalid_type" },
        { "legacy n_predict fractional", "POST", Legacy, """{"prompt":"a","n_predict":2.5}""", 400, "n_predict", "invalid_type" },
        { "legacy n_predict 0", "POST", Legacy, """{"prompt":"a","n_predict":0}""", 400, "n_predict", "invalid_value" },
        { "legacy n_predict beyond context", "POST", Legacy, """{"prompt":"a","n_predict":100000}""", 400, "n_predict", "context_length_exceeded" },
        { "legacy temperature a string", "POST", "/", """{"prompt":"a","temperature":"warm"}""", 400, "temperature", "invalid_type" },
        { "legacy base64 with a wrong type", "POST", "/", B64("""{"prompt":"a","top_k":"many"}"""), 400, "top_k", "invalid_type" },
        { "legacy keep_warm a string", "POST", "/", """{"keep_warm":"yes"}""", 400, "keep_warm", "invalid_type" },
        { "legacy stream a string", "POST", Legacy, """{"prompt":"a","stream":"yes"}""", 400, "stream", "invalid_type" },
        { "legacy quoted non-base64", "POST", Legacy, "\"%%%\"", 400, null, "invalid_json" },
        { "legacy JSON null", "POST", Legacy, "null", 400, null, "invalid_type" },
        { "legacy JSON true", "POST", "/", "true", 400, null, "invalid_type" },
        { "legacy JSON number", "POST", Legacy, "1234", 400, null, "invalid_type" },
        { "legacy n_predict -2", "POST", Legacy, """{"prompt":"a","n_predict":-2}""", 400, "n_predict", "invalid_value" },
        { "legacy prompt with invalid UTF-8", "POST", Legacy, """{"prompt":"<FF>"}""", 400, "prompt", "invalid_encoding" },
        { "legacy parse_special a number", "POST", Legacy, """{"prompt":"a","parse_special":1}""", 400, "parse_special", "invalid_type" },
        { "legacy quoted body with a lone surrogate", "POST", Legacy, "\"\\ud800\"", 400, null, "invalid_encoding" },
        { "legacy quoted body with invalid UTF-8", "POST", "/", "\"eyJw<FF>\"", 400, null, "invalid_encoding" },
        { "legacy prompt with a lone surrogate", "POST", Legacy, """{"prompt":"a\udc00"}""", 400, "prompt", "invalid_encoding" },
        { "legacy stop an empty string", "POST", Legacy, """{"prompt":"a","stop":""}""", 400, "stop", "invalid_value" },
        { "legacy stop too many", "POST", Legacy, """{"prompt":"a","stop":["1","2","3","4","5","6","7","8","9","10","11","12","13","14","15","16","17"]}""", 400, "stop", "invalid_value" },
        { "legacy empty body", "POST", Legacy, "", 400, null, "invalid_json" },
        { "legacy prompt empty", "POST", Legacy, """{"prompt":""}""", 400, "prompt", "invalid_value" },
        { "legacy top_p above 1", "POST", Legacy, """{"prompt":"a","top_p":1.5}""", 400, "top_p", "invalid_value" },
        { "legacy seed below -1", "POST", Legacy, """{"prompt":"a","seed":-2}""", 400, "seed", "invalid_value" },
        // /tokenize and /detokenize
        { "tokenize empty body", "POST", "/tokenize", "", 400, null, "invalid_json" },
        { "tokenize JSON null", "POST", "/tokenize", "null", 400, null, "invalid_type" },
        { "tokenize JSON array", "POST", "/tokenize", "[]", 400, null, "invalid_type" },
        { "tokenize truncated", "POST", "/tokenize", "{\"content\":", 400, null, "invalid_json" },
        { "tokenize content missing", "POST", "/tokenize", "{}", 400, "content", "missing_required_parameter" },
        { "tokenize content null", "POST", "/tokenize", """{"content":null}""", 400, "content", "missing_required_parameter" },
        { "tokenize content a number", "POST", "/tokenize", """{"content":5}""", 400, "content", "invalid_type" },
        { "tokenize add_special a string", "POST", "/tokenize", """{"content":"a","add_special":"yes"}""", 400, "add_special", "invalid_type" },
        { "tokenize with_pieces a number", "POST", "/tokenize", """{"content":"a","with_pieces":1}""", 400, "with_pieces", "invalid_type" },
        { "tokenize content with a lone surrogate", "POST", "/tokenize", """{"content":"\ud800"}""", 400, "content", "invalid_encoding" },
        { "detokenize empty body", "POST", "/detokenize", "", 400, null, "invalid_json" },
        { "detokenize JSON null", "POST", "/detokenize", "null", 400, null, "invalid_type" },
        { "detokenize tokens missing", "POST", "/detokenize", "{}", 400, "tokens", "missing_required_parameter" },
        { "detokenize tokens a string", "POST", "/detokenize", """{"tokens":"1 2"}""", 400, "tokens", "invalid_type" },
        { "detokenize token id negative", "POST", "/detokenize", """{"tokens":[1,-1]}""", 400, "tokens[1]", "invalid_value" },
        { "detokenize token id beyond vocabulary", "POST", "/detokenize", """{"tokens":[256]}""", 400, "tokens[0]", "invalid_value" },
        { "detokenize token id fractional", "POST", "/detokenize", """{"tokens":[1.5]}""", 400, "tokens[0]", "invalid_type" },
        { "detokenize token id null", "POST", "/detokenize", """{"tokens":[null]}""", 400, "tokens[0]", "invalid_type" },
        { "GET on tokenize", "GET", "/tokenize", "", 405, null, "method_not_allowed" },
        // Routes and sizes
        { "unknown route", "POST", "/v1/embeddings", """{"input":"x"}""", 404, null, "unknown_url" },
        { "unknown GET route", "GET", "/v2/models", "", 404, null, "unknown_url" },
        { "GET on chat", "GET", Chat, "", 405, null, "method_not_allowed" },
        { "DELETE on models", "DELETE", "/v1/models", "", 405, null, "method_not_allowed" },
        { "PUT on completions", "PUT", Completions, """{"prompt":"a"}""", 405, null, "method_not_allowed" },
        { "body over the size limit", "POST", Completions, "{\"prompt\":\"" + new string('y', 70 * 1024) + "\"}", 413, null, "request_too_large" },
    };

    /// <summary>The body as UTF-8, except that "&lt;FF FE&gt;" stands for those raw (invalid) bytes.</summary>
    private static byte[] Bytes(string body)
    {
        var bytes = new List<byte>();
        int at = 0;
        foreach (System.Text.RegularExpressions.Match raw in System.Text.RegularExpressions.Regex.Matches(body, "<([0-9A-F]{2}(?: [0-9A-F]{2})*)>"))
        {
            bytes.AddRange(Encoding.UTF8.GetBytes(body[at..raw.Index]));
            bytes.AddRange(raw.Groups[1].Value.Split(' ').Select(h => Convert.ToByte(h, 16)));
            at = raw.Index + raw.Length;
        }
        bytes.AddRange(Encoding.UTF8.GetBytes(body[at..]));
        return [.. bytes];
    }

    /// <summary>The refusals whose message must say precisely what is wrong, not only which field.</summary>
    public static readonly TheoryData<string, string> PreciseMessages = new()
    {
        { "content with a lone surrogate", "'messages[0].content' is not valid text: it holds invalid UTF-8 or a lone UTF-16 surrogate" },
        { "content with invalid UTF-8", "'messages[0].content' is not valid text" },
        { "completions prompt with a lone surrogate", "'prompt' is not valid text" },
        { "completions negative token id among others", "prompt token ids must be from 0 to 255 (the vocabulary); got -1" },
        { "completions token id beyond vocabulary", "prompt token ids must be from 0 to 255 (the vocabulary); got 999999" },
        { "completions fractional token id", "token ids must be integers in the vocabulary; got 1.5" },
        { "max_tokens 1e400", "'max_tokens' must be an integer" },
        { "n a hair above 1", "'n' must be an integer" },
        { "legacy n_predict fractional", "'n_predict' must be an integer" },
        { "tool_choice with a lone surrogate", "'tool_choice' is not valid text" },
        { "tool_choice required", "tool_choice 'required' needs tools, which this model server does not support" },
        { "seed below -1", "seed must be -1 (random) or a non-negative integer; got -5" },
        { "legacy JSON null", "the request body must be a JSON object, not null" },
        { "legacy token id beyond vocabulary", "prompt token ids must be from 0 to 255 (the vocabulary); got 256" },
        { "legacy JSON number", "the request body must be a JSON object" },
        { "tools a string", "'tools' must be an array" },
        { "logit_bias above 100", "logit_bias values must be between -100 and 100; got 101 for token 5" },
        { "logit_bias key beyond vocabulary", "logit_bias keys must be token ids from 0 to 255 (the vocabulary); got '256'" },
        { "logit_bias an array", "'logit_bias' must be an object" },
        { "legacy quoted body with a lone surrogate", "the request body is not valid text: it holds invalid UTF-8 or a lone UTF-16 surrogate" },
        { "legacy quoted body with invalid UTF-8", "the request body is not valid text" },
        { "legacy prompt with a lone surrogate", "'prompt' is not valid text" },
    };

    [Theory]
    [MemberData(nameof(PreciseMessages))]
    public async Task Refusal_says_what_is_wrong(string name, string message)
    {
        var row = Cases.Single(r => r.Data.Item1 == name).Data;
        var request = new HttpRequestMessage(HttpMethod.Post, row.Item3)
        {
            Content = new ByteArrayContent(Bytes(row.Item4)) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } },
        };
        HttpResponseMessage response = await fixture.Server.Client.SendAsync(request, TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Contains(message, JsonDocument.Parse(text).RootElement.GetProperty("error").GetProperty("message").GetString());
    }

    /// <summary>Strings that are not text where no field of ours is read: an ignored field's value, an object's key, at any depth.</summary>
    public static readonly TheoryData<string, string, string?> TextOutsideTheReadFields = new()
    {
        // path, body, param
        { Chat, WithMessages(""","metadata":{"note":"\ud800"}"""), "metadata.note" },
        { Chat, WithMessages(""","metadata":{"note":"a<FF>b"}"""), "metadata.note" },
        { Chat, WithMessages(""","extra":[1,{"a":["x","\udc00"]}]"""), "extra[1].a[1]" },
        { Chat, WithMessages(""","\ud800":1"""), null },
        { Chat, WithMessages(""","k<C0>":1"""), null },
        { Chat, """{"messages":[{"role":"user","content":"hi","x\udfff":true}]}""", "messages[0]" },
        { Chat, """{"messages":[{"role":"user","content":"hi","<ED A0 80>":true}]}""", "messages[0]" },
        { Chat, """{"messages":[{"role":"user","content":[{"type":"text","text":"hi","<FE>":1}]}]}""", "messages[0].content" },
        { Chat, WithMessages(""","response_format":{"type":"text","\ud800":0}"""), "response_format" },
        { Chat, WithMessages(""","logit_bias":{"\ud800":1}"""), "logit_bias" },
        { Completions, """{"prompt":"a","user_data":"\ud83d"}""", "user_data" },
        { Completions, """{"prompt":"a","x":"\ud83d\u0041"}""", "x" },
        { Legacy, """{"prompt":"a","cache_prompt":"\udc00\ud800"}""", "cache_prompt" },
        { "/", B64("""{"prompt":"a","\ud800":1}"""), null },
    };

    [Theory]
    [MemberData(nameof(TextOutsideTheReadFields))]
    public async Task A_string_that_is_not_text_is_refused_as_invalid_encoding_wherever_it_is(string path, string body, string? param)
    {
        int generationsBefore = fixture.Fake.Generations;
        var content = new ByteArrayContent(Bytes(body)) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } };
        HttpResponseMessage response = await fixture.Server.Client.PostAsync(path, content, TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.True(response.StatusCode == System.Net.HttpStatusCode.BadRequest, $"{(int)response.StatusCode}: {text}");
        JsonElement error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("invalid_encoding", error.GetProperty("code").GetString());
        Assert.Equal(param, error.GetProperty("param").GetString());
        Assert.Contains("is not valid text: it holds invalid UTF-8 or a lone UTF-16 surrogate", error.GetProperty("message").GetString());
        Assert.Equal(generationsBefore, fixture.Fake.Generations);
    }

    [Fact]
    public async Task Surrogate_pairs_and_escaped_backslashes_in_ignored_fields_and_keys_are_text()
    {
        string body = WithMessages(""","metadata":{"\ud83d\ude00":"\\ud800 \\\ud83d\ude00 \\\\udc00","k\u00e9":["\uD83D\uDE00\\"]}""");
        HttpResponseMessage response = await fixture.Server.Client.PostAsync(Chat,
            new StringContent(body, Encoding.UTF8, "application/json"), TestContext.Current.CancellationToken);
        Assert.Equal(System.Net.HttpStatusCode.OK, response.StatusCode);
    }

    [Fact]
    public async Task A_compressed_body_is_refused_with_415_naming_its_encoding()
    {
        using var compressed = new MemoryStream();
        using (var gzip = new System.IO.Compression.GZipStream(compressed, System.IO.Compression.CompressionLevel.Fastest, leaveOpen: true))
            gzip.Write(Encoding.UTF8.GetBytes(WithMessages("")));
        var content = new ByteArrayContent(compressed.ToArray()) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } };
        content.Headers.ContentEncoding.Add("gzip");
        int generationsBefore = fixture.Fake.Generations;
        HttpResponseMessage response = await fixture.Server.Client.PostAsync(Chat, content, TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);
        Assert.Equal(415, (int)response.StatusCode);
        JsonElement error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.Equal("Content-Encoding 'gzip' is not supported; send the body uncompressed", error.GetProperty("message").GetString());
        Assert.Equal("unsupported_content_encoding", error.GetProperty("code").GetString());
        Assert.Equal(generationsBefore, fixture.Fake.Generations);
    }

    [Fact]
    public async Task A_body_declared_in_another_charset_is_refused_with_415_and_utf_8_is_served()
    {
        int generationsBefore = fixture.Fake.Generations;
        var utf16 = new ByteArrayContent(Encoding.Unicode.GetBytes(WithMessages("")));
        utf16.Headers.ContentType = MediaTypeHeaderValue.Parse("application/json; charset=utf-16");
        HttpResponseMessage response = await fixture.Server.Client.PostAsync(Chat, utf16, TestContext.Current.CancellationToken);
        Assert.Equal(415, (int)response.StatusCode);
        JsonElement error = JsonDocument.Parse(await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken)).RootElement.GetProperty("error");
        Assert.Equal("charset 'utf-16' is not supported; send the body as UTF-8 (JSON's encoding, RFC 8259)", error.GetProperty("message").GetString());
        Assert.Equal("unsupported_charset", error.GetProperty("code").GetString());
        Assert.Equal(generationsBefore, fixture.Fake.Generations);

        foreach (string declared in new[] { "application/json; charset=UTF-8", "application/json;charset=\"utf-8\"", "text/plain; charset=us-ascii" })
        {
            var utf8 = new ByteArrayContent(Encoding.UTF8.GetBytes(WithMessages("")));
            utf8.Headers.TryAddWithoutValidation("Content-Type", declared);
            HttpResponseMessage served = await fixture.Server.Client.PostAsync(Chat, utf8, TestContext.Current.CancellationToken);
            Assert.True(served.StatusCode == System.Net.HttpStatusCode.OK, $"{declared}: {(int)served.StatusCode}");
        }
    }

    [Fact]
    public void The_table_has_at_least_100_distinct_cases()
    {
        var rows = Cases.Select(row => (string)row.Data.Item1 + "|" + row.Data.Item3 + "|" + row.Data.Item4).ToList();
        Assert.True(rows.Count >= 100, $"only {rows.Count} cases");
        Assert.Equal(rows.Count, rows.Distinct().Count());
        Assert.Equal(rows.Count, Cases.Select(row => row.Data.Item4 + row.Data.Item3 + row.Data.Item2).Distinct().Count());
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public async Task Malformed_request_gets_its_status_code_and_param_in_the_openai_error_shape(string name, string method, string path, string body, int status,
        string? param, string code)
    {
        int generationsBefore = fixture.Fake.Generations;
        var request = new HttpRequestMessage(new HttpMethod(method), path);
        if (body.Length > 0 || method is "POST" or "PUT")
        {
            byte[] bytes = name == "invalid UTF-8" ? [0xFF, 0xFE, (byte)'{', 0x80, (byte)'}'] : Bytes(body);
            request.Content = new ByteArrayContent(bytes) { Headers = { ContentType = new MediaTypeHeaderValue("application/json") } };
        }
        HttpResponseMessage response = await fixture.Server.Client.SendAsync(request, TestContext.Current.CancellationToken);
        string text = await response.Content.ReadAsStringAsync(TestContext.Current.CancellationToken);

        Assert.True((int)response.StatusCode == status, $"{name}: expected {status}, got {(int)response.StatusCode}: {text}");
        JsonElement error = JsonDocument.Parse(text).RootElement.GetProperty("error");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("message").GetString()), $"{name}: no message");
        Assert.False(string.IsNullOrWhiteSpace(error.GetProperty("type").GetString()), $"{name}: no type");
        Assert.True(error.TryGetProperty("param", out JsonElement actualParam), $"{name}: param missing");
        Assert.True(error.TryGetProperty("code", out JsonElement actualCode), $"{name}: code missing");
        Assert.True(param == actualParam.GetString(), $"{name}: expected param {param ?? "null"}: {text}");
        Assert.True(code == actualCode.GetString(), $"{name}: expected code {code}: {text}");
        Assert.Equal(generationsBefore, fixture.Fake.Generations);
    }
}
