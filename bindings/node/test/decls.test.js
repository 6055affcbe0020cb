// src/decls.js is generated from bindings/c/moltlink.h by bindings/gen-decls.py and is all the
// native backends declare: every signature must bind, the wrappers' tables must agree with its
// constants, and what the generator emits for constructs the header will gain must load in koffi.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';
import koffi from 'koffi';
import { ERROR_CODES } from '../src/client.js';
import { CONSTANTS, SIGNATURES, bindFunctions } from '../src/decls.js';
import { defaultLibraryPath } from '../src/native.js';

const here = fileURLToPath(new URL('.', import.meta.url));
const root = join(here, '../../..');

test('every function of the header binds against the built library', () => {
  const fns = bindFunctions(koffi.load(defaultLibraryPath()));
  assert.deepEqual(Object.keys(fns).sort(), Object.keys(SIGNATURES).sort());
});

test('ERROR_CODES follows the ML_* return codes', () => {
  ERROR_CODES.forEach((code, value) => {
    assert.equal(CONSTANTS[`ML_${code.toUpperCase().replaceAll('-', '_')}`], value, code);
  });
});

test('new functions, structs and callbacks load; those the library lacks are skipped', () => {
  const extra = '\n' + readFileSync(join(root, 'bindings/fixtures/extended-header.h'), 'utf8');
  // Inside test/ so that the generated module resolves 'koffi' from this package.
  const dir = mkdtempSync(join(here, '.decls-probe-'));
  try {
    const header = readFileSync(join(root, 'bindings/c/moltlink.h'), 'utf8').replace('\n#endif  /* MOLTLINK_H */', extra);
    writeFileSync(join(dir, 'moltlink.h'), header);
    execFileSync('python3', [join(root, 'bindings/gen-decls.py'), '--header', join(dir, 'moltlink.h'), '--out', dir]);
    // A child process: koffi type names are global, and this one already declared the real ones.
    const script = `
      import koffi from 'koffi';
      import { SIGNATURES, bindFunctions, declareTypes } from ${JSON.stringify(join(dir, 'decls.js'))};
      const { structs, protos } = declareTypes();
      for (const [name, sig] of Object.entries(SIGNATURES)) koffi.proto(sig.replace(name + '(', name + '_parsed('));
      const fns = bindFunctions(koffi.load(${JSON.stringify(defaultLibraryPath())}));
      console.log(JSON.stringify({ size: koffi.sizeof(structs.MlProbePart), protos: Object.keys(protos), bound: Object.keys(fns) }));`;
    const out = JSON.parse(execFileSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8' }));
    assert.equal(out.size, 4 + 4 + 8 + 4 + 4 + 8); // tag, pad, text, kind, pad, on_done (64-bit)
    assert.ok(['MlProbePart_on_done', 'MlProbeLog', 'ml_probe_render_each'].every((p) => out.protos.includes(p)));
    assert.ok(!out.bound.some((n) => n.startsWith('ml_probe_') || n === 'ml_string_free'));
    assert.deepEqual(out.bound.sort(), Object.keys(SIGNATURES).sort());
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
