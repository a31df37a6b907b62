// The TypeScript declarations (index.d.ts, react.d.ts) compile under
// tsc --strict, as the package's own entry points ('seatcast-client',
// 'seatcast-client/react', resolved through package.json "exports"), and
// describe the API: test/types/usage.ts uses it, and misuses it where
// @ts-expect-error says tsc must object.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const here = path.dirname(fileURLToPath(import.meta.url));
const tsc = path.join(here, '..', 'node_modules', 'typescript', 'bin', 'tsc');

test('the type declarations compile and match the API', () => {
  const r = spawnSync(process.execPath, [tsc, '-p', path.join(here, 'types', 'tsconfig.json')],
                      { encoding: 'utf8', timeout: 120000 });
  assert.equal(r.status, 0, 'tsc:\n' + r.stdout + r.stderr);
});
