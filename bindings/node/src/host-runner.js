// A small host for a MoltlinkClient (either backend): performs its HTTP requests with the
// global `fetch`, its WebSockets (realtime session) with the global WebSocket (Node >= 22)
// or the `ws` package, persists its credentials atomically, and drives its timers.
//
//   const event = await runUntil(client, (e) => e.type === 'authenticated', { credentialsPath });
//
// The core decides everything; this file only does I/O. Rules it keeps:
//  - redirects are never followed (`redirect: 'manual'`): requests carry bearer tokens, and
//    the core sees the 3xx response itself;
//  - credentials (private key + refresh token) are written to a temp file with mode 0600,
//    fsynced and renamed over the old file, and only then acknowledged with
//    `handlePersisted`; the core does not rely on them before that;
//  - requests run concurrently; their results (and WebSocket opens, frames and closes) are fed
//    back one at a time between polls, in arrival order;
//  - a WebSocket URL carries the access token: it is never logged or put in an error.

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

/** The WebSocket class: `opts.WebSocket`, the global one (Node >= 22), else the `ws` package. */
async function webSocketClass(opts) {
  if (opts.WebSocket) return opts.WebSocket;
  if (typeof globalThis.WebSocket === 'function') return globalThis.WebSocket;
  try {
    return (await import('ws')).WebSocket;
  } catch {
    throw new Error('moltlink host: no WebSocket available (Node >= 22, or install the `ws` package)');
  }
}

export class HostRunner {
  #client;
  #opts;
  #done = []; // finished HTTP exchanges and socket happenings waiting to be fed back
  #wake = null; // resolves the current wait when an exchange finishes
  #inFlight = 0;
  #sockets = new Map(); // conn -> WebSocket
  #stopped = false;

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

  /** Wake a waiting run loop: call after giving the client a command from outside the loop. */
  wake() {
    this.#wake?.();
  }

  /**
   * Drive the client until `signal` aborts (or `stop()`), handing every event to
   * `opts.onEvent`. For long-lived hosts (e.g. a realtime session inside a plugin).
   */
  async run({ signal } = {}) {
    const abort = () => this.stop();
    signal?.addEventListener('abort', abort, { once: true });
    try {
      await this.runUntil(() => false, { timeoutMs: Infinity, idleOk: true });
    } catch (e) {
      if (!(e instanceof StoppedError)) throw e;
    } finally {
      signal?.removeEventListener('abort', abort);
    }
  }

  /** End `run()` / `runUntil()` and close the sockets this runner opened. */
  stop() {
    this.#stopped = true;
    for (const ws of this.#sockets.values()) {
      try {
        ws.close(1000);
      } catch {
        // already closing
      }
    }
    this.#sockets.clear();
    this.#wake?.();
  }

  /**
   * Drive the client until `predicate(event)` is true for an event; returns that event.
   * Throws after `timeoutMs` (default 30 s), or when the client is idle with nothing pending
   * (the predicate can then never be satisfied).
   */
  async runUntil(predicate, { timeoutMs = 30_000, idleOk = false } = {}) {
    const client = this.#client;
    const giveUpAt = Date.now() + timeoutMs;
    for (;;) {
      if (this.#stopped) throw new StoppedError();
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
          if (this.#stopped) throw new StoppedError();
          const now = Date.now();
          if (out.untilMs !== null && out.untilMs <= now) {
            client.handleTimeout(now);
            break;
          }
          if (now >= giveUpAt) throw new Error(`moltlink host: condition not reached within ${timeoutMs} ms`);
          if (!idleOk && this.#inFlight === 0 && this.#sockets.size === 0 && out.untilMs === null) {
            throw new Error('moltlink host: client is idle with nothing pending; condition cannot be reached');
          }
          // setTimeout takes at most 2^31-1 ms; a longer wait just loops.
          const until = Math.min(giveUpAt, out.untilMs ?? Infinity, now + 2 ** 31 - 1);
          const timer = sleep(until - now);
          const woken = new Promise((resolve) => {
            this.#wake = resolve;
          });
          await Promise.race([timer.promise, woken]);
          timer.cancel();
          this.#wake = null;
          break;
        }
        case 'ws_open':
          await this.#wsOpen(out.conn, out.url);
          break;
        case 'ws_send': {
          const ws = this.#sockets.get(out.conn);
          if (ws && ws.readyState === 1) ws.send(out.text);
          else this.#push({ ws: 'closed', conn: out.conn, code: 1006, reason: 'not open' });
          break;
        }
        case 'ws_close': {
          // The core needs no handle_ws_closed for a close it asked for.
          const ws = this.#sockets.get(out.conn);
          this.#sockets.delete(out.conn);
          try {
            ws?.close(out.code >= 3000 || out.code === 1000 ? out.code : 1000, out.reason);
          } catch {
            ws?.close();
          }
          break;
        }
        default:
          throw new Error(`moltlink host: unknown output ${out.kind}`);
      }
    }
  }

  #push(item) {
    this.#done.push(item);
    this.#wake?.();
  }

  #feed(item) {
    const now = Date.now();
    if (item.ws === 'open') this.#client.handleWsOpen(item.conn, now);
    else if (item.ws === 'frame') this.#client.handleWsFrame(item.conn, item.text, now);
    else if (item.ws === 'closed') this.#client.handleWsClosed(item.conn, item.code, item.reason, now);
    else if (item.error !== undefined) this.#client.handleTransportError(item.id, item.error, now);
    else this.#client.handleResponse(item.id, item.response.status, item.response.headers, item.response.body, now);
  }

  async #wsOpen(conn, url) {
    const WS = await webSocketClass(this.#opts);
    let ws;
    try {
      ws = new WS(url);
    } catch (e) {
      // Never echo the URL: it carries the token.
      this.#push({ ws: 'closed', conn, code: 1006, reason: e?.name ?? 'invalid url' });
      return;
    }
    this.#sockets.set(conn, ws);
    let closed = false;
    const onClosed = (code, reason) => {
      if (closed) return;
      closed = true;
      // A socket we closed on the core's request is already forgotten: report nothing.
      if (this.#sockets.get(conn) !== ws) return;
      this.#sockets.delete(conn);
      this.#push({ ws: 'closed', conn, code: code || 1006, reason: String(reason ?? '') });
    };
    ws.addEventListener('open', () => this.#push({ ws: 'open', conn }));
    ws.addEventListener('message', (ev) => {
      const data = ev.data;
      const text = typeof data === 'string' ? data : new TextDecoder().decode(data instanceof ArrayBuffer ? new Uint8Array(data) : data);
      this.#push({ ws: 'frame', conn, text });
    });
    ws.addEventListener('close', (ev) => onClosed(ev.code, ev.reason));
    ws.addEventListener('error', () => onClosed(1006, 'socket error'));
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

class StoppedError extends Error {
  constructor() {
    super('moltlink host: stopped');
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
