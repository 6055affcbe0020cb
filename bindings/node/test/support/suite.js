// The end-to-end suite every backend must pass, against the sandbox over real HTTP.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readdir, rm, stat } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { MoltlinkError } from '../../src/client.js';
import { HostRunner, loadCredentials } from '../../src/host-runner.js';
import { startSandbox } from './sandbox.js';

const authenticated = (how) => (e) => {
  if (e.type === 'auth_failed') throw new Error(`auth failed: ${JSON.stringify(e.error)}`);
  return e.type === 'authenticated' && (how === undefined || e.how === how);
};

async function whoami(runner, client) {
  const id = client.whoami();
  const ev = await runner.runUntil((e) => e.call_id === id);
  assert.equal(ev.type, 'call_succeeded', JSON.stringify(ev));
  return ev.body;
}

/** @param load async () => factory  (loadComponent / loadNative) */
export function backendSuite(name, load) {
  describe(`${name} backend`, () => {
    let sandbox;
    let factory;
    let dir;
    let credentialsPath;
    const username = `node_${name}_${randomBytes(4).toString('hex')}`;

    before(async () => {
      [sandbox, factory] = await Promise.all([startSandbox(), load()]);
      assert.equal(factory.kind, name);
      dir = await mkdtemp(join(tmpdir(), `moltlink-node-${name}-`));
      credentialsPath = join(dir, 'state', 'credentials.json');
    });

    after(async () => {
      await sandbox?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('register, log in, force a refresh, whoami', async () => {
      const client = factory.open({ apiBase: sandbox.apiBase });
      try {
        assert.equal(client.backend, name);
        assert.equal(client.isAuthenticated(), false);
        const runner = new HostRunner(client, { credentialsPath });
        client.register(username);
        const auth = await runner.runUntil(authenticated('register'));
        assert.equal(auth.username, username);
        assert.ok(runner.events.some((e) => e.type === 'registered' && e.username === username));
        assert.equal(client.agentId(), auth.agent_id);
        assert.equal(client.isAuthenticated(), true);

        // Saved owner-only, atomically (no temp file left behind).
        const st = await stat(credentialsPath);
        assert.equal(st.mode & 0o777, 0o600);
        assert.deepEqual(await readdir(join(dir, 'state')), ['credentials.json']);
        const saved = JSON.parse(new TextDecoder().decode(await loadCredentials(credentialsPath)));
        assert.equal(saved.username, username);

        client.refresh();
        const refreshed = await runner.runUntil(authenticated('refresh'));
        assert.equal(refreshed.agent_id, auth.agent_id);

        const me = await whoami(runner, client);
        assert.equal(me.username, username);
        assert.equal(me.id, auth.agent_id);
      } finally {
        client.close();
      }
    });

    test('reload from saved credentials and log in again', async () => {
      const credentials = await loadCredentials(credentialsPath);
      assert.ok(credentials, 'credentials were saved by the previous test');
      const client = factory.open({ apiBase: sandbox.apiBase, credentials });
      try {
        assert.equal(client.isAuthenticated(), false);
        assert.ok(client.agentId());
        const runner = new HostRunner(client, { credentialsPath });
        client.login();
        const auth = await runner.runUntil(authenticated());
        assert.equal(auth.username, username);
        assert.equal((await whoami(runner, client)).username, username);
        // Arbitrary call with a JSON body goes through the same path.
        const id = client.call('GET', '/agents/@me');
        assert.equal((await runner.runUntil((e) => e.call_id === id)).type, 'call_succeeded');
      } finally {
        client.close();
      }
    });

    test('pump delivers outputs to callbacks', async () => {
      const client = factory.open({ apiBase: sandbox.apiBase, credentials: await loadCredentials(credentialsPath) });
      try {
        client.login();
        const seen = { http: [], persist: [], events: [] };
        const callbacks = {
          sendHttp: (r) => seen.http.push(r),
          persist: (ticket, bytes) => seen.persist.push({ ticket, bytes }),
          emitEvent: (e) => seen.events.push(e),
        };
        for (let round = 0; round < 10 && !seen.events.some((e) => e.type === 'authenticated'); round++) {
          client.pump(callbacks);
          for (const p of seen.persist.splice(0)) {
            assert.ok(p.bytes.length > 0);
            client.handlePersisted(p.ticket);
          }
          for (const r of seen.http.splice(0)) {
            assert.ok(r.url.startsWith(sandbox.apiBase), r.url);
            const res = await fetch(r.url, { method: r.method, headers: r.headers, body: r.body.length ? r.body : undefined, redirect: 'manual' });
            client.handleResponse(r.id, res.status, res.headers, new Uint8Array(await res.arrayBuffer()));
          }
        }
        assert.ok(seen.events.some((e) => e.type === 'authenticated' && e.username === username), JSON.stringify(seen.events));
        const until = client.pump(callbacks);
        assert.ok(until === null || until > Date.now());
      } finally {
        client.close();
      }
    });

    test('timer-driven refresh (short-lived tokens)', async () => {
      const shortLived = await startSandbox({ tokenLifetimeS: 2 });
      const client = factory.open({ apiBase: shortLived.apiBase });
      try {
        const runner = new HostRunner(client); // credentials kept in memory
        client.register(`${username}_t`);
        const first = await runner.runUntil(authenticated('register'));
        assert.ok(first.refresh_at_ms < first.expires_at_ms);
        // No command: the runner sleeps until the core's deadline and calls handleTimeout.
        const rotated = await runner.runUntil(authenticated('refresh'), { timeoutMs: 10_000 });
        assert.ok(Date.now() >= first.refresh_at_ms - 50, 'refreshed no earlier than scheduled');
        assert.ok(rotated.expires_at_ms > first.expires_at_ms);
        assert.ok(runner.credentials.length > 0);
        assert.equal((await whoami(runner, client)).username, `${username}_t`);
      } finally {
        client.close();
        await shortLived.stop();
      }
    });

    test('a throwing pump callback loses no output', async () => {
      const client = factory.open({ apiBase: sandbox.apiBase, credentials: await loadCredentials(credentialsPath) });
      try {
        client.login();
        const boom = new Error('host failure');
        const delivered = [];
        const failing = (kind) => (...args) => {
          delivered.push([kind, ...args]);
          throw boom;
        };
        const callbacks = { sendHttp: failing('http'), persist: failing('persist'), emitEvent: failing('event') };
        assert.throws(
          () => client.pump(callbacks),
          (e) => e === boom || (e instanceof AggregateError && e.errors.every((x) => x === boom)),
        );
        // Everything queued was handed over despite the exceptions: nothing is left behind.
        assert.ok(delivered.length >= 1);
        assert.equal(client.poll().kind, 'wait');
        assert.throws(() => client.pump({}), { code: 'invalid-argument' });
      } finally {
        client.close();
      }
    });

    test('garbage credentials: invalid-credentials, no secret echoed', () => {
      const secret = 'sk-SECRET-' + randomBytes(8).toString('hex');
      const garbage = JSON.stringify({ username: 'x', privateKey: `-----BEGIN PRIVATE KEY-----\n${secret}\n-----END PRIVATE KEY-----`, refreshToken: secret });
      for (const credentials of [garbage, 'not json ' + secret, new Uint8Array([0xff, 0xfe, 0x00])]) {
        assert.throws(
          () => factory.open({ apiBase: sandbox.apiBase, credentials }),
          (e) => {
            assert.ok(e instanceof MoltlinkError, String(e));
            assert.equal(e.code, 'invalid-credentials');
            assert.ok(e.message.length > 0);
            assert.ok(!e.message.includes(secret), e.message);
            return true;
          },
        );
      }
    });

    test('misuse is an error value, not a crash', () => {
      const client = factory.open({ apiBase: sandbox.apiBase });
      try {
        assert.throws(() => client.whoami(), { code: 'not-registered' });
        assert.throws(() => client.handlePersisted(12345), { code: 'unknown-id' });
        assert.throws(() => client.handleResponse(999, 200, [], new Uint8Array()), { code: 'unknown-id' });
        assert.throws(() => client.register('bad name with spaces and / slashes'), { name: 'MoltlinkError' });
        assert.throws(() => factory.open({ seed: new Uint8Array(5) }), { code: 'invalid-argument' });
        assert.throws(() => client.handleResponse(1, 70000, [], new Uint8Array()), { code: 'invalid-argument' });
        assert.throws(() => client.call('GET', 'no-slash'), { name: 'MoltlinkError' });
        assert.deepEqual(client.poll(), { kind: 'wait', untilMs: null });
        // The client still works after the errors.
        assert.equal(client.isAuthenticated(), false);
      } finally {
        client.close();
      }
    });
  });
}
