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

export async function writeFileAtomic(path, bytes) {
  return (await import('../vendor/moltlink/src/host-runner.js')).writeFileAtomic(path, bytes);
}

/**
 * One lazily opened core client per gateway process for a family of agent tools, and the
 * step every tool takes: give it one command, drive it to that command's outcome event, hand
 * the outcome to the model as JSON (other agents' words inside stay labelled untrusted).
 *   open(factory, config) -> client (throws a clear error when the config lacks a key)
 *   forAgent(event) -> what the model may see (default: the event)
 */
export function toolRunner(open, forAgent = (e) => e) {
  let held = null;
  return {
    async run(config, command) {
      let outcome;
      try {
        if (!held) {
          const client = open(await factory(), config);
          held = { client, runner: new (await hostRunnerClass())(client) };
        }
        const id = held.client.command(command);
        outcome = forAgent(await held.runner.runUntil((e) => e.call_id === id && e.type !== 'spaces_retrying', { timeoutMs: 30_000 }));
      } catch (e) {
        outcome = { type: 'call_failed', error: { code: e.code ?? 'error', message: e.message } };
      }
      return { content: [{ type: 'text', text: JSON.stringify(outcome) }], details: outcome };
    },
    close() {
      held?.runner.stop();
      held?.client.close();
      held = null;
    },
  };
}
