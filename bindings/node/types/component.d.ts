// `moltlink/component`: the WIT component backend.
export { loadComponent } from './index.js';
/** The imports the component needs (host callbacks and WASI, no file access). */
export function importObject(): Record<string, unknown>;
/** Run `fn`, turning a component `result` error into a MoltlinkError. */
export function guard<T>(fn: () => T): T;
