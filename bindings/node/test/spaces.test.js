// Moltspaces through both backends against the sandbox over real loopback HTTP: register
// (persisted), empty search, join (create), a voice turn with the STT/TTS stand-ins, barge-in.

import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { after, before, describe, test } from 'node:test';
import { MoltlinkError } from '../src/client.js';
import { loadComponent } from '../src/component.js';
import { HostRunner } from '../src/host-runner.js';
import { loadNative } from '../src/native.js';
import { startSandbox } from './support/sandbox.js';

/** A 16 kHz mono 16-bit WAV of a tone. */
function toneWav(ms) {
  const n = 16 * ms;
  const b = Buffer.alloc(44 + 2 * n);
  b.write('RIFF', 0);
  b.writeUInt32LE(36 + 2 * n, 4);
  b.write('WAVEfmt ', 8);
  b.writeUInt32LE(16, 16);
  b.writeUInt16LE(1, 20);
  b.writeUInt16LE(1, 22);
  b.writeUInt32LE(16000, 24);
  b.writeUInt32LE(32000, 28);
  b.writeUInt16LE(2, 32);
  b.writeUInt16LE(16, 34);
  b.write('data', 36);
  b.writeUInt32LE(2 * n, 40);
  for (let i = 0; i < n; i++) b.writeInt16LE(Math.round(8000 * Math.sin(i * 0.05)), 44 + 2 * i);
  return new Uint8Array(b);
}

for (const [name, load] of [['component', loadComponent], ['native', loadNative]]) {
  describe(`spaces via the ${name} backend`, () => {
    let sandbox;
    let factory;
    let options;
    let root;
    const keys = 'OPENAI_API_KEY=sk-node\nELEVENLABS_API_KEY=xi-node\n';
    const post = (route, body) => fetch(root + route, { method: 'POST', body: JSON.stringify(body) });

    before(async () => {
      [sandbox, factory] = await Promise.all([startSandbox(), load()]);
      const env = sandbox.env;
      options = { api_base: env.MOLTSPACES_API_BASE, openai_base: env.OPENAI_API_BASE, elevenlabs_base: env.ELEVENLABS_API_BASE };
      root = env.OPENAI_API_BASE.replace(/\/openai$/, '');
    });
    after(async () => {
      await sandbox?.stop();
    });

    test('register, search, join, a voice turn and barge-in', async () => {
      const reg = factory.openSpaces({ env: keys, options });
      assert.throws(() => reg.search('x'), (e) => e instanceof MoltlinkError && e.code === 'not-registered');
      const r = new HostRunner(reg);
      const call = reg.register(`node${randomBytes(4).toString('hex')}`, 'node test agent');
      const done = await r.runUntil((e) => e.call_id === call, { timeoutMs: 10_000 });
      assert.equal(done.type, 'spaces_registered');
      const saved = new TextDecoder().decode(r.credentials);
      assert.match(saved, /^MOLTSPACES_API_KEY=moltspaces_/);
      reg.close();

      const s = factory.openSpaces({ env: keys + saved, options });
      const run = new HostRunner(s);
      const until = (pred) => run.runUntil(pred, { timeoutMs: 10_000 });
      const topic = `node topic ${randomBytes(3).toString('hex')}`;
      const search = s.search(topic);
      const rooms = await until((e) => e.call_id === search);
      assert.deepEqual([rooms.type, rooms.rooms], ['spaces_rooms', []]);
      const join = s.join(topic);
      const ticket = await until((e) => e.call_id === join && e.type === 'spaces_ticket');
      assert.equal(ticket.reason, 'join');
      assert.match(ticket.ticket.room_url, /^https:\/\/sandbox\.daily\.co\/node-topic-/);
      assert.equal(s.state().room.joined, true);

      await post('/speech/_sandbox/transcripts', { transcripts: ['How are you?', 'Tell me more.'], no_espeak: true });
      const turn = s.utterance(toneWav(600));
      const heard = await until((e) => e.type === 'spaces_transcript');
      assert.deepEqual([heard.turn, heard.text], [turn, { untrusted_text: 'How are you?' }]);
      s.reply('Very well, thank you for asking.');
      await until((e) => e.type === 'spaces_audio');
      const pcm = s.takeAudio();
      assert.ok(pcm.length > 2 * 24000, `speech length ${pcm.length}`);
      s.playbackFinished();
      const finished = await until((e) => e.type === 'spaces_turn_done');
      assert.equal(finished.interrupted, false);

      s.utterance(toneWav(400));
      await until((e) => e.type === 'spaces_transcript' && e.turn === turn + 1);
      s.reply('Well, it is a long story.');
      await until((e) => e.type === 'spaces_audio' && e.turn === turn + 1);
      s.bargeIn();
      const cut = await until((e) => e.type === 'spaces_turn_done' && e.turn === turn + 1);
      assert.equal(cut.interrupted, true);
      assert.equal(s.takeAudio().length, 0);
      s.leave();
      const left = await until((e) => e.type === 'spaces_left');
      assert.equal(left.room_name, ticket.ticket.room_name);
      const states = run.events.filter((e) => e.type === 'spaces_turn').map((e) => e.state);
      assert.ok(states.includes('interrupted'), states.join(','));
      assert.ok(!JSON.stringify(run.events).includes('sk-node'));
      assert.throws(() => s.utterance(new Uint8Array([1, 2, 3])), (e) => e instanceof MoltlinkError && e.code === 'invalid-argument');
      s.close();
    });
  });
}
