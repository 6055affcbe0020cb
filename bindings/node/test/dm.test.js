// Moltbook DMs through both backends against the sandbox over real loopback HTTP: the issue's
// scenario (request, heartbeats, owner approval, exchange, escalation, block) and the redirect.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { MoltlinkError } from '../src/client.js';
import { loadComponent } from '../src/component.js';
import { HostRunner } from '../src/host-runner.js';
import { loadNative } from '../src/native.js';
import { startSandbox } from './support/sandbox.js';

for (const [name, load] of [['component', loadComponent], ['native', loadNative]]) {
  describe(`dm via the ${name} backend`, () => {
    let sandbox;
    let factory;
    let api;
    const admin = async (route, body) => {
      const url = api.replace('/moltbook/api/v1', '/moltbook/_sandbox') + route;
      const res = await fetch(url, body === undefined ? {} : { method: 'POST', body: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      assert.equal(res.status, 200, await res.clone().text());
      return res.json();
    };
    const agent = async () => {
      const id = randomBytes(4).toString('hex');
      const name = `node${id}`;
      const owner = `owner_${id}`;
      const { api_key: key } = await admin('/agents', { name, owner });
      const client = factory.openDm({ apiBase: api, apiKey: key });
      return { name, owner, key, client, runner: new HostRunner(client) };
    };
    const outcome = (a, call) => a.runner.runUntil((e) => e.call_id === call, { timeoutMs: 10_000 });
    const ofType = (a, type) => a.runner.events.filter((e) => e.type === type);

    before(async () => {
      [sandbox, factory] = await Promise.all([startSandbox(), load()]);
      api = sandbox.env.MOLTBOOK_API_BASE;
    });
    after(async () => {
      await sandbox?.stop();
    });

    test('consent, heartbeat, escalation and block', async () => {
      const a = await agent();
      const b = await agent();
      assert.throws(() => a.client.request('short', { to: b.name }), (e) => e instanceof MoltlinkError && e.code === 'invalid-argument');
      const sent = await outcome(a, a.client.request('Hi! My human wants to ask about the project.', { toOwner: `@${b.owner}` }));
      assert.equal(sent.type, 'call_succeeded', JSON.stringify(sent));
      const cid = sent.body.conversation_id;
      assert.equal(a.client.state(cid), 'requested');

      // The heartbeat: a check now, then a scheduled one.
      for (const x of [a, b]) {
        x.client.heartbeat(true);
        const checked = await x.runner.runUntil((e) => e.type === 'dm_checked', { timeoutMs: 10_000 });
        assert.ok(checked.next_check_at_ms > Date.now());
        x.client.heartbeat(false);
      }
      assert.equal(ofType(a, 'dm_escalation').length, 0);
      const [esc] = ofType(b, 'dm_escalation');
      assert.equal(esc.reason, 'new_request');
      assert.equal(esc.from, a.name);
      assert.deepEqual(esc.text, { untrusted_text: 'Hi! My human wants to ask about the project.' });

      await admin('/approve', { conversation_id: cid });
      await outcome(a, a.client.conversations());
      assert.equal(a.client.state(cid), 'approved');
      assert.equal((await outcome(a, a.client.send(cid, 'When is the meeting?'))).type, 'call_succeeded');
      assert.equal((await outcome(b, b.client.send(cid, 'For your human: 3pm?', { needsHumanInput: true }))).type, 'call_succeeded');
      await outcome(a, a.client.check());
      assert.deepEqual(ofType(a, 'dm_escalation').map((e) => e.reason), ['needs_human_input']);
      await outcome(b, b.client.check());
      assert.equal(ofType(b, 'dm_escalation').length, 1, 'a routine message is not escalated');
      assert.equal((await admin('/stats')).read_calls, 0);

      await outcome(a, a.client.read(cid));
      const messages = ofType(a, 'dm_message');
      assert.equal(messages.length, 1);
      assert.equal(messages[0].needs_human_input, true);

      await admin('/block', { blocker: b.name, blocked: a.name });
      const refused = await outcome(a, a.client.send(cid, 'Still there?'));
      assert.equal(refused.type, 'call_failed');
      assert.equal(refused.error.status, 403);
      assert.throws(() => a.client.request('Please let us talk again.', { to: b.name }), (e) => e.code === 'invalid-state' && /blocked/.test(e.message));

      for (const x of [a, b]) {
        assert.ok(!JSON.stringify(x.runner.events).includes(x.key), 'the API key is never in events');
        x.client.close();
      }
    });

    test('the bare host is refused and a redirect is not followed', async () => {
      const a = await agent();
      assert.throws(() => factory.openDm({ apiBase: 'https://moltbook.com/api/v1', apiKey: a.key }), (e) => /bare host/.test(e.message));
      const before = await admin('/stats');
      const bare = factory.openDm({ apiBase: api.replace('/moltbook/api/v1', '/moltbook-bare/api/v1'), apiKey: a.key });
      const runner = new HostRunner(bare);
      const call = bare.check();
      const failed = await runner.runUntil((e) => e.call_id === call, { timeoutMs: 10_000 });
      assert.equal(failed.type, 'call_failed');
      assert.equal(failed.error.code, 'REDIRECT_REFUSED');
      const afterStats = await admin('/stats');
      assert.equal(afterStats.bare_requests, before.bare_requests + 1);
      assert.equal(afterStats.requests_with_key, before.requests_with_key);
      bare.close();
      a.client.close();
    });
  });
}
