// Bundles the Studio into dist/ (one script, one stylesheet, the page): everything the browser
// needs is in the bundle, nothing is fetched from a CDN.
import { build } from 'esbuild';
import { execFileSync } from 'node:child_process';
import { cpSync, mkdirSync, rmSync } from 'node:fs';

// Type-checked first (esbuild only strips types).
execFileSync('node_modules/.bin/tsc', ['-p', '.'], { stdio: 'inherit' });
rmSync('dist', { recursive: true, force: true });
mkdirSync('dist');
await build({
  entryPoints: ['src/main.ts'],
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  minify: true,
  sourcemap: true,
  outfile: 'dist/app.js',
  define: { global: 'globalThis' },
  // The proof check is shared with the e2e tests (tests/e2e/lib/merkle.js) and the vouchers with
  // the TypeScript SDK (sdk/typescript): their imports resolve here.
  alias: { '@polkadot/util': './node_modules/@polkadot/util', '@polkadot/util-crypto': './node_modules/@polkadot/util-crypto' },
  logLevel: 'warning',
});
cpSync('index.html', 'dist/index.html');
cpSync('style.css', 'dist/style.css');
console.log('built web/dist');
