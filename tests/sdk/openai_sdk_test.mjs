// The official OpenAI Node SDK against a running llmeta: run by tests/it/openai_sdk.rs.
//
// Environment: LLMETA_BASE_URL (`http://127.0.0.1:PORT/v1`), LLMETA_API_KEY (a working key), LLMETA_REVOKED_KEY
// (a revoked one), LLMETA_MODEL (a model served by the mock upstream), LLMETA_EXPECT_MODELS (comma-separated ids
// the model list must contain).
//
// Prints one line per check (`ok NAME` or `FAIL NAME: why`), and one `CALL {json}` line per call that should be
// recorded, with what its record must say; the Rust test reads those. Exits 1 when any check failed.

import OpenAI from 'openai';

const BASE_URL = process.env.LLMETA_BASE_URL;
const KEY = process.env.LLMETA_API_KEY;
const REVOKED_KEY = process.env.LLMETA_REVOKED_KEY;
const MODEL = process.env.LLMETA_MODEL || 'mock';
const EXPECT_MODELS = (process.env.LLMETA_EXPECT_MODELS || MODEL).split(',').filter(Boolean);

// No retries: a failure must show as a failure, not as a second call in the records.
const client = new OpenAI({ baseURL: BASE_URL, apiKey: KEY, maxRetries: 0, timeout: 60_000 });

const WEATHER_TOOL = {
  type: 'function',
  function: {
    name: 'get_weather',
    description: 'The weather in a city now.',
    parameters: {
      type: 'object',
      properties: { city: { type: 'string' } },
      required: ['city'],
    },
  },
};

// The mock counts, as llama.cpp does, one token per answer chunk and the end-of-sequence token when it stops.
const EOS = 1;

const failures = [];

async function check(name, fn) {
  try {
    await fn();
    console.log(`ok ${name}`);
  } catch (e) {
    // Every failure is reported, and the other checks still run.
    failures.push(name);
    console.log(`FAIL ${name}: ${e?.constructor?.name}: ${e?.message}`);
    console.error(e?.stack);
  }
}

function expect(cond, why) {
  if (!cond) throw new Error(why);
}

/** The mock's prompt tokens: the words of every message. */
function words(...texts) {
  return texts.reduce((n, t) => n + t.split(/\s+/).filter(Boolean).length, 0);
}

function callId(completionId) {
  expect(completionId.startsWith('chatcmpl-'), `id ${completionId} is not chatcmpl-…`);
  return completionId.slice('chatcmpl-'.length);
}

/** Tells the Rust test what the call's record must hold. */
function record(id, streamed, usage, tool = null) {
  const line = {
    client: 'node',
    id,
    streamed,
    input_tokens: usage.prompt_tokens,
    output_tokens: usage.completion_tokens,
    tool,
  };
  console.log('CALL ' + JSON.stringify(line));
}

function checkUsage(usage, prompt, completion) {
  expect(usage, 'no usage');
  expect(usage.prompt_tokens === prompt, `prompt_tokens ${usage.prompt_tokens}, expected ${prompt}`);
  expect(
    usage.completion_tokens === completion,
    `completion_tokens ${usage.completion_tokens}, expected ${completion}`,
  );
  expect(
    usage.total_tokens === usage.prompt_tokens + usage.completion_tokens,
    `total_tokens ${usage.total_tokens} is not prompt + completion`,
  );
}

await check('models list', async () => {
  const ids = [];
  for await (const m of client.models.list()) ids.push(m.id);
  for (const m of EXPECT_MODELS) expect(ids.includes(m), `${m} not in ${ids}`);
});

await check('non-streamed completion', async () => {
  const prompt = 'Say five words mock:tokens=5';
  const r = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: prompt }] });
  expect(r.object === 'chat.completion', `object ${r.object}`);
  expect(r.model === MODEL, `model ${r.model}, asked ${MODEL}`);
  expect(r.choices.length === 1, `${r.choices.length} choices`);
  const c = r.choices[0];
  expect(c.message.role === 'assistant', `role ${c.message.role}`);
  expect(c.message.content === 'tok1 tok2 tok3 tok4 tok5', `content ${JSON.stringify(c.message.content)}`);
  expect(c.finish_reason === 'stop', `finish_reason ${c.finish_reason}`);
  expect(!c.message.tool_calls?.length, 'tool calls in a text answer');
  checkUsage(r.usage, words(prompt), 5 + EOS);
  record(callId(r.id), false, r.usage);
});

await check('streamed completion with usage', async () => {
  const prompt = 'Count to four mock:tokens=4';
  const stream = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: prompt }],
    stream: true,
    stream_options: { include_usage: true },
  });
  let text = '';
  const finish = [];
  const usageChunks = [];
  const ids = new Set();
  for await (const chunk of stream) {
    ids.add(chunk.id);
    expect(chunk.object === 'chat.completion.chunk', `object ${chunk.object}`);
    expect(chunk.model === MODEL, `chunk model ${chunk.model}`);
    if (chunk.usage) {
      expect(Array.isArray(chunk.choices) && chunk.choices.length === 0, 'the usage chunk has choices');
      usageChunks.push(chunk.usage);
      continue;
    }
    expect(chunk.choices.length === 1, `${chunk.choices.length} choices in a chunk`);
    const ch = chunk.choices[0];
    text += ch.delta.content ?? '';
    if (ch.finish_reason != null) finish.push(ch.finish_reason);
  }
  expect(text === 'tok1 tok2 tok3 tok4', `joined deltas ${JSON.stringify(text)}`);
  expect(finish.length === 1 && finish[0] === 'stop', `finish reasons ${finish}`);
  expect(usageChunks.length === 1, `${usageChunks.length} usage chunks`);
  expect(ids.size === 1, `chunk ids differ: ${[...ids]}`);
  checkUsage(usageChunks[0], words(prompt), 4 + EOS);
  record(callId([...ids][0]), true, usageChunks[0]);
});

await check('max_tokens small gives finish_reason length', async () => {
  const prompt = 'Talk a lot mock:tokens=50';
  const r = await client.chat.completions.create({
    model: MODEL,
    messages: [{ role: 'user', content: prompt }],
    max_tokens: 3,
  });
  const c = r.choices[0];
  expect(c.finish_reason === 'length', `finish_reason ${c.finish_reason}`);
  expect(c.message.content === 'tok1 tok2 tok3', `content ${JSON.stringify(c.message.content)}`);
  expect(r.usage.completion_tokens === 3, `completion_tokens ${r.usage.completion_tokens}`);
  record(callId(r.id), false, r.usage);
});

/** Asks with a tool, gets its call, answers it with the tool's result, and gets a text answer. */
async function toolRound(streamed) {
  const messages = [{ role: 'user', content: 'What is the weather in Paris? mock:tool=get_weather' }];
  const ask = async () => {
    if (!streamed) {
      return client.chat.completions.create({ model: MODEL, messages, tools: [WEATHER_TOOL] });
    }
    // The SDK's own accumulator of streamed chunks: it checks their shape as it joins them.
    const s = client.chat.completions.stream({
      model: MODEL,
      messages,
      tools: [WEATHER_TOOL],
      stream_options: { include_usage: true },
    });
    return s.finalChatCompletion();
  };
  const first = await ask();
  const c = first.choices[0];
  expect(c.finish_reason === 'tool_calls', `finish_reason ${c.finish_reason}`);
  const calls = c.message.tool_calls ?? [];
  expect(calls.length === 1, `${calls.length} tool calls`);
  const call = calls[0];
  expect(call.type === 'function', `type ${call.type}`);
  expect(call.id?.startsWith('call_'), `tool call id ${call.id}`);
  expect(call.function.name === 'get_weather', `name ${call.function.name}`);
  const args = JSON.parse(call.function.arguments);
  expect(JSON.stringify(args) === '{"city":"Paris"}', `arguments ${call.function.arguments}`);
  expect(c.message.content == null, `content ${c.message.content} beside a tool call`);
  // The mock streams a call as four pieces, and ends it with the end-of-sequence token.
  checkUsage(first.usage, words(messages[0].content), 4 + EOS);
  record(callId(first.id), streamed, first.usage, {
    name: call.function.name,
    id: call.id,
    arguments: call.function.arguments,
  });

  // The assistant message as the SDK returned it, sent back whole.
  messages.push(c.message);
  messages.push({ role: 'tool', tool_call_id: call.id, content: JSON.stringify({ temp_c: 21 }) });
  const second = await ask();
  const c2 = second.choices[0];
  expect(c2.finish_reason === 'stop', `finish_reason after the tool result ${c2.finish_reason}`);
  expect(c2.message.content?.includes('21'), `the answer ${c2.message.content} does not use the result`);
  expect(!c2.message.tool_calls?.length, 'another tool call after the tool result');
  record(callId(second.id), streamed, second.usage);
}

await check('tool round trip, not streamed', () => toolRound(false));
await check('tool round trip, streamed', () => toolRound(true));

async function expectError(cls, status, fn, { code, says, forbidden = [] } = {}) {
  try {
    await fn();
  } catch (e) {
    expect(e instanceof cls, `${e?.constructor?.name} (${e?.message}), expected ${cls.name}`);
    expect(e.status === status, `status ${e.status}, expected ${status}`);
    if (code !== undefined) expect(e.code === code, `code ${e.code}, expected ${code}`);
    const message = e.error?.message ?? '';
    if (says !== undefined) expect(message.includes(says), `message ${message} does not say ${says}`);
    for (const secret of forbidden) {
      expect(!String(e.message).includes(secret) && !message.includes(secret), 'the error shows the key');
    }
    return e;
  }
  throw new Error(`no ${cls.name}`);
}

/** A key of the right form whose secret is wrong. */
function wrongKey() {
  return KEY.slice(0, -1) + (KEY.endsWith('a') ? 'b' : 'a');
}

await check('wrong key is AuthenticationError 401', async () => {
  const bad = new OpenAI({ baseURL: BASE_URL, apiKey: wrongKey(), maxRetries: 0 });
  await expectError(
    OpenAI.AuthenticationError,
    401,
    () => bad.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }),
    { code: 'invalid_api_key', says: 'Incorrect API key provided', forbidden: [wrongKey(), KEY] },
  );
  await expectError(OpenAI.AuthenticationError, 401, () => bad.models.list(), { code: 'invalid_api_key' });
});

await check('revoked key is AuthenticationError 401', async () => {
  const revoked = new OpenAI({ baseURL: BASE_URL, apiKey: REVOKED_KEY, maxRetries: 0 });
  await expectError(
    OpenAI.AuthenticationError,
    401,
    () =>
      revoked.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], stream: true }),
    { code: 'revoked_api_key', says: 'revoked', forbidden: [REVOKED_KEY] },
  );
});

await check('unknown model is NotFoundError 404 model_not_found', async () => {
  await expectError(
    OpenAI.NotFoundError,
    404,
    () => client.chat.completions.create({ model: 'no-such-model', messages: [{ role: 'user', content: 'hi' }] }),
    { code: 'model_not_found', says: 'no-such-model' },
  );
});

await check('temperature 5 is BadRequestError 400', async () => {
  const e = await expectError(OpenAI.BadRequestError, 400, () =>
    client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }], temperature: 5 }),
  );
  expect(e.param === 'temperature', `param ${e.param}`);
});

if (failures.length) {
  console.log(`${failures.length} checks failed: ${failures.join(', ')}`);
  process.exit(1);
}
console.log('node sdk checks passed');
