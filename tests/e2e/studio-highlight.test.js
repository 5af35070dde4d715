// The Studio's answer highlighting (web/src/highlight.ts), bundled with the Studio's own esbuild:
// claims are UTF-8 byte ranges whose ends may fall inside a character; the pieces are whole
// characters, joined they are the answer, and each claimed piece is the claim's text.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { tmpdir } from 'node:os';
import { pathToFileURL } from 'node:url';
import { createRequire } from 'node:module';

const require = createRequire(resolve('../../web/package.json'));
const { buildSync } = require('esbuild');
const out = join(mkdtempSync(join(tmpdir(), 'ol-hl-')), 'highlight.mjs');
buildSync({ entryPoints: [resolve('../../web/src/highlight.ts')], bundle: true, format: 'esm', outfile: out, logLevel: 'silent' });
const { pieces } = await import(pathToFileURL(out).href);
const ref = { datanet: 0, version: 1, index: 2 };
const bytes = (s) => Buffer.byteLength(s);

test('claims inside a multi-byte character are moved to the next boundary', () => {
  const answer = 'un caffè ristretto, 東京';
  // A claim that ends after the first byte of "è" (two bytes) and one starting inside "東".
  const e = bytes('un caff') + 1;
  const k = bytes('un caffè ristretto, ') + 1;
  const got = pieces(answer, [{ start: 3, end: e, contribution: ref }, { start: k, end: bytes(answer), contribution: ref }]);
  assert.equal(got.map((p) => p.text).join(''), answer, 'the pieces are the answer');
  assert.ok(got.every((p) => !p.text.includes('\ufffd')), JSON.stringify(got));
  assert.deepEqual(got.filter((p) => p.claim).map((p) => p.text), ['caffè', '京']);
});

test('overlapping, empty and out-of-range claims are dropped; order does not matter', () => {
  const answer = 'the court held that the contract was void';
  const c = (start, end) => ({ start, end, contribution: ref });
  const got = pieces(answer, [c(10, 20), c(4, 14), c(30, 30), c(0, 999), c(25, 28)]);
  assert.equal(got.map((p) => p.text).join(''), answer);
  assert.deepEqual(got.filter((p) => p.claim).map((p) => p.text), ['court held', 'ont']);
  assert.deepEqual(pieces('', [c(0, 1)]), []);
});
