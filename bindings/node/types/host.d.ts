// `moltlink/host`: the component's `moltlink:core/host` imports (used inside `pump`).
import type { HttpOutput, PumpCallbacks } from './index.js';
/** Install `target` as the callbacks of the client being pumped while `fn` runs. */
export function withHostTarget<T>(target: PumpCallbacks, fn: () => T): T;
export function sendHttp(req: Omit<HttpOutput, 'kind' | 'id'> & { id: bigint }): void;
export function persist(ticket: bigint, bytes: Uint8Array): void;
export function emitEvent(eventJson: string): void;
export function wsOpen(req: { conn: bigint; url: string }): void;
export function wsSend(req: { conn: bigint; text: string }): void;
export function wsClose(req: { conn: bigint; code: number; reason: string }): void;
