// The voice pipeline from the cdylib (ml_audio_* through koffi), presented with the same
// methods as the component's `pipeline` resource so `AudioPipeline` (audio.js) wraps both.

import { AudioPipeline } from './audio.js';
import { api, check, defaultLibraryPath, readBuffer } from './native.js';

const num = (v) => (typeof v === 'bigint' ? Number(v) : v);

class NativePipeline {
  #ml;
  #a;
  #h;
  #n;
  #packet = new Uint8Array(1275);
  constructor(ml, a, h) {
    this.#ml = ml;
    this.#a = a;
    this.#h = h;
    const n = [0];
    check(ml, a.frameSamples(h, n));
    this.#n = num(n[0]);
  }
  frameSamples() {
    return this.#n;
  }
  #next() {
    const capture = [0];
    const playback = [0];
    check(this.#ml, this.#a.nextFrameSamples(this.#h, capture, playback));
    return [num(capture[0]), num(playback[0])];
  }
  nextCaptureSamples() {
    return this.#next()[0];
  }
  nextPlaybackSamples() {
    return this.#next()[1];
  }
  capture(mic, encode) {
    const len = [0];
    check(this.#ml, this.#a.capture(this.#h, mic, mic.length, encode ? this.#packet : null, encode ? this.#packet.length : 0, len));
    return this.#packet.slice(0, num(len[0]));
  }
  pushPacket(speaker, seq, payload, arrivalMs) {
    check(this.#ml, this.#a.pushPacket(this.#h, speaker, seq, payload.length ? payload : null, payload.length, arrivalMs));
  }
  pushTts(pcm) {
    check(this.#ml, this.#a.pushTts(this.#h, pcm.length ? pcm : null, pcm.length));
  }
  playback() {
    const out = new Int16Array(this.nextPlaybackSamples());
    check(this.#ml, this.#a.playback(this.#h, out, out.length));
    return out;
  }
  pollEvent() {
    const bytes = readBuffer(this.#ml, this.#a.pollEvent, this.#h, 128);
    return bytes.length ? new TextDecoder().decode(bytes) : undefined;
  }
  utterance() {
    const needed = [0];
    this.#a.utterance(this.#h, null, 0, needed);
    const out = new Int16Array(num(needed[0]));
    if (out.length) check(this.#ml, this.#a.utterance(this.#h, out, out.length, needed));
    return out;
  }
  utteranceWav() {
    return new Uint8Array(readBuffer(this.#ml, this.#a.utteranceWav, this.#h, 1024));
  }
  flushPlayback() {
    const ms = [0];
    check(this.#ml, this.#a.flushPlayback(this.#h, ms));
    return ms[0];
  }
  [Symbol.dispose]() {
    if (this.#h) this.#a.free(this.#h);
    this.#h = null;
  }
}

/** `loadAudio()` over the cdylib: `create(config)` makes pipelines. */
export async function loadAudioNative({ libraryPath = defaultLibraryPath() } = {}) {
  const ml = api(libraryPath);
  const a = ml.audio;
  return {
    create: (config = {}) => {
      const out = [null];
      check(ml, a.new(JSON.stringify(config), out));
      return new AudioPipeline(new NativePipeline(ml, a, out[0]));
    },
  };
}
