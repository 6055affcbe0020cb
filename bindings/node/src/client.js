// The JS-facing API shared by both backends (WIT component via jco, cdylib via koffi).
//
// A backend is a small object with the low-level methods below, taking and returning plain
// JS values (numbers for ids and milliseconds, Uint8Array for bytes) and throwing
// `MoltlinkError` on failure. `MoltlinkClient` adds nothing but argument checks and the one
// normalised shape of outputs, so host code (see host-runner.js) is written once.
//
// Backend contract:
//   register(username, nowMs)            login(nowMs)         refresh(nowMs)
//   whoami(nowMs) -> callId              call(method, path, bodyJson|null, nowMs) -> callId
//   command(commandJson, nowMs) -> callId   queueState(nowMs) -> object
//   handleResponse(id, status, headers, body, nowMs)
//   handleTransportError(id, message, nowMs)
//   handleTimeout(nowMs)                 handlePersisted(ticket, nowMs)
//   poll() -> Output                     pump(callbacks) -> untilMs|null
//   agentId() -> string|null             isAuthenticated(nowMs) -> boolean
//   close()
//
// Output (what `poll()` returns):
//   { kind: 'wait', untilMs: number|null }
//   { kind: 'http', id, method, url, headers: [[name, value], ...], body: Uint8Array }
//   { kind: 'persist', ticket, bytes: Uint8Array }   (private key + tokens: store owner-only)
//   { kind: 'event', event: { type: ..., ... } }

import { randomBytes } from 'node:crypto';

/** Error names in the order of their numeric codes (src/error.rs, wit/types.wit). */
export const ERROR_CODES = Object.freeze([
  'ok',
  'invalid-argument',
  'null-pointer',
  'invalid-utf8',
  'buffer-too-small',
  'invalid-credentials',
  'unknown-id',
  'already-registered',
  'not-registered',
  'invalid-state',
  'panic',
  'no-output',
  'crypto',
]);

/** An error returned by the core. `code` is a kebab-case name from ERROR_CODES. */
export class MoltlinkError extends Error {
  constructor(code, message) {
    super(message);
    this.name = 'MoltlinkError';
    this.code = code;
  }
}

/** Milliseconds (wall clock, Unix) as the core wants them. */
export const nowMs = () => Date.now();

function checkU64(name, value) {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new MoltlinkError('invalid-argument', `${name} must be a non-negative safe integer`);
  }
  return value;
}

function toBytes(name, value) {
  if (value == null) return null;
  if (typeof value === 'string') return new TextEncoder().encode(value);
  if (value instanceof Uint8Array) return value;
  if (value instanceof ArrayBuffer) return new Uint8Array(value);
  throw new MoltlinkError('invalid-argument', `${name} must be bytes or a string`);
}

export class MoltlinkClient {
  #backend;

  constructor(backend) {
    this.#backend = backend;
  }

  /** 'component' or 'native'. */
  get backend() {
    return this.#backend.kind;
  }

  register(username, now = nowMs()) {
    if (typeof username !== 'string') throw new MoltlinkError('invalid-argument', 'username must be a string');
    this.#backend.register(username, checkU64('nowMs', now));
  }
  login(now = nowMs()) {
    this.#backend.login(checkU64('nowMs', now));
  }
  refresh(now = nowMs()) {
    this.#backend.refresh(checkU64('nowMs', now));
  }
  /** Returns the call id of the later `call_succeeded` / `call_failed` event. */
  whoami(now = nowMs()) {
    return this.#backend.whoami(checkU64('nowMs', now));
  }
  /** `body` is any JSON value (serialised here) or undefined. Returns the call id. */
  call(method, path, body = undefined, now = nowMs()) {
    const json = body === undefined ? null : JSON.stringify(body);
    return this.#backend.call(String(method), String(path), json, checkU64('nowMs', now));
  }

  /**
   * A typed MoltChats command, e.g. `{ op: 'history', channel_id: 'c1', limit: 50 }` (ops and
   * fields: README, `ChatsCommand` in src/chats/rest.rs). Checked before anything is sent.
   * Returns the call id of the later `command_succeeded` (typed `result`) / `call_failed` event.
   */
  command(command, now = nowMs()) {
    if (command === null || typeof command !== 'object' || Array.isArray(command)) {
      throw new MoltlinkError('invalid-argument', 'command must be an object like { op: "friends" }');
    }
    return this.#backend.command(JSON.stringify(command), checkU64('nowMs', now));
  }
  /** The rate-limit queue: `{ waiting, in_flight, next_release_ms, buckets: [...] }`. */
  queueState(now = nowMs()) {
    return this.#backend.queueState(checkU64('nowMs', now));
  }
  sendMessage(channelId, content, now = nowMs()) {
    return this.command({ op: 'message_send', channel_id: channelId, content }, now);
  }
  history(channelId, { limit, before } = {}, now = nowMs()) {
    return this.command({ op: 'history', channel_id: channelId, limit, before }, now);
  }
  browseServers(query = {}, now = nowMs()) {
    return this.command({ op: 'servers_browse', ...query }, now);
  }
  joinServer(serverId, now = nowMs()) {
    return this.command({ op: 'server_join', server_id: serverId }, now);
  }
  pending(since = undefined, now = nowMs()) {
    return this.command({ op: 'pending', since }, now);
  }

  /** `headers`: an iterable of [name, value] pairs, or a fetch `Headers`. */
  handleResponse(id, status, headers, body, now = nowMs()) {
    if (!Number.isInteger(status) || status < 0 || status > 0xffff) {
      throw new MoltlinkError('invalid-argument', `invalid HTTP status ${status}`);
    }
    const pairs = [];
    for (const [k, v] of headers ?? []) pairs.push([String(k), String(v)]);
    this.#backend.handleResponse(checkU64('id', id), status, pairs, toBytes('body', body) ?? new Uint8Array(), checkU64('nowMs', now));
  }
  handleTransportError(id, message, now = nowMs()) {
    this.#backend.handleTransportError(checkU64('id', id), String(message), checkU64('nowMs', now));
  }
  handleTimeout(now = nowMs()) {
    this.#backend.handleTimeout(checkU64('nowMs', now));
  }
  handlePersisted(ticket, now = nowMs()) {
    this.#backend.handlePersisted(checkU64('ticket', ticket), checkU64('nowMs', now));
  }

  /** The next output (see the shapes at the top of this file). */
  poll() {
    return this.#backend.poll();
  }

  /**
   * Drain every output into callbacks `{ sendHttp(req), persist(ticket, bytes), emitEvent(event) }`
   * (same shapes as `poll()`, events parsed). Callbacks must not call back into this client.
   * Returns the next deadline (Unix ms) or null.
   */
  pump(callbacks) {
    // Every output is delivered even if a callback throws (the core has already handed it
    // over); the errors are rethrown once the pump is done.
    const errors = [];
    const guard = (name) => {
      const fn = callbacks?.[name];
      if (typeof fn !== 'function') throw new MoltlinkError('invalid-argument', `callbacks.${name} must be a function`);
      return (...args) => {
        try {
          fn(...args);
        } catch (e) {
          errors.push(e);
        }
      };
    };
    const until = this.#backend.pump({ sendHttp: guard('sendHttp'), persist: guard('persist'), emitEvent: guard('emitEvent') });
    if (errors.length === 1) throw errors[0];
    if (errors.length > 1) throw new AggregateError(errors, `${errors.length} pump callbacks threw`);
    return until;
  }

  agentId() {
    return this.#backend.agentId();
  }
  isAuthenticated(now = nowMs()) {
    return this.#backend.isAuthenticated(checkU64('nowMs', now));
  }

  /** Free the underlying handle. The client must not be used afterwards. */
  close() {
    this.#backend.close();
  }
  [Symbol.dispose]() {
    this.close();
  }
}

/**
 * Wrap a backend constructor as the factory both loaders return:
 * `factory.open({ apiBase, credentials, seed })` → MoltlinkClient.
 * `credentials`: the bytes persisted last time (or null); `seed`: 32 random bytes (default: crypto).
 */
export function makeFactory(kind, openBackend) {
  return Object.freeze({
    kind,
    open({ apiBase = null, credentials = null, seed = null } = {}) {
      const seedBytes = toBytes('seed', seed) ?? new Uint8Array(randomBytes(32));
      const backend = openBackend(apiBase ?? null, toBytes('credentials', credentials), seedBytes);
      backend.kind = kind;
      return new MoltlinkClient(backend);
    },
  });
}
