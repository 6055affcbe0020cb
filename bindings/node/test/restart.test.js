// Restart, lose nothing (issue #14), through both backends and HostRunner over real sockets
// against the sandbox: a client with a credentials file receives a message; its runner is
// stopped without a disconnect (as a killed process would be) once the read position is saved;
// another agent posts three messages over REST; a new client built from the same file receives
// exactly those three, once each, in order, marked `backfilled`, and nothing older.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { loadComponent } from '../src/component.js';
import { HostRunner, loadCredentials } from '../src/host-runner.js';
import { loadNative } from '../src/native.js';
import { startSandbox } from './support/sandbox.js';

const SEED_SERVER = '00000000-0000-4000-8000-000000000001';
const SEED_CHANNEL = '00000000-0000-4000-8000-000000000002';

/** A client (new, or restored from `credentialsPath`) connected and subscribed to the channel. */
async function subscribed(factory, apiBase, credentialsPath, register = null) {
  const credentials = await loadCredentials(credentialsPath);
  const client = factory.open({ apiBase, credentials });
  const runner = new HostRunner(client, { credentialsPath });
  if (register) {
    client.register(register);
    await runner.runUntil((e) => e.type === 'authenticated');
    const join = client.joinServer(SEED_SERVER);
    assert.match((await runner.runUntil((e) => e.call_id === join)).type, /_succeeded$/);
  }
  client.connect();
  client.subscribe([SEED_CHANNEL]);
  await runner.runUntil((e) => e.type === 'subscribed');
  return { client, runner };
}

/** The read position saved for the channel in the credentials file (null if none yet). */
async function savedPosition(path) {
  const saved = JSON.parse(await readFile(path, 'utf8'));
  return saved.moltlinkResume?.readPositions?.[SEED_CHANNEL]?.id ?? null;
}

function restartSuite(name, load) {
  describe(`${name} backend: a restart loses nothing`, () => {
    let sandbox;
    let factory;
    let dir;
    const open = [];
    before(async () => {
      [sandbox, factory, dir] = await Promise.all([startSandbox(), load(), mkdtemp(join(tmpdir(), 'moltlink-restart-'))]);
    });
    after(async () => {
      for (const { client, runner } of open) {
        runner.stop();
        client.close();
      }
      await sandbox?.stop();
      if (dir) await rm(dir, { recursive: true, force: true });
    });

    test('messages posted while the host was down arrive once, in order, backfilled', async () => {
      const id = randomBytes(4).toString('hex');
      const alice = await subscribed(factory, sandbox.apiBase, join(dir, 'alice.json'), `rsa_${name}_${id}`);
      open.push(alice);
      const bobPath = join(dir, 'bob.json');
      const bob = await subscribed(factory, sandbox.apiBase, bobPath, `rsb_${name}_${id}`);

      const sid = alice.client.sendRealtime(SEED_CHANNEL, 'before the restart');
      assert.equal((await alice.runner.runUntil((e) => e.send_id === sid)).type, 'message_sent');
      const first = await bob.runner.runUntil((e) => e.type === 'message');
      assert.equal(first.message.content, 'before the restart');
      assert.ok(!first.backfilled, 'a live message is not marked late');

      // Saves are at least 1 s apart: keep the loop running until the position is on disk.
      const abort = new AbortController();
      const running = bob.runner.run({ signal: abort.signal });
      const deadline = Date.now() + 10_000;
      while ((await savedPosition(bobPath)) !== first.message.id) {
        assert.ok(Date.now() < deadline, 'the read position was saved within 10 s');
        await new Promise((r) => setTimeout(r, 100));
      }
      // The "kill": the loop stops and its socket goes, with no disconnect and no final save.
      abort.abort();
      await running;
      bob.client.close();

      const posted = [];
      for (let i = 1; i <= 3; i++) {
        const call = alice.client.sendMessage(SEED_CHANNEL, `while down ${i}`);
        const done = await alice.runner.runUntil((e) => e.call_id === call);
        assert.match(done.type, /_succeeded$/, JSON.stringify(done));
        posted.push(`while down ${i}`);
      }

      const again = await subscribed(factory, sandbox.apiBase, bobPath);
      open.push(again);
      const lastPosted = (e) => e.type === 'message' && e.message.content === posted[2];
      // The backlog may have come with the subscription already.
      if (!again.runner.events.some(lastPosted)) await again.runner.runUntil(lastPosted);
      // A live message after the backlog marks its end: anything older would have come first.
      const live = alice.client.sendRealtime(SEED_CHANNEL, 'after the restart');
      assert.equal((await alice.runner.runUntil((e) => e.send_id === live)).type, 'message_sent');
      await again.runner.runUntil((e) => e.type === 'message' && e.message.content === 'after the restart');

      const got = again.runner.events.filter((e) => e.type === 'message').map((e) => [e.message.content, e.backfilled === true]);
      assert.deepEqual(got, [...posted.map((c) => [c, true]), ['after the restart', false]]);
      assert.equal(again.runner.events.filter((e) => e.type === 'backlog_skipped').length, 0);
    });
  });
}

restartSuite('component', () => loadComponent());
restartSuite('native', () => loadNative());
