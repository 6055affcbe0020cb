// Backend 2: the native cdylib (target/release/libmoltlink.so) through koffi, using the C ABI
// of bindings/c/moltlink.h as declared in decls.js (generated from the header by
// bindings/gen-decls.py). Outputs are read with the poll API (ml_chats_poll + meta/body);
// `pump` uses koffi callbacks registered for the duration of one ml_chats_pump call only.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { ERROR_CODES, MoltlinkError, makeFactory } from './client.js';
import { CONSTANTS, bindFunctions, declareTypes } from './decls.js';

const HERE = dirname(fileURLToPath(import.meta.url));
const REPO = resolve(HERE, '../../..');

/**
 * `MOLTLINK_LIBRARY`, else the library bundled in the npm package (`native/<platform>-<arch>/`,
 * added by host-tests/packages/node.sh), else a checkout's `target/release/`. The bundled one
 * comes first so an installed package never depends on where it was installed.
 */
export function defaultLibraryPath() {
  if (process.env.MOLTLINK_LIBRARY) return process.env.MOLTLINK_LIBRARY;
  const name = process.platform === 'win32' ? 'moltlink.dll' : process.platform === 'darwin' ? 'libmoltlink.dylib' : 'libmoltlink.so';
  const bundled = join(HERE, '..', 'native', `${process.platform}-${process.arch}`, name);
  if (existsSync(bundled)) return bundled;
  return join(REPO, 'target', 'release', name);
}

/** Output kind names by number, from the header's `ML_OUTPUT_*` (`ML_OUTPUT_WS_OPEN` -> 'ws_open'). */
const OUTPUT_KINDS = [];
for (const [name, value] of Object.entries(CONSTANTS)) {
  if (name.startsWith('ML_OUTPUT_')) OUTPUT_KINDS[value] = name.slice('ML_OUTPUT_'.length).toLowerCase();
}

/** `ml_chats_handle_response` -> `handleResponse` for the group with prefix `ml_chats_`. */
function group(fns, prefix) {
  const out = {};
  for (const [name, fn] of Object.entries(fns)) {
    if (!name.startsWith(prefix)) continue;
    out[name.slice(prefix.length).replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())] = fn;
  }
  return out;
}

function bind(path) {
  const lib = koffi.load(path);
  const fns = bindFunctions(lib);
  const p = declareTypes().protos;
  // The callbacks of ml_*_pump; `Ws` only for chats (dm/spaces have no realtime outputs).
  const protos = { SendHttp: p.MlCallbacks_send_http, Persist: p.MlCallbacks_persist, EmitEvent: p.MlCallbacks_emit_event };
  const lastErrorMessage = fns.ml_last_error_message;
  return {
    lib,
    protos: { ...protos, Ws: p.MlCallbacks_ws },
    ...group(fns, 'ml_chats_'),
    lastErrorMessage,
    // The DM and Moltspaces clients: the same names for the shared inputs/outputs, so one
    // backend class serves all three.
    spaces: { protos, ...group(fns, 'ml_spaces_'), lastErrorMessage },
    dm: { protos, ...group(fns, 'ml_dm_'), lastErrorMessage },
    audio: group(fns, 'ml_audio_'),
  };
}

let bound = null; // { path, api }: one library per process (koffi type names are global)

export function api(path) {
  if (bound) {
    if (bound.path !== path) throw new Error(`moltlink: ${bound.path} is already loaded; cannot also load ${path}`);
    return bound.api;
  }
  if (!existsSync(path)) {
    throw new Error(`moltlink: native library not found at ${path} (this platform has no bundled build: cargo build --release --lib, or set MOLTLINK_LIBRARY)`);
  }
  bound = { path, api: bind(path) };
  return bound.api;
}

const num = (v) => (typeof v === 'bigint' ? Number(v) : v);
const decoder = new TextDecoder();

function lastError(ml) {
  const needed = num(ml.lastErrorMessage(null, 0));
  if (needed === 0) return '';
  const buf = Buffer.alloc(needed);
  ml.lastErrorMessage(buf, needed);
  return decoder.decode(buf.subarray(0, needed - 1));
}

/** A WebSocket output from its meta JSON (`conn`, `url` / `code`, `reason`) and body (the frame). */
function wsOut(kind, meta, body) {
  const conn = num(meta.conn);
  if (kind === 'ws_open') return { kind, conn, url: meta.url };
  if (kind === 'ws_send') return { kind, conn, text: decoder.decode(body) };
  return { kind: 'ws_close', conn, code: meta.code ?? 1000, reason: meta.reason ?? '' };
}

export function check(ml, rc) {
  if (rc !== 0) throw new MoltlinkError(ERROR_CODES[rc] ?? `unknown-${rc}`, lastError(ml));
}

/** Read a "copy into caller buffer" value (ml_chats_agent_id, output meta/body). */
export function readBuffer(ml, fn, h, hint) {
  let cap = Math.max(hint, 16);
  for (;;) {
    const buf = Buffer.alloc(cap);
    const needed = [0];
    const rc = fn(h, buf, cap, needed);
    const n = num(needed[0]);
    if (rc === CONSTANTS.ML_BUFFER_TOO_SMALL && n >= cap) {
      cap = n + 1;
      continue;
    }
    check(ml, rc);
    return buf.subarray(0, n);
  }
}

function toCBytes(bytes) {
  return bytes.length === 0 ? null : bytes;
}

class NativeBackend {
  #ml;
  #h;
  #registry;

  constructor(ml, handle, registry) {
    this.#ml = ml;
    this.#h = handle;
    this.#registry = registry;
    registry.register(this, handle, this);
  }

  #handle() {
    if (this.#h === null) throw new MoltlinkError('invalid-state', 'client is closed');
    return this.#h;
  }

  register(username, nowMs) {
    check(this.#ml, this.#ml.register(this.#handle(), username, nowMs));
  }
  login(nowMs) {
    check(this.#ml, this.#ml.login(this.#handle(), nowMs));
  }
  refresh(nowMs) {
    check(this.#ml, this.#ml.refresh(this.#handle(), nowMs));
  }
  whoami(nowMs) {
    const id = [0];
    check(this.#ml, this.#ml.whoami(this.#handle(), nowMs, id));
    return num(id[0]);
  }
  call(method, path, bodyJson, nowMs) {
    const id = [0];
    check(this.#ml, this.#ml.call(this.#handle(), method, path, bodyJson, nowMs, id));
    return num(id[0]);
  }
  command(json, nowMs) {
    const id = [0];
    check(this.#ml, this.#ml.command(this.#handle(), json, nowMs, id));
    return num(id[0]);
  }
  queueState(nowMs) {
    const h = this.#handle();
    const read = (hh, buf, cap, needed) => this.#ml.queueState(hh, nowMs, buf, cap, needed);
    return JSON.parse(decoder.decode(readBuffer(this.#ml, read, h, 256)));
  }
  handleResponse(id, status, headers, body, nowMs) {
    check(this.#ml, this.#ml.handleResponse(this.#handle(), id, status, JSON.stringify(headers), toCBytes(body), body.length, nowMs));
  }
  handleTransportError(id, message, nowMs) {
    check(this.#ml, this.#ml.handleTransportError(this.#handle(), id, message, nowMs));
  }
  handleTimeout(nowMs) {
    check(this.#ml, this.#ml.handleTimeout(this.#handle(), nowMs));
  }
  handlePersisted(ticket, nowMs) {
    check(this.#ml, this.#ml.handlePersisted(this.#handle(), ticket, nowMs));
  }

  poll() {
    const ml = this.#ml;
    const h = this.#handle();
    const out = {};
    check(ml, ml.poll(h, out));
    const kind = OUTPUT_KINDS[out.kind];
    if (kind === 'wait') return { kind, untilMs: out.has_deadline ? num(out.deadline_ms) : null };
    const meta = JSON.parse(decoder.decode(readBuffer(ml, ml.outputMeta, h, num(out.meta_len) + 1)));
    const bodyLen = num(out.body_len);
    const body = bodyLen === 0 ? new Uint8Array() : new Uint8Array(readBuffer(ml, ml.outputBody, h, bodyLen));
    switch (kind) {
      case 'http':
        return { kind, id: num(meta.id), method: meta.method, url: meta.url, headers: meta.headers, body };
      case 'persist':
        return { kind, ticket: num(meta.ticket), bytes: body };
      case 'event':
        return { kind, event: meta.event };
      case 'ws_open':
      case 'ws_send':
      case 'ws_close':
        return wsOut(kind, meta, body);
      default:
        throw new Error(`moltlink: unknown output kind ${out.kind}`);
    }
  }

  pump(cb) {
    const ml = this.#ml;
    const { SendHttp, Persist, EmitEvent, Ws } = ml.protos;
    const bytes = (ptr, len) => (len === 0 ? new Uint8Array() : Uint8Array.from(koffi.decode(ptr, koffi.array('uint8_t', len))));
    // An exception must not unwind through Rust: remember the first one (a decoding bug here;
    // the user's callbacks are already guarded by MoltlinkClient.pump) and rethrow it once
    // ml_chats_pump has returned. Later outputs are still delivered.
    let failure = null;
    const safe = (fn) => (...args) => {
      try {
        fn(...args);
      } catch (e) {
        failure ??= e;
      }
    };
    const wantWs = Ws !== undefined && typeof cb.ws === 'function';
    const registered = [
      koffi.register(safe((_ctx, _id, metaJson, body, len) => {
        const meta = JSON.parse(metaJson);
        cb.sendHttp({ kind: 'http', id: num(meta.id), method: meta.method, url: meta.url, headers: meta.headers, body: bytes(body, num(len)) });
      }), koffi.pointer(SendHttp)),
      koffi.register(safe((_ctx, ticket, data, len) => cb.persist(num(ticket), bytes(data, num(len)))), koffi.pointer(Persist)),
      koffi.register(safe((_ctx, eventJson) => cb.emitEvent(JSON.parse(eventJson))), koffi.pointer(EmitEvent)),
    ];
    if (wantWs) {
      registered.push(koffi.register(safe((_ctx, kind, _conn, metaJson, body, len) => {
        cb.ws(wsOut(OUTPUT_KINDS[kind], JSON.parse(metaJson), bytes(body, num(len))));
      }), koffi.pointer(Ws)));
    }
    try {
      const hasDeadline = [0];
      const deadline = [0];
      const callbacks = { ctx: null, send_http: registered[0], persist: registered[1], emit_event: registered[2], ws: wantWs ? registered[3] : null };
      check(ml, ml.pump(this.#handle(), callbacks, hasDeadline, deadline));
      if (failure) throw failure;
      return hasDeadline[0] ? num(deadline[0]) : null;
    } finally {
      for (const r of registered) koffi.unregister(r);
    }
  }

  agentId() {
    const ml = this.#ml;
    const h = this.#handle();
    const needed = [0];
    const rc = ml.agentId(h, null, 0, needed);
    if (rc === 0 && num(needed[0]) === 0) return null;
    const text = decoder.decode(readBuffer(ml, ml.agentId, h, num(needed[0]) + 1));
    return text === '' ? null : text;
  }

  isAuthenticated(nowMs) {
    const out = [0];
    check(this.#ml, this.#ml.isAuthenticated(this.#handle(), nowMs, out));
    return out[0] !== 0;
  }

  // Realtime (chats handles only).
  setWsBase(url) {
    check(this.#ml, this.#ml.setWsBase(this.#handle(), url));
  }
  connect(nowMs) {
    check(this.#ml, this.#ml.connect(this.#handle(), nowMs));
  }
  disconnect(nowMs) {
    check(this.#ml, this.#ml.disconnect(this.#handle(), nowMs));
  }
  subscribe(channels, nowMs) {
    check(this.#ml, this.#ml.subscribe(this.#handle(), JSON.stringify(channels), nowMs));
  }
  unsubscribe(channels, nowMs) {
    check(this.#ml, this.#ml.unsubscribe(this.#handle(), JSON.stringify(channels), nowMs));
  }
  sendMessage(channel, content, contentType, nowMs) {
    const id = [0];
    check(this.#ml, this.#ml.sendMessage(this.#handle(), channel, content, contentType, nowMs, id));
    return num(id[0]);
  }
  typing(channel, nowMs) {
    check(this.#ml, this.#ml.typing(this.#handle(), channel, nowMs));
  }
  handleWsOpen(conn, nowMs) {
    check(this.#ml, this.#ml.handleWsOpen(this.#handle(), conn, nowMs));
  }
  handleWsFrame(conn, text, nowMs) {
    const bytes = Buffer.from(text, 'utf8');
    check(this.#ml, this.#ml.handleWsFrame(this.#handle(), conn, bytes, bytes.length, nowMs));
  }
  handleWsClosed(conn, code, reason, nowMs) {
    check(this.#ml, this.#ml.handleWsClosed(this.#handle(), conn, code, reason, nowMs));
  }

  // DM handles only (their function table has these).
  command(commandJson, nowMs) {
    const id = [0];
    check(this.#ml, this.#ml.command(this.#handle(), commandJson, nowMs, id));
    return num(id[0]);
  }
  heartbeat(running, nowMs) {
    check(this.#ml, this.#ml.heartbeat(this.#handle(), running ? 1 : 0, nowMs));
  }
  utterance(wav, nowMs) {
    const turn = [0];
    check(this.#ml, this.#ml.utterance(this.#handle(), toCBytes(wav), wav.length, nowMs, turn));
    return num(turn[0]);
  }
  handleBodyChunk(id, chunk, nowMs) {
    check(this.#ml, this.#ml.handleBodyChunk(this.#handle(), id, toCBytes(chunk), chunk.length, nowMs));
  }
  takeAudio() {
    return new Uint8Array(readBuffer(this.#ml, this.#ml.takeAudio, this.#handle(), 16));
  }
  spacesState() {
    return JSON.parse(decoder.decode(readBuffer(this.#ml, this.#ml.state, this.#handle(), 128)));
  }
  state(conversationId) {
    const ml = this.#ml;
    const read = (h, buf, cap, needed) => ml.state(h, conversationId, buf, cap, needed);
    return decoder.decode(readBuffer(ml, read, this.#handle(), 16));
  }

  close() {
    if (this.#h === null) return;
    this.#registry.unregister(this);
    this.#ml.free(this.#h);
    this.#h = null;
  }
}

/**
 * Load the cdylib and return the factory `{ kind: 'native', open(opts) }` (same API as
 * `loadComponent()`). Async only for symmetry with the component loader.
 */
export async function loadNative({ libraryPath = defaultLibraryPath() } = {}) {
  const ml = api(libraryPath);
  // Handles dropped without close() are freed by the GC.
  const registry = new FinalizationRegistry((handle) => ml.free(handle));
  const dmRegistry = new FinalizationRegistry((handle) => ml.dm.free(handle));
  const spacesRegistry = new FinalizationRegistry((handle) => ml.spaces.free(handle));
  return makeFactory(
    'native',
    (apiBase, credentials, seed) => {
      const out = [null];
      check(ml, ml.new(apiBase, credentials ? toCBytes(credentials) : null, credentials ? credentials.length : 0, seed, seed.length, out));
      return new NativeBackend(ml, out[0], registry);
    },
    (apiBase, apiKey, seed) => {
      const out = [null];
      check(ml, ml.dm.new(apiBase, apiKey, seed, seed.length, out));
      return new NativeBackend(ml.dm, out[0], dmRegistry);
    },
    (env, optionsJson) => {
      const out = [null];
      check(ml, ml.spaces.new(toCBytes(env), env.length, optionsJson, out));
      return new NativeBackend(ml.spaces, out[0], spacesRegistry);
    },
  );
}
