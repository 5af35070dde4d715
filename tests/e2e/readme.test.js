// The README's call and RPC tables against a running node's metadata: every call a table names
// exists, with the README's argument names in the metadata's order; every JSON-RPC method it
// names is served; and every call of the OpenLedger pallets and every `openledger`-specific RPC
// method the node serves is documented. A renamed argument or a new call without docs fails.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { rpc } from './lib/node.js';
import { devChain } from './lib/chain.js';
import { OUR_PALLETS, block, callTables, camel, rpcTables, snake, splitTop, voucherExample } from './lib/docs.js';

const README = readFileSync(join(import.meta.dirname, '..', '..', 'README.md'), 'utf8');
const OUR_RPC = /^(attribution|datanets|models|openledger)_/;

const chain = devChain('readme');

/** JSON-RPC method names (`attribution_earnings`, `engine_createBlock`), not calls. */
const isRpc = (name) => /^(attribution|datanets|models|openledger|system|payment|engine|author|chain|state|rpc)_/.test(name) || /[A-Z]/.test(name);

/** Every `name(args)` or `name` in the first cell of a README table row. */
function tableEntries() {
  const entries = [];
  // The generated RPC block's result-type tables name fields, not calls: checked on their own below.
  // So do the worked voucher example's field rows.
  const rpcBlock = block(README, 'rpc') ?? '';
  const example = block(README, 'voucher-example') ?? '';
  for (const line of README.replace(rpcBlock, '').replace(example, '').split('\n')) {
    if (!line.startsWith('| `')) continue;
    const cell = line.split(' | ')[0];
    for (const m of cell.matchAll(/`([A-Za-z0-9_]+)(\(([^`]*)\))?`/g)) {
      entries.push({ name: m[1], args: m[2] === undefined ? null : splitTop(m[3]), line: cell });
    }
  }
  return entries;
}

test('every call in the README tables exists with the documented arguments', () => {
  const calls = tableEntries().filter((e) => !isRpc(e.name));
  assert.ok(calls.length >= 30, `found ${calls.length} calls`);
  for (const { name, args, line } of calls) {
    // A name several pallets have (`delegate`: staking and conviction voting) is ours first.
    const pallets = Object.keys(chain.api.tx).filter((p) => chain.api.tx[p][camel(name)])
      .sort((a, b) => OUR_PALLETS.includes(b) - OUR_PALLETS.includes(a));
    assert.ok(pallets.length > 0, `README names a call the runtime lacks: ${name} (${line})`);
    if (args === null) continue;
    const meta = chain.api.tx[pallets[0]][camel(name)].meta.args.map((a) => a.name.toString());
    assert.equal(args.length, meta.length, `${name}: README ${JSON.stringify(args)} vs metadata ${JSON.stringify(meta)}`);
    args.forEach((a, i) => {
      if (a.startsWith('{') || a.startsWith('[')) return; // a struct spelled out by its fields
      assert.equal(camel(a.replace(/\?$/, '')), camel(meta[i]), `${name}: argument ${i} is \`${meta[i]}\`, README says \`${a}\``);
    });
  }
});

test('every call of the OpenLedger pallets is documented in a README table', () => {
  const documented = new Set(tableEntries().map((e) => camel(e.name)));
  for (const pallet of OUR_PALLETS) {
    for (const call of Object.keys(chain.api.tx[pallet])) {
      assert.ok(documented.has(call), `${pallet}.${call} is not in the README's tables`);
    }
  }
});

test('every RPC method the README names is served, and every OpenLedger method is documented', async () => {
  const served = new Set((await rpc(chain.node.rpcPort, 'rpc_methods')).methods);
  const named = tableEntries().filter((e) => isRpc(e.name)).map((e) => e.name);
  // Method names in prose too (`attribution_earnings`, `datanets_getProof(...)`), not crate
  // names such as `openledger_primitives`.
  for (const m of README.matchAll(/`((?:attribution|datanets|models|openledger)_[A-Za-z]+)(?![A-Za-z_:])/g)) {
    if (m[1] !== 'openledger_primitives') named.push(m[1]);
  }
  assert.ok(named.length >= 10, `found ${named.length} methods`);
  for (const m of named) assert.ok(served.has(m), `README names an RPC method the node does not serve: ${m}`);
  for (const m of served) {
    if (OUR_RPC.test(m)) assert.ok(README.includes(`\`${m}`), `${m} is served but not documented in the README`);
  }
});

test('the generated reference tables are what the metadata and the RPC definitions say (scripts/gen-docs.sh)', () => {
  const calls = block(README, 'calls');
  const rpcs = block(README, 'rpc');
  assert.ok(calls && rpcs, 'the README has its generated blocks');
  assert.equal(calls, callTables(chain.api), 'call tables drifted from the runtime metadata: run scripts/gen-docs.sh');
  assert.equal(rpcs, rpcTables(), 'RPC tables drifted from node/src/rpc: run scripts/gen-docs.sh');
  assert.equal(block(README, 'voucher-example'), voucherExample(chain.api), 'the worked voucher example drifted: run scripts/gen-docs.sh');
  // Every call and every served OpenLedger method has a row.
  for (const pallet of OUR_PALLETS) {
    for (const call of Object.keys(chain.api.tx[pallet])) {
      assert.match(calls, new RegExp('\\| `' + snake(call) + '` \\|'), `${pallet}.${call}`);
    }
  }
});
