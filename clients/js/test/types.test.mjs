// The TypeScript declarations and the AsyncAPI document, checked: test/usage.ts compiles (strict)
// against ws-client.d.ts and the generated protocol.d.ts; every method ws-client.d.ts declares is
// one the client has, and the other way round; docs/asyncapi.yaml is a valid AsyncAPI document.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { dirname, join } from 'node:path';

import { Parser } from '@asyncapi/parser';
import { WsClient } from '../ws-client.js';

const here = dirname(fileURLToPath(import.meta.url));
const root = join(here, '..');

test('a TypeScript user compiles against the declarations (tsc --strict)', () => {
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc');
  const args = [tsc, '--noEmit', '--strict', '--skipLibCheck', '--target', 'ES2022', '--module', 'ES2022',
    '--moduleResolution', 'bundler', '--lib', 'ES2022,DOM', join(here, 'usage.ts')];
  try {
    execFileSync(process.execPath, args, { encoding: 'utf8' });
  } catch (error) {
    assert.fail(`tsc refused test/usage.ts:\n${error.stdout}${error.stderr}`);
  }
});

test('the declared methods are exactly the client\'s public ones', () => {
  const declarations = readFileSync(join(root, 'ws-client.d.ts'), 'utf8');
  const body = declarations.slice(declarations.indexOf('export declare class WsClient'));
  const declared = new Set([...body.matchAll(/^ {2}(\w+)(?:<[^>]*>)?\(/gm)].map((m) => m[1]));
  declared.delete('constructor');
  declared.delete('addEventListener');
  const own = Object.getOwnPropertyNames(WsClient.prototype)
    .filter((name) => name !== 'constructor' && !INTERNAL.has(name));
  assert.deepEqual([...declared].sort(), own.sort());
});

// The implementation's own helpers, not part of the API.
const INTERNAL = new Set(['open', 'onOpen', 'onFrame', 'scheduleReconnect', 'failPending', 'setState', 'emit',
  'deliver', 'orderOf', 'fillFromHistory', 'scheduleReauth']);

test('docs/asyncapi.yaml is a valid AsyncAPI 3 document', async () => {
  const document = readFileSync(join(root, '..', '..', 'docs', 'asyncapi.yaml'), 'utf8');
  const { diagnostics } = await new Parser().parse(document);
  const errors = diagnostics.filter((d) => d.severity === 0);
  assert.deepEqual(errors.map((d) => `${d.path.join('.')}: ${d.message}`), []);
});
