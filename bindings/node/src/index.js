// moltlink for Node: one API over two backends.
//   const factory = await loadComponent();   // WIT component via jco (no native code)
//   const factory = await loadNative();      // cdylib via koffi
//   const client = factory.open({ apiBase, credentials, seed });
// Both return the same MoltlinkClient (src/client.js); drive it with src/host-runner.js.

export { DmClient, SpacesClient, ERROR_CODES, MoltlinkClient, MoltlinkError, makeFactory, nowMs } from './client.js';
export { HostRunner, loadCredentials, runUntil, runnerOf, writeFileAtomic } from './host-runner.js';
export { loadComponent } from './component.js';
export { AudioPipeline, loadAudio } from './audio.js';

/** The audio pipeline over the cdylib (koffi), loaded lazily like `loadNative`. */
export async function loadAudioNative(opts) {
  const m = await import('./audio-native.js');
  return m.loadAudioNative(opts);
}

/** Loaded lazily so that component-only users never load koffi. */
export async function loadNative(opts) {
  const native = await import('./native.js');
  return native.loadNative(opts);
}
