// The error-code names must match, in order, src/error.rs (Rust), wit/types.wit (component)
// and ERROR_CODES (the name the native backend gives each numeric code).
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import { ERROR_CODES } from '../src/client.js';

const root = new URL('../../../', import.meta.url);
const kebab = (s) => s.replace(/([a-z0-9])([A-Z])/g, '$1-$2').toLowerCase();

test('error codes agree across Rust, WIT and JS', () => {
  const wit = readFileSync(new URL('wit/types.wit', root), 'utf8');
  const witEnum = /enum error-code \{([^}]*)\}/.exec(wit)[1];
  const witNames = witEnum.split(',').map((s) => s.replace(/\/\/.*$/gm, '').trim()).filter(Boolean);
  const rust = readFileSync(new URL('src/error.rs', root), 'utf8');
  const rustEnum = /pub enum ErrorCode \{([^}]*)\}/.exec(rust)[1];
  const rustNames = [...rustEnum.matchAll(/^\s*([A-Z][A-Za-z0-9]*)\s*=\s*(\d+)/gm)];
  rustNames.forEach(([, , n], i) => assert.equal(Number(n), i, 'Rust codes are dense from 0'));
  assert.deepEqual(witNames, ERROR_CODES);
  assert.deepEqual(rustNames.map(([, name]) => kebab(name)), ERROR_CODES);
});
