// Drives the server with the official `openai` npm client exactly as a user would, with the
// model name llama.cpp's examples use ("bitnet"). Prints one JSON object with what it saw.
// Usage: OPENAI_MODULE=<path to node_modules/openai> BASE_URL=http://host:port/v1 node openai-client-check.mjs
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const OpenAI = require(process.env.OPENAI_MODULE).default ?? require(process.env.OPENAI_MODULE);
const client = new OpenAI({ baseURL: process.env.BASE_URL, apiKey: 'not-needed', maxRetries: 0 });
const result = {};

const models = await client.models.list();
result.models = models.data.map(m => m.id);

const chat = await client.chat.completions.create({
  model: 'bitnet',
  messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Say hi.' }],
  max_tokens: 3,
  temperature: 0,
});
result.chat = { model: chat.model, text: chat.choices[0].message.content, finish: chat.choices[0].finish_reason, usage: chat.usage };

let streamed = '';
let streamModel = null;
const stream = await client.chat.completions.create({
  model: 'bitnet',
  messages: [{ role: 'user', content: 'Say hi.' }],
  max_tokens: 3,
  temperature: 0,
  stream: true,
});
for await (const chunk of stream) {
  streamModel = chunk.model;
  streamed += chunk.choices[0]?.delta?.content ?? '';
}
result.stream = { model: streamModel, text: streamed };

const completion = await client.completions.create({ model: 'bitnet', prompt: 'The capital of France is', max_tokens: 3, temperature: 0 });
result.completion = { model: completion.model, text: completion.choices[0].text, usage: completion.usage };

try {
  await client.chat.completions.create({ model: 'bitnet', messages: [{ role: 'user', content: 'x' }], temperature: 7 });
  result.error = null;
} catch (e) {
  result.error = { status: e.status, param: e.param ?? e.error?.param ?? null, code: e.code ?? e.error?.code ?? null };
}

console.log(JSON.stringify(result));
