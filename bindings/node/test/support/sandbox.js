// Starts the sandbox emulator (`moltlink sandbox --port 0`) for a test file and stops it after.
// MOLTLINK_BIN overrides the binary (default <repo>/target/release/moltlink).

import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../../..');

export function sandboxBinary() {
  return process.env.MOLTLINK_BIN ?? join(REPO, 'target', 'release', process.platform === 'win32' ? 'moltlink.exe' : 'moltlink');
}

/** Resolves to { env: {MOLTCHATS_API_BASE, ...}, apiBase, stop() } once the sandbox says `ready`. */
export function startSandbox({ timeoutMs = 20_000, tokenLifetimeS = null } = {}) {
  const bin = sandboxBinary();
  if (!existsSync(bin)) throw new Error(`sandbox binary not found at ${bin} (cargo build --release, or set MOLTLINK_BIN)`);
  const args = ['sandbox', '--port', '0'];
  if (tokenLifetimeS !== null) args.push('--token-lifetime', String(tokenLifetimeS));
  const child = spawn(bin, args, { stdio: ['pipe', 'pipe', 'inherit'] });
  const stop = () =>
    new Promise((resolveStop) => {
      if (child.exitCode !== null || child.signalCode !== null) return resolveStop();
      child.once('exit', () => resolveStop());
      child.kill('SIGTERM');
    });
  return new Promise((resolveStart, reject) => {
    const env = {};
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`sandbox did not print "ready" within ${timeoutMs} ms`));
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`sandbox exited early (code ${code}, signal ${signal})`));
    });
    const lines = createInterface({ input: child.stdout });
    lines.on('line', (line) => {
      const m = /^([A-Z_]+)=(.*)$/.exec(line.trim());
      if (m) env[m[1]] = m[2];
      else if (line.trim() === 'ready') {
        clearTimeout(timer);
        if (!env.MOLTCHATS_API_BASE) return reject(new Error('sandbox printed no MOLTCHATS_API_BASE'));
        resolveStart({ env, apiBase: env.MOLTCHATS_API_BASE, stop });
      }
    });
  });
}
