// Backend 2: the native cdylib (target/release/libmoltlink.so) through koffi, using the C ABI
// of bindings/c/moltlink.h. Outputs are read with the poll API (ml_chats_poll + meta/body);
// `pump` uses koffi callbacks registered for the duration of one ml_chats_pump call only.

import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { ERROR_CODES, MoltlinkError, makeFactory } from './client.js';

const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../../..');

/** `MOLTLINK_LIBRARY`, else `<repo>/target/release/libmoltlink.{so,dylib}` / `moltlink.dll`. */
export function defaultLibraryPath() {
  if (process.env.MOLTLINK_LIBRARY) return process.env.MOLTLINK_LIBRARY;
  const name = process.platform === 'win32' ? 'moltlink.dll' : process.platform === 'darwin' ? 'libmoltlink.dylib' : 'libmoltlink.so';
  return join(REPO, 'target', 'release', name);
}

const OUTPUT_KINDS = ['wait', 'http', 'persist', 'event', 'ws_open', 'ws_send', 'ws_close'];

function bind(path) {
  const lib = koffi.load(path);
  // koffi types are global by name: declare them once per process.
  const MlChats = koffi.opaque('MlChats');
  const MlOutput = koffi.struct('MlOutput', {
    kind: 'uint32_t',
    id: 'uint64_t',
    has_deadline: 'int32_t',
    deadline_ms: 'uint64_t',
    meta_len: 'size_t',
    body_len: 'size_t',
  });
  const SendHttp = koffi.proto('void MlSendHttp(void *ctx, uint64_t id, const char *meta_json, const uint8_t *body, size_t body_len)');
  const Persist = koffi.proto('void MlPersist(void *ctx, uint64_t ticket, const uint8_t *bytes, size_t len)');
  const EmitEvent = koffi.proto('void MlEmitEvent(void *ctx, const char *event_json)');
  const Ws = koffi.proto('void MlWs(void *ctx, uint32_t kind, uint64_t conn, const char *meta_json, const uint8_t *body, size_t body_len)');
  const MlCallbacks = koffi.struct('MlCallbacks', {
    ctx: 'void *',
    send_http: koffi.pointer(SendHttp),
    persist: koffi.pointer(Persist),
    emit_event: koffi.pointer(EmitEvent),
    ws: koffi.pointer(Ws),
  });
  const MlDm = koffi.opaque('MlDm');
  void MlDm;
  void koffi.opaque('MlSpaces');
  void MlChats;
  void MlOutput;
  void MlCallbacks;
  const f = (sig) => lib.func(sig);
  return {
    lib,
    protos: { SendHttp, Persist, EmitEvent, Ws },
    new: f('int32_t ml_chats_new(const char *api_base, const uint8_t *credentials, size_t credentials_len, const uint8_t *seed, size_t seed_len, _Out_ MlChats **out)'),
    free: f('void ml_chats_free(MlChats *h)'),
    register: f('int32_t ml_chats_register(MlChats *h, const char *username, uint64_t now_ms)'),
    login: f('int32_t ml_chats_login(MlChats *h, uint64_t now_ms)'),
    refresh: f('int32_t ml_chats_refresh(MlChats *h, uint64_t now_ms)'),
    whoami: f('int32_t ml_chats_whoami(MlChats *h, uint64_t now_ms, _Out_ uint64_t *call_id)'),
    call: f('int32_t ml_chats_call(MlChats *h, const char *method, const char *path, const char *body_json, uint64_t now_ms, _Out_ uint64_t *call_id)'),
    command: f('int32_t ml_chats_command(MlChats *h, const char *command_json, uint64_t now_ms, _Out_ uint64_t *call_id)'),
    queueState: f('int32_t ml_chats_queue_state(MlChats *h, uint64_t now_ms, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
    handleResponse: f('int32_t ml_chats_handle_response(MlChats *h, uint64_t id, uint16_t status, const char *headers_json, const uint8_t *body, size_t body_len, uint64_t now_ms)'),
    handleTransportError: f('int32_t ml_chats_handle_transport_error(MlChats *h, uint64_t id, const char *message, uint64_t now_ms)'),
    handleTimeout: f('int32_t ml_chats_handle_timeout(MlChats *h, uint64_t now_ms)'),
    handlePersisted: f('int32_t ml_chats_handle_persisted(MlChats *h, uint64_t ticket, uint64_t now_ms)'),
    poll: f('int32_t ml_chats_poll(MlChats *h, _Out_ MlOutput *out)'),
    outputMeta: f('int32_t ml_chats_output_meta(const MlChats *h, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
    outputBody: f('int32_t ml_chats_output_body(const MlChats *h, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
    pump: f('int32_t ml_chats_pump(MlChats *h, const MlCallbacks *callbacks, _Out_ int32_t *has_deadline, _Out_ uint64_t *deadline_ms)'),
    agentId: f('int32_t ml_chats_agent_id(const MlChats *h, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
    isAuthenticated: f('int32_t ml_chats_is_authenticated(const MlChats *h, uint64_t now_ms, _Out_ int32_t *out)'),
    lastErrorMessage: f('size_t ml_last_error_message(uint8_t *buf, size_t cap)'),
    // Realtime.
    setWsBase: f('int32_t ml_chats_set_ws_base(MlChats *h, const char *url)'),
    connect: f('int32_t ml_chats_connect(MlChats *h, uint64_t now_ms)'),
    disconnect: f('int32_t ml_chats_disconnect(MlChats *h, uint64_t now_ms)'),
    subscribe: f('int32_t ml_chats_subscribe(MlChats *h, const char *channels_json, uint64_t now_ms)'),
    unsubscribe: f('int32_t ml_chats_unsubscribe(MlChats *h, const char *channels_json, uint64_t now_ms)'),
    sendMessage: f('int32_t ml_chats_send_message(MlChats *h, const char *channel, const char *content, const char *content_type, uint64_t now_ms, _Out_ uint64_t *send_id)'),
    typing: f('int32_t ml_chats_typing(MlChats *h, const char *channel, uint64_t now_ms)'),
    handleWsOpen: f('int32_t ml_chats_handle_ws_open(MlChats *h, uint64_t conn, uint64_t now_ms)'),
    handleWsFrame: f('int32_t ml_chats_handle_ws_frame(MlChats *h, uint64_t conn, const uint8_t *text, size_t len, uint64_t now_ms)'),
    handleWsClosed: f('int32_t ml_chats_handle_ws_closed(MlChats *h, uint64_t conn, uint16_t code, const char *reason, uint64_t now_ms)'),
    // The DM client: the same names for the shared inputs/outputs, so one backend class serves both.
    // Moltspaces: the shared names again, plus the utterance/audio byte paths.
    spaces: {
      protos: { SendHttp, Persist, EmitEvent },
      new: f('int32_t ml_spaces_new(const uint8_t *env, size_t env_len, const char *options_json, _Out_ MlSpaces **out)'),
      free: f('void ml_spaces_free(MlSpaces *h)'),
      command: f('int32_t ml_spaces_command(MlSpaces *h, const char *command_json, uint64_t now_ms, _Out_ uint64_t *call_id)'),
      utterance: f('int32_t ml_spaces_utterance(MlSpaces *h, const uint8_t *wav, size_t wav_len, uint64_t now_ms, _Out_ uint64_t *turn)'),
      handleBodyChunk: f('int32_t ml_spaces_handle_body_chunk(MlSpaces *h, uint64_t id, const uint8_t *chunk, size_t len, uint64_t now_ms)'),
      takeAudio: f('int32_t ml_spaces_take_audio(MlSpaces *h, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
      state: f('int32_t ml_spaces_state(const MlSpaces *h, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
      handleResponse: f('int32_t ml_spaces_handle_response(MlSpaces *h, uint64_t id, uint16_t status, const char *headers_json, const uint8_t *body, size_t body_len, uint64_t now_ms)'),
      handleTransportError: f('int32_t ml_spaces_handle_transport_error(MlSpaces *h, uint64_t id, const char *message, uint64_t now_ms)'),
      handleTimeout: f('int32_t ml_spaces_handle_timeout(MlSpaces *h, uint64_t now_ms)'),
      handlePersisted: f('int32_t ml_spaces_handle_persisted(MlSpaces *h, uint64_t ticket, uint64_t now_ms)'),
      poll: f('int32_t ml_spaces_poll(MlSpaces *h, _Out_ MlOutput *out)'),
      outputMeta: f('int32_t ml_spaces_output_meta(const MlSpaces *h, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
      outputBody: f('int32_t ml_spaces_output_body(const MlSpaces *h, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
      pump: f('int32_t ml_spaces_pump(MlSpaces *h, const MlCallbacks *callbacks, _Out_ int32_t *has_deadline, _Out_ uint64_t *deadline_ms)'),
      lastErrorMessage: f('size_t ml_last_error_message(uint8_t *buf, size_t cap)'),
    },
    dm: {
      protos: { SendHttp, Persist, EmitEvent },
      new: f('int32_t ml_dm_new(const char *api_base, const char *api_key, const uint8_t *seed, size_t seed_len, _Out_ MlDm **out)'),
      free: f('void ml_dm_free(MlDm *h)'),
      command: f('int32_t ml_dm_command(MlDm *h, const char *command_json, uint64_t now_ms, _Out_ uint64_t *call_id)'),
      heartbeat: f('int32_t ml_dm_heartbeat(MlDm *h, int32_t running, uint64_t now_ms)'),
      state: f('int32_t ml_dm_state(const MlDm *h, const char *conversation_id, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
      handleResponse: f('int32_t ml_dm_handle_response(MlDm *h, uint64_t id, uint16_t status, const char *headers_json, const uint8_t *body, size_t body_len, uint64_t now_ms)'),
      handleTransportError: f('int32_t ml_dm_handle_transport_error(MlDm *h, uint64_t id, const char *message, uint64_t now_ms)'),
      handleTimeout: f('int32_t ml_dm_handle_timeout(MlDm *h, uint64_t now_ms)'),
      poll: f('int32_t ml_dm_poll(MlDm *h, _Out_ MlOutput *out)'),
      outputMeta: f('int32_t ml_dm_output_meta(const MlDm *h, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
      outputBody: f('int32_t ml_dm_output_body(const MlDm *h, uint8_t *buf, size_t cap, _Out_ size_t *needed)'),
      pump: f('int32_t ml_dm_pump(MlDm *h, const MlCallbacks *callbacks, _Out_ int32_t *has_deadline, _Out_ uint64_t *deadline_ms)'),
      lastErrorMessage: f('size_t ml_last_error_message(uint8_t *buf, size_t cap)'),
    },
  };
}

let bound = null; // { path, api }: one library per process (koffi type names are global)

export function api(path) {
  if (bound) {
    if (bound.path !== path) throw new Error(`moltlink: ${bound.path} is already loaded; cannot also load ${path}`);
    return bound.api;
  }
  if (!existsSync(path)) {
    throw new Error(`moltlink: native library not found at ${path} (cargo build --release --lib, or set MOLTLINK_LIBRARY)`);
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
    if (rc === 4 /* BUFFER_TOO_SMALL */ && n >= cap) {
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
