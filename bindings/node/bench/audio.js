// × real time of the full duplex 20 ms frame under the WIT component (jco, Node's wasm engine):
// capture (VAD + Opus encode with the pure-Rust opus-rs) + push-packet + playback (jitter,
// decode, TTS, mix), with the echo canceller off and on. Run after `npm run build`:
// `node bench/audio.js`.
import { loadAudio } from '../src/audio.js';
import { speech } from '../test/speech.js';

const audio = await loadAudio();
const mic = speech('The quick brown fox jumps over the lazy dog. Please call me back tomorrow morning.', 48000);
const tts = speech('The quick brown fox jumps over the lazy dog. Please call me back tomorrow morning.', 24000);
const measure = (echoCancel) => {
const p = audio.create({ device: { rate: 48000, channels: 1 }, barge_in: false, echo_cancel: echoCancel });
const n = p.frameSamples;
const frames = Math.floor(mic.length / n);
const run = (count, offset) => {
  for (let k = 0; k < count; k++) {
    const i = (offset + k) % frames;
    if (k % 200 === 0) p.pushTts(tts);
    const packet = p.capture(mic.subarray(i * n, i * n + n), true);
    p.pushPacket(1, (offset + k) & 0xffff, packet, (offset + k) * 20);
    p.playback();
    while (p.pollEvent());
  }
};
run(200, 0);
const rounds = [];
for (let r = 0; r < 7; r++) {
  const t0 = process.hrtime.bigint();
  run(250, 200 + r * 250);
  rounds.push(Number(process.hrtime.bigint() - t0) / 1000 / 250);
}
rounds.sort((a, b) => a - b);
return rounds[3];
};
for (const echoCancel of [false, true]) {
  const us = measure(echoCancel);
  console.log(`wasm component (jco/V8) full duplex frame, echo canceller ${echoCancel ? 'on' : 'off'}: ${us.toFixed(1)} µs/frame = ${(20000 / us).toFixed(0)}× real time (median of 7 × 250 frames)`);
}
