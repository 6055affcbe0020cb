// Real speech for the audio tests: espeak-ng → sox → raw 16-bit mono at `rate` (Int16Array).
import { execFileSync } from 'node:child_process';

export function speech(text, rate) {
  const wav = execFileSync('espeak-ng', ['--stdout', text]);
  const raw = execFileSync('sox', ['-t', 'wav', '-', '-r', String(rate), '-c', '1', '-t', 's16', '-'], { input: wav });
  return new Int16Array(raw.buffer, raw.byteOffset, raw.byteLength / 2);
}
