// Time to a usable component in a fresh Node process: import the adapter, compile and
// instantiate the transpiled core modules (`loadComponent()`), open one client. Each round is a
// new process, since Node caches modules. Run after `npm run build`: `node bench/instantiate.mjs`
// (ROUNDS=n to change the count). Prints the median, the best round and the
// CPU time (a loaded machine inflates wall time, CPU time less so); nothing is asserted.
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { stat } from 'node:fs/promises';

const self = fileURLToPath(import.meta.url);

if (process.argv[2] === '--once') {
  const c0 = process.cpuUsage();
  const t0 = performance.now();
  const { loadComponent } = await import('../src/component.js');
  const api = await loadComponent();
  const t1 = performance.now();
  const c1 = process.cpuUsage(c0);
  api.open({ seed: new Uint8Array(32) });
  const t2 = performance.now();
  console.log(JSON.stringify({ instantiate: t1 - t0, cpu: (c1.user + c1.system) / 1000, firstClient: t2 - t1 }));
} else {
  const rounds = Number(process.env.ROUNDS ?? 9);
  const runs = [];
  for (let i = 0; i < rounds; i++) {
    const r = spawnSync(process.execPath, [self, '--once'], { encoding: 'utf8' });
    if (r.status !== 0) throw new Error(`round ${i} failed:\n${r.stderr}`);
    runs.push(JSON.parse(r.stdout.trim().split('\n').pop()));
  }
  const median = (xs) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)];
  const core = new URL('../component/moltlink.core.wasm', import.meta.url);
  const bytes = (await stat(core)).size;
  const inst = median(runs.map((r) => r.instantiate));
  const open = median(runs.map((r) => r.firstClient));
  const best = Math.min(...runs.map((r) => r.instantiate));
  const cpu = median(runs.map((r) => r.cpu));
  console.log(`instantiate: import + loadComponent ${inst.toFixed(1)} ms (best ${best.toFixed(1)}; CPU ${cpu.toFixed(0)} ms, all threads), first client ${open.toFixed(2)} ms ` +
    `(median of ${rounds} fresh processes, core module ${bytes} bytes, node ${process.version})`);
}
