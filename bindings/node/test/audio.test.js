import assert from 'node:assert/strict';
import test from 'node:test';
import { MoltlinkError } from '../src/client.js';
import { loadAudio } from '../src/audio.js';
import { loadAudioNative } from '../src/audio-native.js';
import { speech } from './speech.js';

for (const [kind, load] of [['component', loadAudio], ['native', loadAudioNative]]) {
test(`${kind} audio: VAD events, utterance WAV, Opus loopback through the jitter buffer`, async () => {
  const audio = await load();
  const p = audio.create({ device: { rate: 16000, channels: 1 } });
  assert.equal(p.frameSamples, 320);
  const mic = new Int16Array(16000 * 3 + 40000);
  const s = speech('Hello from Node, testing the voice pipeline.', 16000);
  mic.set(s.subarray(0, Math.min(s.length, 40000)), 16000);
  const events = [];
  let decodedEnergy = 0;
  for (let i = 0; i + 320 <= mic.length; i += 320) {
    const packet = p.capture(mic.subarray(i, i + 320), true);
    assert.ok(packet.length > 0);
    p.pushPacket(1, (i / 320) & 0xffff, packet, (i / 320) * 20);
    const out = p.playback();
    assert.equal(out.length, 320);
    for (const v of out) decodedEnergy += v * v;
    for (let e; (e = p.pollEvent()); ) events.push(e);
  }
  assert.equal(events[0].type, 'speech-started');
  assert.ok(Math.abs(events[0].at_ms - 1000) < 150, JSON.stringify(events));
  assert.ok(events.some((e) => e.type === 'speech-stopped'), JSON.stringify(events));
  const wav = p.utteranceWav();
  assert.equal(Buffer.from(wav.subarray(0, 4)).toString(), 'RIFF');
  assert.equal(wav.length, 44 + p.utterance().length * 2);
  assert.ok(decodedEnergy > 0, 'the Opus loopback played audio');
  p.close();
});

test(`${kind} audio: 11 025 Hz, where 20 ms is not a whole number of samples`, async () => {
  const audio = await load();
  const p = audio.create({ device: { rate: 11025, channels: 1 } });
  assert.equal(p.frameSamples, 221);
  const tone = Int16Array.from({ length: 221 }, (_, i) => Math.round(8000 * Math.sin(i / 3)));
  p.pushTts(new Int16Array(24000).fill(1000));
  let captured = 0;
  let played = 0;
  const sizes = new Set();
  for (let f = 0; f < 50; f++) {
    const n = p.nextCaptureSamples();
    sizes.add(n);
    assert.ok(p.capture(tone.subarray(0, n), true).length > 0);
    captured += n;
    const expected = p.nextPlaybackSamples();
    assert.equal(p.playback().length, expected);
    played += expected;
  }
  // 50 frames are exactly one second each way; sizes alternate 220/221.
  assert.deepEqual([captured, played, [...sizes].sort()], [11025, 11025, [220, 221]]);
  assert.throws(() => p.capture(tone.subarray(0, p.nextCaptureSamples() === 220 ? 221 : 220)), (e) => e instanceof MoltlinkError && e.code === 'invalid-argument');
  p.close();
});

test(`${kind} audio: bad input is an error value, not a crash`, async () => {
  const audio = await load();
  assert.throws(() => audio.create({ device: { rate: 1000 } }), (e) => e instanceof MoltlinkError && e.code === 'invalid-argument');
  assert.equal(audio.create({ device: { rate: 22050, channels: 1 }, tts_rate: 22050 }).frameSamples, 441, "espeak-ng's rate is accepted");
  const p = audio.create();
  assert.throws(() => p.capture(new Int16Array(7)), (e) => e instanceof MoltlinkError && e.code === 'invalid-argument');
  assert.throws(() => p.pushPacket(1, 0, new Uint8Array(0), 0), (e) => e instanceof MoltlinkError);
  // Still usable afterwards.
  assert.equal(p.playback().length, 960);
  p.close();
});
}
