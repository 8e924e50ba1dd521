// Drive one real Node client library through a list of cases; print one JSON result per case.
//
//   node drive.mjs CLIENT BASE_URL CASES_JSON
//
// Same contract as tests/compat/python/drive.py: each case is {dialect, stream, model,
// cost_in_body, headers}; each result adds ok, error, text, input, output (usage the client
// reports, null when none), headers (x-nadir-* response headers the client exposes, null when it
// exposes none) and nadir (the in-body cost object where the client exposes it). Only each
// library's documented public API is used, the way an application would.

const PROMPT = 'Say hi';

function nadirHeaders(h) {
  if (!h) return null;
  const out = {};
  const entries = typeof h.entries === 'function' ? h.entries() : Object.entries(h);
  for (const [k, v] of entries) if (k.toLowerCase().startsWith('x-nadir-')) out[k.toLowerCase()] = v;
  return out;
}

async function cOpenAI(base, c) {
  const { default: OpenAI } = await import('openai');
  const client = new OpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-compat', maxRetries: 0, defaultHeaders: c.headers });
  if (c.dialect === 'openai_responses') {
    if (!c.stream) {
      const { data, response } = await client.responses.create({ model: c.model, input: PROMPT }).withResponse();
      return { text: data.output_text, input: data.usage.input_tokens, output: data.usage.output_tokens, headers: nadirHeaders(response.headers) };
    }
    const { data: stream, response } = await client.responses.create({ model: c.model, input: PROMPT, stream: true }).withResponse();
    let text = '', out = {};
    for await (const ev of stream) {
      if (ev.type === 'response.output_text.delta') text += ev.delta;
      if (ev.type === 'response.completed') out = { input: ev.response.usage.input_tokens, output: ev.response.usage.output_tokens, nadir: ev.nadir ?? null };
    }
    return { text, headers: nadirHeaders(response.headers), ...out };
  }
  const messages = [{ role: 'user', content: PROMPT }];
  if (!c.stream) {
    const { data, response } = await client.chat.completions.create({ model: c.model, messages }).withResponse();
    return { text: data.choices[0].message.content, input: data.usage.prompt_tokens, output: data.usage.completion_tokens, headers: nadirHeaders(response.headers) };
  }
  // The most common loop: no stream_options, chunk.choices[0].delta.content on every chunk.
  const { data: stream, response } = await client.chat.completions.create({ model: c.model, messages, stream: true }).withResponse();
  let text = '', usage = null, nadir = null;
  for await (const chunk of stream) {
    text += chunk.choices[0].delta.content ?? '';
    usage = chunk.usage ?? usage;
    nadir = chunk.nadir ?? nadir;
  }
  return { text, input: usage?.prompt_tokens ?? null, output: usage?.completion_tokens ?? null, headers: nadirHeaders(response.headers), nadir };
}

async function cAnthropic(base, c) {
  const { default: Anthropic } = await import('@anthropic-ai/sdk');
  const client = new Anthropic({ baseURL: base, apiKey: 'sk-compat', maxRetries: 0, defaultHeaders: c.headers });
  const body = { model: c.model, max_tokens: 200, messages: [{ role: 'user', content: PROMPT }] };
  if (!c.stream) {
    const { data, response } = await client.messages.create(body).withResponse();
    return { text: data.content[0].text, input: data.usage.input_tokens, output: data.usage.output_tokens, headers: nadirHeaders(response.headers) };
  }
  const stream = client.messages.stream(body);
  let text = '';
  stream.on('text', (t) => { text += t; });
  const msg = await stream.finalMessage();
  return { text, input: msg.usage.input_tokens, output: msg.usage.output_tokens };
}

async function cGoogle(base, c) {
  const { GoogleGenAI } = await import('@google/genai');
  const ai = new GoogleGenAI({ apiKey: 'compat-key', httpOptions: { baseUrl: base, headers: c.headers } });
  if (!c.stream) {
    const r = await ai.models.generateContent({ model: c.model, contents: PROMPT });
    return { text: r.text, input: r.usageMetadata.promptTokenCount, output: r.usageMetadata.candidatesTokenCount, headers: nadirHeaders(r.sdkHttpResponse?.headers) };
  }
  let text = '', last = null;
  for await (const chunk of await ai.models.generateContentStream({ model: c.model, contents: PROMPT })) {
    text += chunk.text ?? '';
    last = chunk;
  }
  return { text, input: last.usageMetadata.promptTokenCount, output: last.usageMetadata.candidatesTokenCount, headers: nadirHeaders(last.sdkHttpResponse?.headers) };
}

async function cVercel(base, c) {
  const { generateText, streamText } = await import('ai');
  let model;
  if (c.dialect === 'openai_chat') {
    const { createOpenAI } = await import('@ai-sdk/openai');
    model = createOpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-compat', headers: c.headers }).chat(c.model);
  } else if (c.dialect === 'openai_responses') {
    const { createOpenAI } = await import('@ai-sdk/openai');
    model = createOpenAI({ baseURL: `${base}/v1`, apiKey: 'sk-compat', headers: c.headers }).responses(c.model);
  } else if (c.dialect === 'anthropic') {
    const { createAnthropic } = await import('@ai-sdk/anthropic');
    model = createAnthropic({ baseURL: `${base}/v1`, apiKey: 'sk-compat', headers: c.headers })(c.model);
  } else {
    const { createGoogleGenerativeAI } = await import('@ai-sdk/google');
    model = createGoogleGenerativeAI({ baseURL: `${base}/v1beta`, apiKey: 'compat-key', headers: c.headers })(c.model);
  }
  if (!c.stream) {
    const r = await generateText({ model, prompt: PROMPT, maxRetries: 0 });
    return { text: r.text, input: r.usage.inputTokens ?? null, output: r.usage.outputTokens ?? null, headers: nadirHeaders(r.response?.headers) };
  }
  let err = null;
  const r = streamText({ model, prompt: PROMPT, maxRetries: 0, onError: ({ error }) => { err = error; } });
  let text = '';
  for await (const t of r.textStream) text += t;
  const usage = await r.usage;
  const resp = await r.response;
  if (err) throw err;
  return { text, input: usage.inputTokens ?? null, output: usage.outputTokens ?? null, headers: nadirHeaders(resp?.headers) };
}

const CLIENTS = { openai: cOpenAI, '@anthropic-ai/sdk': cAnthropic, '@google/genai': cGoogle, ai: cVercel };

const [client, baseArg, casesArg] = process.argv.slice(2);
const base = baseArg.replace(/\/$/, '');
const out = [];
for (const c of JSON.parse(casesArg)) {
  const res = { ...c, ok: false, error: null, text: null, input: null, output: null, headers: null, nadir: null };
  try {
    Object.assign(res, await CLIENTS[client](base, c));
    res.ok = true;
  } catch (e) {
    res.error = `${e?.constructor?.name ?? 'Error'}: ${e?.message ?? e}`.slice(0, 1500);
    res.traceback = String(e?.stack ?? '').slice(0, 3000);
  }
  out.push(res);
}
process.stdout.write(JSON.stringify(out));
