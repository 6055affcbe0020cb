// The voice pipeline (WIT interface `moltlink:core/audio`) from the component, thinly wrapped:
//   const audio = await loadAudio();
//   const p = audio.create({ device: { rate: 48000, channels: 1 } });
//   const packet = p.capture(int16Frame, true);  // Uint8Array (Opus), or empty without encode
//   const out = p.playback();                     // Int16Array, one 20 ms speaker frame
//   for (let e; (e = p.pollEvent()); ) ...        // { type: 'speech-started', at_ms } …
// Frames are interleaved Int16Array of `p.frameSamples` samples (20 ms at the device format),
// except at rates where 20 ms is not a whole number of samples (11 025 Hz: 220/221 alternate):
// `p.nextCaptureSamples()` / `p.nextPlaybackSamples()` give the next sizes.

import { getCoreModule, guard, importObject } from './component.js';

const GENERATED = '../component/moltlink.js';

export class AudioPipeline {
  #p;
  constructor(p) {
    this.#p = p;
    this.frameSamples = p.frameSamples();
  }
  nextCaptureSamples() {
    return this.#p.nextCaptureSamples();
  }
  nextPlaybackSamples() {
    return this.#p.nextPlaybackSamples();
  }
  capture(mic, encode = false) {
    return guard(() => this.#p.capture(Int16Array.from(mic), encode));
  }
  pushPacket(speaker, seq, payload, arrivalMs) {
    guard(() => this.#p.pushPacket(speaker, seq, payload, BigInt(arrivalMs)));
  }
  pushTts(pcm) {
    this.#p.pushTts(Int16Array.from(pcm));
  }
  playback() {
    return guard(() => this.#p.playback());
  }
  pollEvent() {
    const json = this.#p.pollEvent();
    return json === undefined ? null : JSON.parse(json);
  }
  utterance() {
    return this.#p.utterance();
  }
  utteranceWav() {
    return this.#p.utteranceWav();
  }
  flushPlayback() {
    return Number(this.#p.flushPlayback());
  }
  close() {
    const p = this.#p;
    this.#p = null;
    p?.[Symbol.dispose]?.();
  }
}

/** Instantiate the component; `create(config)` makes pipelines (config: an AudioConfig object). */
export async function loadAudio() {
  const generated = await import(GENERATED);
  const root = await generated.instantiate(getCoreModule, importObject());
  const { Pipeline } = root.audio;
  return { create: (config = {}) => new AudioPipeline(guard(() => Pipeline.create(JSON.stringify(config)))) };
}
