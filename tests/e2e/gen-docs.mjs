// Writes the README's generated reference tables (see lib/docs.js) from a fresh dev node's
// metadata and the node's RPC module sources. `--check`: write nothing, exit 1 if they differ.
// Run through `scripts/gen-docs.sh`, which builds nothing and sets NODE_BIN.
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Node, tempDir } from './lib/node.js';
import { connect } from './lib/chain.js';
import { callTables, rpcTables, replaceBlock, voucherExample } from './lib/docs.js';

const README = join(import.meta.dirname, '..', '..', 'README.md');
const check = process.argv.includes('--check');
const node = new Node({ name: 'gen-docs', basePath: tempDir('ol-docs-'), args: ['--dev', '--sealing', 'instant'] });
await node.start();
let code = 0;
try {
  const api = await connect(node.wsUrl);
  const before = readFileSync(README, 'utf8');
  const after = replaceBlock(replaceBlock(replaceBlock(before, 'calls', callTables(api)), 'rpc', rpcTables()), 'voucher-example', voucherExample(api));
  await api.disconnect();
  if (check) {
    if (after !== before) {
      console.error('README.md reference tables are stale: run scripts/gen-docs.sh');
      code = 1;
    } else console.log('README.md reference tables are current');
  } else {
    writeFileSync(README, after);
    console.log(after === before ? 'README.md unchanged' : 'README.md reference tables rewritten');
  }
} finally {
  await node.stop();
  node.cleanup();
}
process.exit(code);
