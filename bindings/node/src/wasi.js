// The few WASI 0.2 imports the component links, implemented in-process. They come from Rust's
// std (stdio for panic messages, environment, exit, the HashMap seed) and from opus-rs's
// std::fs debug trace; the core does its I/O through `moltlink:core/host`, never through WASI.
// The general implementation (@bytecodealliance/preview2-shim) starts a worker thread for its
// I/O at import time, which cost more than compiling the component; none of these calls needs it.
// What the component sees: no environment variables (the host's may hold secrets), no files (no
// preopened directory), stdout/stderr written to the process's, no terminal.
import { randomBytes } from 'node:crypto';

/** wasi:io/error.error (never created: writes to stdio do not fail the component). */
class IoError {
  toDebugString() {
    return 'i/o error';
  }
}

/** wasi:io/poll.pollable: stdio is always ready. */
class Pollable {
  block() {}
  ready() {
    return true;
  }
}

/** wasi:io/streams: stdin is empty (the core never reads it); output goes to a Node stream. */
class InputStream {}

class OutputStream {
  #sink;
  constructor(sink) {
    this.#sink = sink;
  }
  checkWrite() {
    return 1n << 20n;
  }
  write(bytes) {
    // A copy: the bytes may be a view of the component's memory.
    this.#sink.write(Buffer.from(bytes));
  }
  blockingWriteAndFlush(bytes) {
    this.write(bytes);
  }
  flush() {}
  blockingFlush() {}
  subscribe() {
    return new Pollable();
  }
}

/** wasi:filesystem/types.descriptor: none ever exists, there is no preopened directory. */
class Descriptor {}

/** wasi:cli/terminal-*: the component has no terminal. */
class TerminalInput {}
class TerminalOutput {}

let seed;

/** The import object's WASI part (jco's names: `wasi:<package>/<interface>`). */
export function wasiImports() {
  const stdin = new InputStream();
  const stdout = new OutputStream(process.stdout);
  const stderr = new OutputStream(process.stderr);
  return {
    'wasi:cli/environment': { getEnvironment: () => [], getArguments: () => [], initialCwd: () => undefined },
    'wasi:cli/exit': {
      exit: (status) => {
        // Only a Rust process::exit gets here; the core never calls it. Trap rather than end the host.
        throw new Error(`moltlink component called exit (${status?.tag ?? 'ok'})`);
      },
    },
    'wasi:cli/stdin': { getStdin: () => stdin },
    'wasi:cli/stdout': { getStdout: () => stdout },
    'wasi:cli/stderr': { getStderr: () => stderr },
    'wasi:cli/terminal-input': { TerminalInput },
    'wasi:cli/terminal-output': { TerminalOutput },
    'wasi:cli/terminal-stdin': { getTerminalStdin: () => undefined },
    'wasi:cli/terminal-stdout': { getTerminalStdout: () => undefined },
    'wasi:cli/terminal-stderr': { getTerminalStderr: () => undefined },
    'wasi:clocks/wall-clock': {
      now: () => {
        const ms = Date.now();
        return { seconds: BigInt(Math.floor(ms / 1000)), nanoseconds: (ms % 1000) * 1_000_000 };
      },
      resolution: () => ({ seconds: 0n, nanoseconds: 1_000_000 }),
    },
    'wasi:filesystem/preopens': { getDirectories: () => [] },
    'wasi:filesystem/types': { Descriptor, filesystemErrorCode: () => undefined },
    'wasi:io/error': { Error: IoError },
    'wasi:io/poll': { Pollable, poll: (list) => new Uint32Array(list.map((_, i) => i)) },
    'wasi:io/streams': { InputStream, OutputStream },
    'wasi:random/insecure-seed': {
      // Seeds Rust's HashMap hashers: one random pair per process, as WASI specifies.
      insecureSeed: () => {
        if (!seed) {
          const b = new BigUint64Array(randomBytes(16).buffer);
          seed = [b[0], b[1]];
        }
        return seed;
      },
    },
  };
}
