// Backend 1: the WIT component (target/component/moltlink.wasm, built by scripts/component.sh), transpiled by
// jco into ../component/ (`npm run build`, with `--instantiation async`: nothing happens at
// import time and no top-level await is needed; `loadComponent()` instantiates).

import * as host from './host.js';
import { MoltlinkError, makeFactory } from './client.js';
import { wasiImports } from './wasi.js';

import { readFile } from 'node:fs/promises';

const GENERATED = '../component/moltlink.js';

const compiled = new Map();

/**
 * jco's `getCoreModule`: compiles each core module of the component once per process (the chat
 * client and the audio pipeline share it). Compiling is most of the instantiation time, and it
 * runs on V8's background threads, so `loadComponent()` starts it before importing the glue.
 */
export function getCoreModule(name) {
  let module = compiled.get(name);
  if (!module) {
    module = readFile(new URL(`../component/${name}`, import.meta.url)).then((bytes) => WebAssembly.compile(bytes));
    compiled.set(name, module);
  }
  return module;
}

/**
 * The imports the component needs: our host callbacks plus the WASI bits Rust's std links
 * (src/wasi.js: in-process, no files, no environment).
 */
export function importObject() {
  return {
    ...wasiImports(),
    'moltlink:core/host': host,
    'moltlink:core/types': {},
  };
}

const big = (n) => BigInt(n);
const num = (b) => Number(b);

/** A `result` error comes back from jco as a thrown ComponentError whose payload is our record. */
function rethrow(e) {
  const p = e?.payload;
  if (p && typeof p.code === 'string' && typeof p.message === 'string') throw new MoltlinkError(p.code, p.message);
  // A trap (RuntimeError) or a bug in this adapter: the instance must not be trusted further.
  throw e;
}

export function guard(fn) {
  try {
    return fn();
  } catch (e) {
    rethrow(e);
  }
}

function httpOut(r) {
  return {
    kind: 'http',
    id: num(r.id),
    method: r.method,
    url: r.url,
    headers: r.headers.map(([k, v]) => [k, v]),
    body: Uint8Array.from(r.body),
  };
}

function output(o) {
  switch (o.tag) {
    case 'wait':
      return { kind: 'wait', untilMs: o.val === undefined ? null : num(o.val) };
    case 'http':
      return httpOut(o.val);
    case 'persist':
      return { kind: 'persist', ticket: num(o.val.ticket), bytes: Uint8Array.from(o.val.bytes) };
    case 'event':
      return { kind: 'event', event: JSON.parse(o.val) };
    case 'ws-open':
      return { kind: 'ws_open', conn: num(o.val.conn), url: o.val.url };
    case 'ws-send':
      return { kind: 'ws_send', conn: num(o.val.conn), text: o.val.text };
    case 'ws-close':
      return { kind: 'ws_close', conn: num(o.val.conn), code: o.val.code, reason: o.val.reason };
    default:
      throw new Error(`unknown output tag ${o.tag}`);
  }
}

class ComponentBackend {
  #c;
  constructor(resource) {
    this.#c = resource;
  }
  register(username, nowMs) {
    guard(() => this.#c.register(username, big(nowMs)));
  }
  login(nowMs) {
    guard(() => this.#c.login(big(nowMs)));
  }
  refresh(nowMs) {
    guard(() => this.#c.refresh(big(nowMs)));
  }
  whoami(nowMs) {
    return num(guard(() => this.#c.whoami(big(nowMs))));
  }
  call(method, path, bodyJson, nowMs) {
    return num(guard(() => this.#c.call(method, path, bodyJson ?? undefined, big(nowMs))));
  }
  command(json, nowMs) {
    return num(guard(() => this.#c.command(json, big(nowMs))));
  }
  queueState(nowMs) {
    return JSON.parse(guard(() => this.#c.queueState(big(nowMs))));
  }
  handleResponse(id, status, headers, body, nowMs) {
    guard(() => this.#c.handleResponse(big(id), { status, headers, body }, big(nowMs)));
  }
  handleTransportError(id, message, nowMs) {
    guard(() => this.#c.handleTransportError(big(id), message, big(nowMs)));
  }
  handleTimeout(nowMs) {
    guard(() => this.#c.handleTimeout(big(nowMs)));
  }
  handlePersisted(ticket, nowMs) {
    guard(() => this.#c.handlePersisted(big(ticket), big(nowMs)));
  }
  poll() {
    return output(guard(() => this.#c.pollOutput()));
  }
  // Realtime (chats resource only).
  setWsBase(url) {
    guard(() => this.#c.setWsBase(url));
  }
  connect(nowMs) {
    guard(() => this.#c.connect(big(nowMs)));
  }
  disconnect(nowMs) {
    guard(() => this.#c.disconnect(big(nowMs)));
  }
  subscribe(channels, nowMs) {
    guard(() => this.#c.subscribe(channels, big(nowMs)));
  }
  unsubscribe(channels, nowMs) {
    guard(() => this.#c.unsubscribe(channels, big(nowMs)));
  }
  sendMessage(channel, content, contentType, nowMs) {
    return num(guard(() => this.#c.sendMessage(channel, content, contentType ?? undefined, big(nowMs))));
  }
  typing(channel, nowMs) {
    guard(() => this.#c.typing(channel, big(nowMs)));
  }
  handleWsOpen(conn, nowMs) {
    guard(() => this.#c.handleWsOpen(big(conn), big(nowMs)));
  }
  handleWsFrame(conn, text, nowMs) {
    guard(() => this.#c.handleWsFrame(big(conn), text, big(nowMs)));
  }
  handleWsClosed(conn, code, reason, nowMs) {
    guard(() => this.#c.handleWsClosed(big(conn), code, reason, big(nowMs)));
  }
  pump(cb) {
    const target = {
      sendHttp: (r) => cb.sendHttp(httpOut(r)),
      persist: (ticket, bytes) => cb.persist(num(ticket), Uint8Array.from(bytes)),
      emitEvent: (json) => cb.emitEvent(JSON.parse(json)),
      ws: cb.ws,
    };
    const until = host.withHostTarget(target, () => guard(() => this.#c.pump()));
    return until === undefined ? null : num(until);
  }
  agentId() {
    return guard(() => this.#c.agentId()) ?? null;
  }
  // The DM resource (same inputs/outputs as above).
  command(commandJson, nowMs) {
    return num(guard(() => this.#c.command(commandJson, big(nowMs))));
  }
  heartbeat(running, nowMs) {
    guard(() => this.#c.heartbeat(running, big(nowMs)));
  }
  utterance(wav, nowMs) {
    return num(guard(() => this.#c.utterance(wav, big(nowMs))));
  }
  handleBodyChunk(id, chunk, nowMs) {
    guard(() => this.#c.handleBodyChunk(big(id), chunk, big(nowMs)));
  }
  takeAudio() {
    return Uint8Array.from(guard(() => this.#c.takeAudio()));
  }
  spacesState() {
    return JSON.parse(guard(() => this.#c.state()));
  }
  state(conversationId) {
    return guard(() => this.#c.state(conversationId));
  }
  // The spaces resource: its `state()` takes no argument and returns JSON.
  isAuthenticated(nowMs) {
    return guard(() => this.#c.isAuthenticated(big(nowMs)));
  }
  close() {
    const c = this.#c;
    this.#c = null;
    c?.[Symbol.dispose]?.();
  }
}

/**
 * Instantiate the component and return the factory `{ kind: 'component', open(opts) }`.
 * Each call makes a fresh instance (its own linear memory).
 */
export async function loadComponent() {
  let generated;
  // The main core module (the other two are a few hundred bytes); a missing file surfaces below.
  getCoreModule('moltlink.core.wasm').catch(() => {});
  try {
    generated = await import(GENERATED);
  } catch (e) {
    throw new Error(`moltlink: the transpiled component is missing; run \`npm run build\` in bindings/node (${e.message})`);
  }
  const root = await generated.instantiate(getCoreModule, importObject());
  const { Client } = root.chats;
  const DmResource = root.dm.Client;
  const factory = makeFactory(
    'component',
    (apiBase, credentials, seed) => new ComponentBackend(guard(() => Client.open(apiBase ?? undefined, credentials ?? undefined, seed))),
    (apiBase, apiKey, seed) => new ComponentBackend(guard(() => DmResource.open(apiBase ?? undefined, apiKey, seed))),
    (env, optionsJson) => new ComponentBackend(guard(() => root.spaces.Client.open(env, optionsJson ?? undefined))),
  );
  return Object.freeze({ ...factory, prompt: promptApi(root.prompt) });
}

/**
 * The core's `prompt` interface (wit/prompt.wit): the one framing of other agents' words for
 * an agent, and the splitting and decision on its answers. Hosts call this, never their own.
 */
function promptApi(p) {
  const opt = (v) => (v === null || v === undefined ? undefined : String(v));
  return Object.freeze({
    /** `{ channel, dm, username, displayName, content, late }` -> the agent turn's text. */
    messagePrompt: ({ channel, dm = false, username = null, displayName = null, content, late = false }) =>
      guard(() => p.messagePrompt({ channel: String(channel ?? ''), dm: Boolean(dm), username: opt(username), displayName: opt(displayName), content: String(content ?? ''), late: Boolean(late) })),
    friendPrompt: (requestId, from = null) => guard(() => p.friendPrompt(String(requestId), opt(from))),
    /** true accept, false reject, null undecided. */
    decision: (reply) => guard(() => p.decision(String(reply ?? ''))) ?? null,
    /** The parts to post for the agent's reply ([] for an empty reply or NO_REPLY). */
    replyParts: (reply) => guard(() => p.replyParts(String(reply ?? ''))),
    splitMessage: (text, max) => guard(() => p.splitMessage(String(text), max)),
    plainName: (name = null) => guard(() => p.plainName(opt(name))),
  });
}
