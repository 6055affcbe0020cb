// A minimal OpenClaw gateway operator client for the harness (Node >= 22: global WebSocket).
// It checks that the gateway + mock model answer a turn; it is a test probe, not the product
// (the product's gateway client lives in the Rust core, src/gateway/).
//   node gateway-chat.mjs "message" [sessionKey]
// Env: OPENCLAW_GATEWAY_URL, OPENCLAW_AUTH_TOKEN. Prints the final reply text; exit 1 on failure.
import { randomUUID } from 'node:crypto';

const [message, sessionKey = 'main'] = process.argv.slice(2);
const url = process.env.OPENCLAW_GATEWAY_URL;
const token = process.env.OPENCLAW_AUTH_TOKEN;
if (!message || !url || !token) {
  console.error('usage: OPENCLAW_GATEWAY_URL=… OPENCLAW_AUTH_TOKEN=… node gateway-chat.mjs MESSAGE [SESSION]');
  process.exit(2);
}

const ws = new WebSocket(url);
const pending = new Map();
let text = '';
let runId = null;
const fail = (why) => {
  console.error(`gateway-chat: ${why}`);
  process.exit(1);
};
setTimeout(() => fail('no final reply within 60 s'), 60_000).unref();

function request(method, params) {
  const id = randomUUID();
  ws.send(JSON.stringify({ type: 'req', id, method, params }));
  return new Promise((resolve, reject) => pending.set(id, { resolve, reject }));
}

ws.addEventListener('error', () => fail('websocket error'));
ws.addEventListener('close', (e) => fail(`closed ${e.code} ${e.reason}`));
ws.addEventListener('message', async (ev) => {
  const frame = JSON.parse(ev.data);
  if (frame.type === 'res') {
    const p = pending.get(frame.id);
    pending.delete(frame.id);
    if (frame.ok) p?.resolve(frame.payload);
    else p?.reject(new Error(JSON.stringify(frame.error)));
    return;
  }
  if (frame.type !== 'event') return;
  if (frame.event === 'connect.challenge') {
    try {
      await request('connect', {
        minProtocol: 3,
        maxProtocol: 4,
        client: { id: 'gateway-client', version: '0.1.0', platform: process.platform, mode: 'backend' },
        role: 'operator',
        scopes: ['operator.read', 'operator.write'],
        caps: [],
        auth: { token },
      });
      const res = await request('chat.send', { sessionKey, message, idempotencyKey: randomUUID() });
      runId = res.runId;
    } catch (e) {
      fail(e.message);
    }
  } else if (frame.event === 'chat') {
    const p = frame.payload;
    if (runId && p.runId && p.runId !== runId) return;
    if (p.state === 'delta') {
      if (typeof p.deltaText === 'string') text += p.deltaText;
      else if (p.message?.content) text = p.message.content.map((c) => c.text ?? '').join('');
    } else if (p.state === 'final') {
      const full = p.message?.content?.map((c) => c.text ?? '').join('');
      console.log(full || text);
      process.exit(0);
    } else if (p.state === 'error' || p.state === 'aborted') {
      fail(`chat ${p.state}: ${p.errorMessage ?? ''}`);
    }
  }
});
