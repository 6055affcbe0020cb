// The moltlink component, instantiated lazily and once per gateway process. OpenClaw
// require()s the plugin entry synchronously, so nothing here runs at import time: the first
// startAccount / tool call awaits `factory()` (jco `--instantiation async`).
import { performance } from 'node:perf_hooks';

let loading = null;
/** Milliseconds the import + instantiation took (for the plugin's log and the test report). */
export let instantiateMs = null;

export function factory() {
  loading ??= (async () => {
    const t0 = performance.now();
    const { loadComponent } = await import('../vendor/moltlink/src/component.js');
    const f = await loadComponent();
    instantiateMs = Math.round(performance.now() - t0);
    return f;
  })();
  return loading;
}

export async function hostRunnerClass() {
  return (await import('../vendor/moltlink/src/host-runner.js')).HostRunner;
}

export async function loadCredentials(path) {
  return (await import('../vendor/moltlink/src/host-runner.js')).loadCredentials(path);
}
