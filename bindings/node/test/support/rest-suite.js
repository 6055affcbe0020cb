// Typed MoltChats commands through a backend, against the sandbox over real HTTP: every call
// family, the commands beyond it (each event carries the server's `body` as sent and the typed
// `result` of the same structure), a check-before-send error, and one fault-injection run (a
// 429 carrying only an absolute reset header is requeued and succeeds after the reset).

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
  /** The whole `command_succeeded` event: typed `result` and the server's `body`. */
  const succeeded = async (command) => {
    const ev = await run(command);
    assert.equal(ev.type, 'command_succeeded', `${command.op}: ${JSON.stringify(ev)}`);
    assert.equal(ev.op, command.op);
    return ev;
  };
  const ok = async (command) => (await succeeded(command)).result;
  return { client, runner, username, run, succeeded, ok };
}

/** Switch sandbox faults (`requireTrustForServers`, `failNextWith429`…). */
async function setFaults(apiBase, faults) {
  const res = await fetch(`${new URL(apiBase).origin}/_sandbox/moltchats/faults`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify(faults),
  });
  assert.equal(res.status, 200);
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
      assert.equal(chans.channels.uncategorized[0].id, SEED_CHANNEL);

      const sent = await a.ok({ op: 'message_send', channel_id: SEED_CHANNEL, content: `hello from ${name}` });
      const hist = await b.ok({ op: 'history', channel_id: SEED_CHANNEL, limit: 10 });
      assert.equal(hist[0].id, sent.id);
      assert.equal(hist[0].agent.username, a.username);
      const histEvent = b.runner.events.findLast((e) => e.type === 'command_succeeded' && e.op === 'history');
      assert.ok(histEvent.untrusted.includes('[].content'));
      assert.equal(histEvent.body[0].createdAt, hist[0].created_at);
      assert.deepEqual(await b.ok({ op: 'react', message_id: sent.id, emoji: '🦀' }), { success: true });
      assert.deepEqual(await b.ok({ op: 'unreact', message_id: sent.id, emoji: '🦀' }), { success: true });

      const { request_id } = await a.ok({ op: 'friend_request', target: b.username });
      const reqs = await b.ok({ op: 'friend_requests' });
      assert.equal(reqs.incoming[0].id, request_id);
      assert.equal(reqs.incoming[0].from_username, a.username);
      const acc = await b.ok({ op: 'friend_accept', request_id });
      assert.equal(acc.friend_username, a.username);
      const friends = await a.ok({ op: 'friends' });
      assert.equal(friends.friends[0].dm_channel_id, acc.dm_channel_id);
      await b.ok({ op: 'message_send', channel_id: acc.dm_channel_id, content: 'psst' });
      const pending = await a.ok({ op: 'pending' });
      assert.equal(pending.has_activity, true);
      assert.equal(pending.unread_dms[0].channel_id, acc.dm_channel_id);
      assert.equal(pending.unread_dms[0].friend_username, b.username);
      assert.equal(pending.unread_dms[0].last_message_content, 'psst');

      await a.ok({ op: 'block', username: b.username });
      assert.equal((await a.ok({ op: 'blocks' })).blocked[0].username, b.username);
      await a.ok({ op: 'unblock', username: b.username });
      const dup = await a.run({ op: 'server_join', server_id: SEED_SERVER });
      assert.equal(dup.type, 'call_failed');
      assert.equal(dup.error.code, 'ALREADY_MEMBER');
      assert.equal(a.client.queueState().waiting, 0);
    });

    test('server, channel and moderation commands, feed, search, trust, config, webhooks, unfriend', async () => {
      await setFaults(sandbox.apiBase, { requireTrustForServers: false }); // untrusted agents may create servers
      const owner = await agent(factory, sandbox.apiBase, `no_${name}`);
      const member = await agent(factory, sandbox.apiBase, `nm_${name}`);
      clients.push(owner.client, member.client);

      const sid = (await owner.ok({ op: 'server_create', name: `node lab ${name}` })).server.id;
      const got = await owner.succeeded({ op: 'server_get', server_id: sid });
      assert.equal(got.body.memberCount, 1);
      assert.equal(got.result.member_count, 1);
      assert.deepEqual(Object.keys(got.body).slice(0, 2), ['id', 'name'], 'the body keeps the server\'s key order');
      assert.equal(got.result.channels[0].name, 'general');

      const cid = (await owner.ok({ op: 'channel_create', server_id: sid, name: 'lab', category: 'Wire', topic: 't' })).channel.id;
      const patched = await owner.succeeded({ op: 'channel_patch', channel_id: cid, topic: 'new topic', category: null, position: 3 });
      assert.equal(patched.body.channel.topic, 'new topic');
      assert.equal(patched.body.channel.category, null, 'null clears the category');
      assert.equal(patched.result.channel.position, 3);
      const instr = await owner.succeeded({ op: 'channel_instructions', channel_id: cid, instructions: 'stay on topic' });
      assert.deepEqual([instr.body, instr.result], [{ success: true }, { success: true }]);
      const chans = (await owner.ok({ op: 'server_get', server_id: sid })).channels;
      assert.equal(chans.find((c) => c.id === cid).instructions, 'stay on topic');

      await member.ok({ op: 'server_join', server_id: sid });
      await owner.ok({ op: 'ban', server_id: sid, username: member.username, reason: 'spam' });
      const bans = await owner.succeeded({ op: 'bans', server_id: sid });
      assert.deepEqual(bans.body.map((x) => [x.username, x.reason, x.autoBan]), [[member.username, 'spam', false]]);
      assert.equal(bans.result[0].auto_ban, false);
      const refused = await member.run({ op: 'server_join', server_id: sid });
      assert.equal(refused.error.code, 'BANNED_FROM_SERVER');
      await owner.ok({ op: 'unban', server_id: sid, username: member.username });
      assert.deepEqual((await owner.succeeded({ op: 'bans', server_id: sid })).body, []);

      await owner.ok({ op: 'server_join', server_id: SEED_SERVER });
      await member.ok({ op: 'server_join', server_id: SEED_SERVER });
      await owner.ok({ op: 'message_send', channel_id: SEED_CHANNEL, content: `feed item ${name}` });
      const feed = await member.succeeded({ op: 'feed', limit: 5 });
      assert.equal(feed.body[0].content, `feed item ${name}`);
      assert.equal(feed.result[0].server_name, feed.body[0].serverName);

      const found = await member.succeeded({ op: 'search', q: owner.username, type: 'agents' });
      assert.equal(found.body.type, 'agents');
      assert.deepEqual(found.result.results.map((r) => r.username), [owner.username]);

      const trust = await owner.succeeded({ op: 'trust_me' });
      assert.equal(trust.body.tier, 'untrusted');
      assert.deepEqual(trust.result.vouches_given, []);

      const config = await owner.succeeded({ op: 'agent_config_patch', idle_timeout_seconds: 120 });
      assert.equal(config.body.idleTimeoutSeconds, 120);
      assert.equal(config.result.idle_timeout_seconds, 120);
      assert.throws(() => owner.client.command({ op: 'agent_config_patch', idle_timeout_seconds: 10 }), (e) => e.code === 'invalid-argument');
      const hook = await owner.succeeded({ op: 'webhooks_config_put', webhook_url: 'http://127.0.0.1:9/hook', webhook_events: ['dm.received'] });
      assert.deepEqual(hook.body, { webhookUrl: 'http://127.0.0.1:9/hook', webhookEvents: ['dm.received'] });
      assert.deepEqual(hook.result, { webhook_url: 'http://127.0.0.1:9/hook', webhook_events: ['dm.received'] });
      assert.equal((await owner.ok({ op: 'webhooks_config_put', webhook_url: null })).webhook_url, null, 'null clears the URL');

      const { request_id } = await owner.ok({ op: 'friend_request', target: member.username });
      await member.ok({ op: 'friend_accept', request_id });
      const removed = await owner.succeeded({ op: 'friend_remove', username: member.username });
      assert.deepEqual([removed.body, removed.result], [{ ok: true }, { ok: true }]);
      assert.deepEqual((await owner.succeeded({ op: 'friends' })).body, { friends: [] });
      assert.equal((await owner.run({ op: 'friend_remove', username: member.username })).error.code, 'NOT_FRIENDS');
    });

    test('fault injection: a 429 with only an absolute reset is requeued, then succeeds', async () => {
      const a = await agent(factory, sandbox.apiBase, `nf_${name}`);
      clients.push(a.client);
      await setFaults(sandbox.apiBase, { failNextWith429: 1, resetInS: 1 });
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
