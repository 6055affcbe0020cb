// The voice pipeline from the cdylib (ml_audio_* through koffi), presented with the same
// methods as the component's `pipeline` resource so `AudioPipeline` (audio.js) wraps both.

import koffi from 'koffi';
import { AudioPipeline } from './audio.js';
import { api, check, defaultLibraryPath, readBuffer } from './native.js';

let fns = null; // koffi type names are global: declare once per process

function bindAudio(ml) {
  if (fns) return fns;
  koffi.opaque('MlAudio');
  const f = (sig) => ml.lib.func(sig);
  fns = {
    new: f('int32_t ml_audio_new(const char *config_json, _Out_ MlAudio **out)'),
    free: f('void ml_audio_free(MlAudio *h)'),
    frameSamples: f('int32_t ml_audio_frame_samples(const MlAudio *h, _Out_ size_t *samples)'),
    capture: f('int32_t ml_audio_capture(const MlAudio *h, const int16_t *mic, size_t mic_len, uint8_t *packet, size_t packet_cap, _Out_ size_t *packet_len)'),
    pushPacket: f('int32_t ml_audio_push_packet(const MlAudio *h, uint32_t speaker, uint16_t seq, const uint8_t *payload, size_t payload_len, uint64_t arrival_ms)'),
    pushTts: f('int32_t ml_audio_push_tts(const MlAudio *h, const int16_t *pcm, size_t len)'),
    playback: f('int32_t ml_audio_playback(const MlAudio *h, _Out_ int16_t *out, size_t out_len)'),
    pollEvent: f('int32_t ml_audio_poll_event(const MlAudio *h, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
    utterance: f('int32_t ml_audio_utterance(const MlAudio *h, _Out_ int16_t *out, size_t cap, _Out_ size_t *needed)'),
    utteranceWav: f('int32_t ml_audio_utterance_wav(const MlAudio *h, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
    flushPlayback: f('int32_t ml_audio_flush_playback(const MlAudio *h, _Out_ uint64_t *flushed_ms)'),
  };
  return fns;
}

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
    const out = new Int16Array(this.#n);
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
  const a = bindAudio(ml);
  return {
    create: (config = {}) => {
      const out = [null];
      check(ml, a.new(JSON.stringify(config), out));
      return new AudioPipeline(new NativePipeline(ml, a, out[0]));
    },
  };
}
