// Saves a chain's whole top-level storage at a block (its finalized head by default) as JSON:
// `{ at, number, specVersion, pairs: [[key, value], …] }`, for runtime/tests/live_upgrade.rs.
//   node snapshot.mjs ws://127.0.0.1:9944 state.json [block hash]
// Keys are paged 1000 at a time (`state_getKeysPaged`), values read in the same pages
// (`state_queryStorageAt`), all at the one block.
import { writeFileSync } from 'node:fs';
import { WsProvider } from '@polkadot/api';

const [url, out, atArg] = process.argv.slice(2);
if (!url || !out) {
  console.error('usage: node snapshot.mjs <ws-url> <out.json> [block hash]');
  process.exit(2);
}
const provider = new WsProvider(url, 1000);
const timeout = setTimeout(() => {
  console.error(`no node answers at ${url}`);
  process.exit(1);
}, 30_000);
await provider.isReady;
clearTimeout(timeout);
const at = atArg ?? (await provider.send('chain_getFinalizedHead', []));
const header = await provider.send('chain_getHeader', [at]);
const version = await provider.send('state_getRuntimeVersion', [at]);
const pairs = [];
let start = null;
for (;;) {
  const keys = await provider.send('state_getKeysPaged', ['0x', 1000, start, at]);
  if (keys.length === 0) break;
  const [changes] = await provider.send('state_queryStorageAt', [keys, at]);
  const values = new Map(changes.changes);
  for (const k of keys) {
    const v = values.get(k);
    if (v == null) throw new Error(`no value for key ${k} at ${at}`);
    pairs.push([k, v]);
  }
  start = keys[keys.length - 1];
  if (keys.length < 1000) break;
}
writeFileSync(out, JSON.stringify({ at, number: parseInt(header.number, 16), specVersion: version.specVersion, pairs }));
console.log(`${pairs.length} keys of block ${parseInt(header.number, 16)} (${at}), spec ${version.specVersion} → ${out}`);
await provider.disconnect();
