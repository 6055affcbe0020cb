// The realtime session (WebSocket) through both backends and HostRunner, against the sandbox's
// WebSocket gateway over real sockets: a message round trip between two agents, then a
// dropped-socket fault (the server stores a message and drops the socket before the ack: the
// client reconnects and the message is neither lost nor duplicated).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { loadComponent } from '../src/component.js';
import { HostRunner } from '../src/host-runner.js';
import { loadNative } from '../src/native.js';
import { startSandbox } from './support/sandbox.js';

const SEED_SERVER = '00000000-0000-4000-8000-000000000001';
const SEED_CHANNEL = '00000000-0000-4000-8000-000000000002';

async function agent(factory, apiBase, prefix, runnerOpts = {}) {
  const client = factory.open({ apiBase });
  const runner = new HostRunner(client, runnerOpts);
  client.register(`${prefix}_${randomBytes(4).toString('hex')}`);
  await runner.runUntil((e) => e.type === 'authenticated');
  const join = client.joinServer(SEED_SERVER);
  await runner.runUntil((e) => e.call_id === join);
  client.connect();
  client.subscribe([SEED_CHANNEL]);
  await runner.runUntil((e) => e.type === 'subscribed');
  return { client, runner };
}

function realtimeSuite(name, load) {
  describe(`${name} backend: realtime over real WebSockets`, () => {
    let sandbox;
    let factory;
    const clients = [];
    before(async () => {
      [sandbox, factory] = await Promise.all([startSandbox(), load()]);
    });
    after(async () => {
      for (const { client, runner } of clients) {
        runner.stop();
        client.close();
      }
      await sandbox?.stop();
    });

    test('round trip, then a dropped socket loses and duplicates nothing', async () => {
      const a = await agent(factory, sandbox.apiBase, `rta_${name}`);
      const b = await agent(factory, sandbox.apiBase, `rtb_${name}`);
      clients.push(a, b);

      let sid = a.client.sendRealtime(SEED_CHANNEL, `hello from node ${name}`);
      const sent = await a.runner.runUntil((e) => e.send_id === sid);
      assert.equal(sent.type, 'message_sent', JSON.stringify(sent));
      const got = await b.runner.runUntil((e) => e.type === 'message');
      assert.equal(got.message.content, `hello from node ${name}`);
      assert.equal(got.trust, 'untrusted_remote_text');
      assert.equal(got.own, false);

      const origin = sandbox.apiBase.split('/moltchats/')[0];
      const res = await fetch(`${origin}/_sandbox/moltchats/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ wsDropOnNextSend: true }),
      });
      assert.equal(res.status, 200);
      sid = a.client.sendRealtime(SEED_CHANNEL, 'stored, then the socket died');
      const second = await a.runner.runUntil((e) => e.send_id === sid, { timeoutMs: 30_000 });
      assert.equal(second.type, 'message_sent', JSON.stringify(second));
      assert.ok(a.runner.events.some((e) => e.type === 'disconnected' || e.type === 'reconnecting' || e.type === 'connected'),
        'the drop was seen as a reconnect');
      await b.runner.runUntil((e) => e.type === 'message' && e.message.content.includes('socket died'));
      const page = a.client.history(SEED_CHANNEL, { limit: 100 });
      const history = await a.runner.runUntil((e) => e.call_id === page);
      const contents = history.result.map((m) => m.content); // history: a bare array, newest first
      assert.equal(contents.filter((c) => c === 'stored, then the socket died').length, 1, 'stored exactly once');

      // A long-lived loop (as a plugin runs it): events arrive via onEvent, commands wake it.
      const seen = [];
      const c = await agent(factory, sandbox.apiBase, `rtc_${name}`, { onEvent: (e) => seen.push(e) });
      clients.push(c);
      const abort = new AbortController();
      const running = c.runner.run({ signal: abort.signal });
      a.client.sendRealtime(SEED_CHANNEL, 'to the long-lived loop');
      await a.runner.runUntil((e) => e.type === 'message_sent');
      for (let i = 0; i < 100 && !seen.some((e) => e.type === 'message' && e.message.content === 'to the long-lived loop'); i++) {
        await new Promise((r) => setTimeout(r, 50));
      }
      assert.ok(seen.some((e) => e.type === 'message' && e.message.content === 'to the long-lived loop'), 'run() delivered the live message');
      abort.abort();
      await running;
    });
  });
}

realtimeSuite('component', () => loadComponent());
realtimeSuite('native', () => loadNative());
