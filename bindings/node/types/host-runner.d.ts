// `moltlink/host-runner`: the host loop (fetch, WebSockets, credential files, timers).
export { HostRunner, loadCredentials, runUntil, runnerOf, writeFileAtomic } from './index.js';
export type { RunnerOptions, RunUntilOptions } from './index.js';
