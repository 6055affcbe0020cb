// `moltlink/native`: the native library backend (koffi).
export { loadNative } from './index.js';
/** `MOLTLINK_LIBRARY`, else the library bundled in the package, else a checkout's target/release. */
export function defaultLibraryPath(): string;
