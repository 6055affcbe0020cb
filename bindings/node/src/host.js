// Implementation of the WIT import `moltlink:core/host` for the component (see wit/host.wit).
//
// The component calls these only from inside `client.pump()`. JS is single-threaded and a
// pump never re-enters the component, so one module-level "current target" is enough:
// `withHostTarget(callbacks, fn)` installs the callbacks of the client being pumped for the
// duration of `fn` and restores the previous target afterwards. Outside a pump there is no
// target and a call is a bug (it throws, which the component turns into a trap).

let current = null;

export function withHostTarget(target, fn) {
  const previous = current;
  current = target;
  try {
    return fn();
  } finally {
    current = previous;
  }
}

function target() {
  if (current === null) throw new Error('moltlink host import called outside client.pump()');
  return current;
}

/** @param {{id: bigint, method: string, url: string, headers: [string, string][], body: Uint8Array}} req */
export function sendHttp(req) {
  target().sendHttp(req);
}

/** @param {bigint} ticket @param {Uint8Array} bytes */
export function persist(ticket, bytes) {
  target().persist(ticket, bytes);
}

/** @param {string} eventJson */
export function emitEvent(eventJson) {
  target().emitEvent(eventJson);
}

/** Realtime outputs: only produced after `connect`. @param {{conn: bigint, url: string}} req */
export function wsOpen(req) {
  const t = target();
  if (!t.ws) throw new Error('moltlink: a WebSocket output needs the `ws` pump callback');
  t.ws({ kind: 'ws_open', conn: Number(req.conn), url: req.url });
}

/** @param {{conn: bigint, text: string}} req */
export function wsSend(req) {
  target().ws?.({ kind: 'ws_send', conn: Number(req.conn), text: req.text });
}

/** @param {{conn: bigint, code: number, reason: string}} req */
export function wsClose(req) {
  target().ws?.({ kind: 'ws_close', conn: Number(req.conn), code: req.code, reason: req.reason });
}
