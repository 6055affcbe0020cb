// A deterministic OpenAI-compatible model server for the real-OpenClaw tests (loopback only,
// no dependencies, Node >= 20). OpenClaw's custom provider with `api: "openai-completions"`
// calls POST <baseUrl>/chat/completions (streaming SSE or not); both are served.
//
// Script (decided from the current turn's user text only, so replies are reproducible):
//  - a marker `[[tool:NAME {json args}]]` in it and no tool result yet in the turn
//        → one tool call of NAME with those arguments (finish_reason "tool_calls");
//  - tool results in the turn
//        → text `mock: tool NAME returned: <first 300 chars of the result>`;
//  - a marker `[[reply:TEXT]]` → text TEXT;
//  - otherwise → text `mock reply: <first 200 chars of the user text>` (OpenClaw's internal
//    context blocks and Runtime footer removed).
//
// Admin: GET /_mock/requests → every request body received, in order (JSON array);
//        GET /_mock/turns → for each request, its current turn's user text (JSON array of strings);
//        GET /_mock/health → 200 "ok".
// Usage: node mock-model.mjs [--port 0]   prints `MOCK_MODEL_URL=http://127.0.0.1:PORT/v1`, then `ready`.

import { createServer } from 'node:http';

const port = Number(process.argv[process.argv.indexOf('--port') + 1] || 0) || 0;
const MODEL = 'mock-model';
const seen = [];

/** The text of a message `content` (a string or a list of parts). */
export function textOf(content) {
  if (typeof content === 'string') return content;
  if (Array.isArray(content)) return content.map((p) => (typeof p === 'string' ? p : (p?.text ?? ''))).join('');
  return '';
}

/** The user's words of a message: OpenClaw's internal-context blocks and Runtime footer removed. */
function userWords(content) {
  return textOf(content)
    .replace(/<<<BEGIN_OPENCLAW_INTERNAL_CONTEXT>>>[\s\S]*?<<<END_OPENCLAW_INTERNAL_CONTEXT>>>/g, '')
    .replace(/\n\nRuntime: [^\n]*$/, '')
    .trim();
}

/** The current turn: everything after the last plain assistant message (OpenClaw sends the user
 * text and a separate internal-context user message; tool calls and results follow in the turn). */
function currentTurn(body) {
  const messages = Array.isArray(body?.messages) ? body.messages : [];
  let start = 0;
  messages.forEach((m, i) => {
    if (m?.role === 'assistant' && !(m.tool_calls?.length > 0)) start = i + 1;
  });
  return messages.slice(start);
}

/** The user's words of the current turn of a request (what the agent was handed this turn). */
export function turnText(body) {
  return currentTurn(body)
    .filter((m) => m?.role === 'user')
    .map((m) => userWords(m.content))
    .filter(Boolean)
    .join('\n');
}

/** The scripted answer for a chat-completions request body: `{ text }` or `{ tool: {name, args} }`. */
export function script(body) {
  const turn = currentTurn(body);
  const userText = turnText(body);
  const toolResults = turn.filter((m) => m?.role === 'tool');
  if (toolResults.length > 0) {
    const calls = turn.flatMap((m) => m?.tool_calls ?? []);
    const name = calls[calls.length - 1]?.function?.name ?? 'unknown';
    const result = textOf(toolResults[toolResults.length - 1].content).slice(0, 300);
    return { text: `mock: tool ${name} returned: ${result}` };
  }
  const tool = /\[\[tool:([A-Za-z0-9_.-]+)\s*(\{.*?\})?\]\]/s.exec(userText);
  if (tool) {
    let args = {};
    try {
      args = tool[2] ? JSON.parse(tool[2]) : {};
    } catch {
      return { text: `mock: bad tool arguments ${tool[2]}` };
    }
    return { tool: { name: tool[1], args } };
  }
  const reply = /\[\[reply:(.*?)\]\]/s.exec(userText);
  if (reply) return { text: reply[1] };
  return { text: `mock reply: ${userText.slice(0, 200)}` };
}

let counter = 0;
function completion(body, answer) {
  counter += 1;
  const id = `chatcmpl-mock-${counter}`;
  const created = 1_700_000_000 + counter;
  const model = body?.model ?? MODEL;
  const usage = { prompt_tokens: 10, completion_tokens: 5, total_tokens: 15 };
  const message = answer.tool
    ? {
        role: 'assistant',
        content: null,
        tool_calls: [{ id: `call_mock_${counter}`, type: 'function', function: { name: answer.tool.name, arguments: JSON.stringify(answer.tool.args) } }],
      }
    : { role: 'assistant', content: answer.text };
  const finish = answer.tool ? 'tool_calls' : 'stop';
  return { id, created, model, usage, message, finish };
}

function sendJson(res, status, value) {
  const bytes = Buffer.from(JSON.stringify(value));
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': bytes.length });
  res.end(bytes);
}

function sendStream(res, c, includeUsage) {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' });
  const chunk = (delta, finish_reason = null, extra = {}) =>
    res.write(`data: ${JSON.stringify({ id: c.id, object: 'chat.completion.chunk', created: c.created, model: c.model, choices: [{ index: 0, delta, finish_reason }], ...extra })}\n\n`);
  chunk({ role: 'assistant', content: '' });
  if (c.message.tool_calls) {
    const call = c.message.tool_calls[0];
    chunk({ tool_calls: [{ index: 0, id: call.id, type: 'function', function: { name: call.function.name, arguments: '' } }] });
    chunk({ tool_calls: [{ index: 0, function: { arguments: call.function.arguments } }] });
  } else {
    // Two deltas so that streaming consumers really accumulate.
    const text = c.message.content;
    const cut = Math.ceil(text.length / 2);
    chunk({ content: text.slice(0, cut) });
    if (cut < text.length) chunk({ content: text.slice(cut) });
  }
  chunk({}, c.finish);
  if (includeUsage) res.write(`data: ${JSON.stringify({ id: c.id, object: 'chat.completion.chunk', created: c.created, model: c.model, choices: [], usage: c.usage })}\n\n`);
  res.write('data: [DONE]\n\n');
  res.end();
}

const server = createServer((req, res) => {
  const chunks = [];
  req.on('data', (d) => chunks.push(d));
  req.on('end', () => {
    const path = new URL(req.url, 'http://x').pathname;
    if (req.method === 'GET' && path === '/_mock/health') return res.end('ok');
    if (req.method === 'GET' && path === '/_mock/requests') return sendJson(res, 200, seen);
    if (req.method === 'GET' && path === '/_mock/turns') return sendJson(res, 200, seen.map(turnText));
    if (req.method === 'GET' && path.endsWith('/models')) {
      return sendJson(res, 200, { object: 'list', data: [{ id: MODEL, object: 'model', created: 0, owned_by: 'moltlink-tests' }] });
    }
    if (req.method === 'POST' && path.endsWith('/chat/completions')) {
      let body;
      try {
        body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        return sendJson(res, 400, { error: { message: 'invalid JSON', type: 'invalid_request_error' } });
      }
      seen.push(body);
      const answer = script(body);
      const c = completion(body, answer);
      process.stdout.write(`mock-model: ${body.stream ? 'stream' : 'json'} ${answer.tool ? `tool ${answer.tool.name}` : 'text'} (${(body.tools ?? []).length} tools offered)\n`);
      if (body.stream) return sendStream(res, c, body.stream_options?.include_usage === true);
      return sendJson(res, 200, {
        id: c.id,
        object: 'chat.completion',
        created: c.created,
        model: c.model,
        choices: [{ index: 0, message: c.message, finish_reason: c.finish }],
        usage: c.usage,
      });
    }
    sendJson(res, 404, { error: { message: `no route ${req.method} ${path}`, type: 'invalid_request_error' } });
  });
});

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop())) {
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`MOCK_MODEL_URL=http://127.0.0.1:${server.address().port}/v1\nready\n`);
  });
  const stop = () => server.close(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
