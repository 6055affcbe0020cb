// A small host for a MoltlinkClient (either backend): performs its HTTP requests with the
// global `fetch`, persists its credentials atomically, and drives its timers.
//
//   const event = await runUntil(client, (e) => e.type === 'authenticated', { credentialsPath });
//
// The core decides everything; this file only does I/O. Rules it keeps:
//  - redirects are never followed (`redirect: 'manual'`): requests carry bearer tokens, and
//    the core sees the 3xx response itself;
//  - credentials (private key + refresh token) are written to a temp file with mode 0600,
//    fsynced and renamed over the old file, and only then acknowledged with
//    `handlePersisted`; the core does not rely on them before that;
//  - requests run concurrently; their results are fed back one at a time between polls.

import { randomBytes } from 'node:crypto';
import { mkdir, open, readFile, rename, unlink } from 'node:fs/promises';
import { dirname } from 'node:path';

/** Read saved credentials; null when the file does not exist. */
export async function loadCredentials(path) {
  try {
    return new Uint8Array(await readFile(path));
  } catch (e) {
    if (e.code === 'ENOENT') return null;
    throw e;
  }
}

/** Write `bytes` to `path` atomically (tmp file 0600 + fsync + rename + fsync of the folder). */
export async function writeFileAtomic(path, bytes) {
  const dir = dirname(path);
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
  const fh = await open(tmp, 'wx', 0o600);
  try {
    await fh.writeFile(bytes);
    await fh.sync();
  } catch (e) {
    await fh.close().catch(() => {});
    await unlink(tmp).catch(() => {});
    throw e;
  }
  await fh.close();
  try {
    await rename(tmp, path);
  } catch (e) {
    await unlink(tmp).catch(() => {});
    throw e;
  }
  const d = await open(dir, 'r');
  try {
    await d.sync();
  } catch {
    // Some filesystems cannot fsync a folder; the rename is still atomic.
  } finally {
    await d.close();
  }
}

const sleep = (ms) => {
  let timer;
  const promise = new Promise((resolve) => {
    timer = setTimeout(resolve, Math.max(0, ms));
  });
  return { promise, cancel: () => clearTimeout(timer) };
};

export class HostRunner {
  #client;
  #opts;
  #done = []; // finished HTTP exchanges waiting to be fed back
  #wake = null; // resolves the current wait when an exchange finishes
  #inFlight = 0;

  /**
   * @param client a MoltlinkClient
   * @param opts.credentialsPath where `persist` outputs go (omit: kept in memory as `.credentials`)
   * @param opts.requestTimeoutMs per-request timeout (default 30 s)
   * @param opts.fetch the fetch to use (default global fetch)
   * @param opts.onEvent called with every event
   */
  constructor(client, opts = {}) {
    this.#client = client;
    this.#opts = opts;
    /** The last persisted bytes (always kept; also written to credentialsPath if set). */
    this.credentials = null;
    /** Every event seen, in order. */
    this.events = [];
  }

  get inFlight() {
    return this.#inFlight;
  }

  /**
   * Drive the client until `predicate(event)` is true for an event; returns that event.
   * Throws after `timeoutMs` (default 30 s), or when the client is idle with nothing pending
   * (the predicate can then never be satisfied).
   */
  async runUntil(predicate, { timeoutMs = 30_000 } = {}) {
    const client = this.#client;
    const giveUpAt = Date.now() + timeoutMs;
    for (;;) {
      const out = client.poll();
      switch (out.kind) {
        case 'http':
          this.#start(out);
          break;
        case 'persist':
          await this.#persist(out.bytes);
          client.handlePersisted(out.ticket, Date.now());
          break;
        case 'event':
          this.events.push(out.event);
          this.#opts.onEvent?.(out.event);
          if (predicate(out.event)) return out.event;
          break;
        case 'wait': {
          if (this.#done.length > 0) {
            this.#feed(this.#done.shift());
            break;
          }
          const now = Date.now();
          if (out.untilMs !== null && out.untilMs <= now) {
            client.handleTimeout(now);
            break;
          }
          if (now >= giveUpAt) throw new Error(`moltlink host: condition not reached within ${timeoutMs} ms`);
          if (this.#inFlight === 0 && out.untilMs === null) {
            throw new Error('moltlink host: client is idle with nothing pending; condition cannot be reached');
          }
          const until = Math.min(giveUpAt, out.untilMs ?? Infinity);
          const timer = sleep(until - now);
          const woken = new Promise((resolve) => {
            this.#wake = resolve;
          });
          await Promise.race([timer.promise, woken]);
          timer.cancel();
          this.#wake = null;
          break;
        }
        default:
          throw new Error(`moltlink host: unknown output ${out.kind}`);
      }
    }
  }

  #feed({ id, response, error }) {
    const now = Date.now();
    if (error !== undefined) this.#client.handleTransportError(id, error, now);
    else this.#client.handleResponse(id, response.status, response.headers, response.body, now);
  }

  #start(req) {
    const f = this.#opts.fetch ?? globalThis.fetch;
    this.#inFlight += 1;
    const init = {
      method: req.method,
      headers: req.headers,
      body: req.body.length > 0 ? req.body : undefined,
      redirect: 'manual',
      signal: AbortSignal.timeout(this.#opts.requestTimeoutMs ?? 30_000),
    };
    f(req.url, init)
      .then(async (res) => {
        if (res.status === 0) throw new Error('opaque response (redirect not followed)');
        const body = new Uint8Array(await res.arrayBuffer());
        return { id: req.id, response: { status: res.status, headers: [...res.headers], body } };
      })
      .catch((e) => ({ id: req.id, error: describeFetchError(e) }))
      .then((done) => {
        this.#inFlight -= 1;
        this.#done.push(done);
        this.#wake?.();
      });
  }

  async #persist(bytes) {
    if (this.#opts.credentialsPath) await writeFileAtomic(this.#opts.credentialsPath, bytes);
    this.credentials = bytes;
  }
}

/** Messages from fetch failures carry no request data (URLs can hold ids, never tokens). */
function describeFetchError(e) {
  const cause = e?.cause?.code ?? e?.cause?.message;
  const name = e?.name === 'TimeoutError' ? 'request timed out' : (e?.message ?? String(e));
  return cause ? `${name} (${cause})` : name;
}

const runners = new WeakMap();

/**
 * Drive `client` until `predicate(event)`; one HostRunner per client is kept (so requests
 * in flight survive between calls). Options as for HostRunner plus `timeoutMs`.
 */
export function runUntil(client, predicate, opts = {}) {
  let runner = runners.get(client);
  if (!runner) {
    runner = new HostRunner(client, opts);
    runners.set(client, runner);
  }
  return runner.runUntil(predicate, opts);
}

/** The HostRunner `runUntil` uses for `client` (for its `.events` and `.credentials`). */
export function runnerOf(client) {
  return runners.get(client);
}
