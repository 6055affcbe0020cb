// Typed MoltChats commands through a backend, against the sandbox over real HTTP: every call
// family, a check-before-send error, and one fault-injection run (a 429 carrying only an
// absolute reset header is requeued and succeeds after the reset, never failed).

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { MoltlinkError } from '../../src/client.js';
import { HostRunner } from '../../src/host-runner.js';
import { startSandbox } from './sandbox.js';

const SEED_SERVER = '00000000-0000-4000-8000-000000000001';
const SEED_CHANNEL = '00000000-0000-4000-8000-000000000002';

async function agent(factory, apiBase, prefix) {
  const client = factory.open({ apiBase });
  const runner = new HostRunner(client);
  const username = `${prefix}_${randomBytes(4).toString('hex')}`;
  client.register(username);
  await runner.runUntil((e) => {
    if (e.type === 'auth_failed') throw new Error(JSON.stringify(e));
    return e.type === 'authenticated';
  });
  const run = async (command) => {
    const id = client.command(command);
    const ev = await runner.runUntil((e) => e.call_id === id && (e.type === 'command_succeeded' || e.type === 'call_failed'));
    return ev;
  };
  const ok = async (command) => {
    const ev = await run(command);
    assert.equal(ev.type, 'command_succeeded', `${command.op}: ${JSON.stringify(ev)}`);
    assert.equal(ev.op, command.op);
    return ev.result;
  };
  return { client, runner, username, run, ok };
}

export function restSuite(name, load) {
  describe(`${name} backend: typed MoltChats commands`, () => {
    let sandbox;
    let factory;
    const clients = [];

    before(async () => {
      [sandbox, factory] = await Promise.all([startSandbox(), load()]);
    });
    after(async () => {
      for (const c of clients) c.close();
      await sandbox?.stop();
    });

    test('servers, channels, messages, reactions, friends, blocks, pending', async () => {
      const a = await agent(factory, sandbox.apiBase, `na_${name}`);
      const b = await agent(factory, sandbox.apiBase, `nb_${name}`);
      clients.push(a.client, b.client);

      assert.throws(() => a.client.command({ op: 'message_send', channel_id: SEED_CHANNEL, content: 'x'.repeat(4001) }),
        (e) => e instanceof MoltlinkError && e.code === 'invalid-argument');
      assert.throws(() => a.client.command({ op: 'no_such_op' }), (e) => e.code === 'invalid-argument');

      const me = await a.ok({ op: 'profile_patch', display_name: 'Node A' });
      assert.equal(me.display_name, 'Node A');
      const browse = await a.ok({ op: 'servers_browse', sort: 'new', limit: 5 });
      const seeded = browse.servers.find((s) => s.id === SEED_SERVER);
      assert.equal(typeof seeded.member_count, 'number', 'memberCount string parsed as a number');
      await a.ok({ op: 'server_join', server_id: SEED_SERVER });
      await b.ok({ op: 'server_join', server_id: SEED_SERVER });
      const chans = await a.ok({ op: 'channels', server_id: SEED_SERVER });
      assert.equal(chans.channels[0].id, SEED_CHANNEL);

      const sent = await a.ok({ op: 'message_send', channel_id: SEED_CHANNEL, content: `hello from ${name}` });
      const hist = await b.ok({ op: 'history', channel_id: SEED_CHANNEL, limit: 10 });
      assert.equal(hist.messages[0].id, sent.message.id);
      assert.equal(hist.messages[0].agent.username, a.username);
      const histEvent = b.runner.events.findLast((e) => e.type === 'command_succeeded' && e.op === 'history');
      assert.ok(histEvent.untrusted.includes('messages[].content'));
      await b.ok({ op: 'react', message_id: sent.message.id, emoji: '🦀' });
      const again = await b.ok({ op: 'history', channel_id: SEED_CHANNEL, limit: 1 });
      assert.deepEqual(again.messages[0].reactions, [{ emoji: '🦀', count: 1 }]);
      await b.ok({ op: 'unreact', message_id: sent.message.id, emoji: '🦀' });

      const { request_id } = await a.ok({ op: 'friend_request', target: b.username });
      const reqs = await b.ok({ op: 'friend_requests' });
      assert.equal(reqs.incoming[0].id, request_id);
      const acc = await b.ok({ op: 'friend_accept', request_id });
      assert.equal(acc.friend_username, a.username);
      const friends = await a.ok({ op: 'friends' });
      assert.equal(friends.friends[0].dm_channel_id, acc.dm_channel_id);
      await b.ok({ op: 'message_send', channel_id: acc.dm_channel_id, content: 'psst' });
      const pending = await a.ok({ op: 'pending' });
      assert.equal(pending.has_activity, true);
      assert.equal(pending.unread_dms[0].channel_id, acc.dm_channel_id);

      await a.ok({ op: 'block', username: b.username });
      assert.equal((await a.ok({ op: 'blocks' })).blocks[0].username, b.username);
      await a.ok({ op: 'unblock', username: b.username });
      const dup = await a.run({ op: 'server_join', server_id: SEED_SERVER });
      assert.equal(dup.type, 'call_failed');
      assert.equal(dup.error.code, 'ALREADY_MEMBER');
      assert.equal(a.client.queueState().waiting, 0);
    });

    test('fault injection: a 429 with only an absolute reset is requeued, then succeeds', async () => {
      const a = await agent(factory, sandbox.apiBase, `nf_${name}`);
      clients.push(a.client);
      const origin = new URL(sandbox.apiBase).origin;
      const set = await fetch(`${origin}/_sandbox/moltchats/faults`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ failNextWith429: 1, resetInS: 1 }),
      });
      assert.equal(set.status, 200);
      const started = Date.now();
      const id = a.client.command({ op: 'friends' });
      const throttled = await a.runner.runUntil((e) => e.type === 'throttled' && e.call_id === id);
      assert.equal(throttled.rejected, true);
      assert.equal(throttled.until_ms % 1000, 0, 'the reset header is absolute Unix seconds');
      const state = a.client.queueState();
      assert.equal(state.waiting, 1);
      assert.equal(state.next_release_ms, throttled.until_ms);
      const done = await a.runner.runUntil((e) => e.call_id === id && e.type !== 'throttled');
      assert.equal(done.type, 'command_succeeded');
      assert.ok(Date.now() >= throttled.until_ms - 5, 'not retried before the reset');
      assert.ok(Date.now() - started < 5_000);
    });
  });
}
