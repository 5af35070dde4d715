// A runtime upgrade by referendum on a `local_testnet` chain (Alice and Bob validate; no sudo)
// that starts from the previous release, spec 106 (its Wasm is kept in fixtures/). Under 106 a
// span dispute is opened; 106 stores no bond with it (attribution storage version 1). Then:
// - scripts/try-upgrade.sh checks this tree's upgrade against the live chain's state;
// - a root referendum authorizes this tree's runtime (`system.authorizeUpgrade`) and anyone
//   applies the code (`system.applyAuthorizedUpgrade`);
// - the node reports spec 107, the attribution migration ran once (storage version 2, the open
//   dispute records the 100 OPEN it holds), the node's RPC switches to the new runtime API, and
//   both validators keep producing and finalizing blocks.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { blake2AsHex } from '@polkadot/util-crypto';
import { u8aToHex } from '@polkadot/util';
import { Node, NODE_BIN, rpc, tempDir, waitFor } from './lib/node.js';
import { connect, devKeys, send, findEvent, propose, vote, decided, signedReceipt, OPEN } from './lib/chain.js';

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const OLD_WASM = readFileSync(new URL('./fixtures/runtime-106.compact.compressed.wasm', import.meta.url));
const NEW_WASM = readFileSync(join(dirname(NODE_BIN), 'wbuild/openledger-runtime/openledger_runtime.compact.compressed.wasm'));
const { alice, charlie, k } = devKeys();
const eve = k('//Eve'); // payer
const ferdie = k('//Ferdie'); // proposer, then disputer
const workerKey = k('//Charlie//receipts');
const VOTERS = ['Alice', 'Bob', 'Charlie', 'Dave', 'Eve', 'Ferdie'].map((n) => k(`//${n}//stash`));
const OLD_BOND = 100n * OPEN;

const nodes = [];
let api;
let referendum;
let disputed; // { worker, requestId, key } of the dispute opened under 106
let upgradedAt; // the first block of spec 107

before(async () => {
  const dir = tempDir('ol-upgrade-');
  // This node's local_testnet preset, with spec 106's code: its genesis is built by 106.
  // (Edited as text: balances are u128, beyond what JSON.parse keeps exact.)
  const spec = execFileSync(NODE_BIN, ['build-spec', '--chain', 'local', '--disable-default-bootnode'], {
    encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'ignore'],
  });
  const codes = spec.match(/"code": "0x[0-9a-f]+"/g);
  assert.equal(codes?.length, 1, 'one runtime code in the spec');
  const specFile = join(dir, 'spec-106.json');
  writeFileSync(specFile, spec.replace(codes[0], `"code": "${u8aToHex(OLD_WASM)}"`));
  const nodeKey = () => randomBytes(32).toString('hex');
  const a = new Node({ name: 'alice', basePath: tempDir('ol-upgrade-alice-'), args: ['--chain', specFile, '--alice', '--node-key', nodeKey()] });
  nodes.push(a);
  await a.start();
  const b = new Node({ name: 'bob', basePath: tempDir('ol-upgrade-bob-'), args: ['--chain', specFile, '--bob', '--node-key', nodeKey(), '--bootnodes', await a.multiaddr()] });
  nodes.push(b);
  await b.start();
  api = await connect(a.wsUrl);
  assert.equal(api.runtimeVersion.specVersion.toNumber(), 106, 'the chain starts on the previous release');
  assert.equal((await api.query.attribution.palletVersion()).toNumber(), 1);
  const ok = async (tx, who) => { const r = await send(api, tx, who); assert.equal(r.error, null); return r; };

  // The referendum (Ferdie; six stash accounts vote), while a dispute is opened under 106.
  const authorize = api.tx.system.authorizeUpgrade(blake2AsHex(NEW_WASM, 256));
  const proposed = propose(api, [[authorize, { system: 'Root' }]], ferdie).then(async ([index]) => {
    await Promise.all(VOTERS.map((who) => vote(api, who, [{ index, aye: true, conviction: 'Locked1x', balance: 15_000_000n * OPEN }])));
    return index;
  });

  // Alice: a Datanet with three contributions, its snapshot, a base model and an adapter on it.
  const datanet = (await api.query.datanets.nextDatanetId()).toNumber();
  const base = (await api.query.models.nextModelId()).toNumber();
  const adapter = base + 1;
  const policy = { base: api.consts.datanets.minContributionDepositBase, perByte: api.consts.datanets.minContributionDepositPerByte };
  await Promise.all([
    ok(api.tx.utility.batchAll([
      api.tx.datanets.createDatanet('upgrade', '', 'CC0', 'Open', policy),
      ...['a', 'b', 'c'].map((c) => api.tx.datanets.contribute(datanet, blake2AsHex(c, 256), 1, 1, `store://${c}`, null, null)),
      api.tx.datanets.snapshot(datanet),
      api.tx.models.registerBase('base', '', 'llama', blake2AsHex('b', 256), '', [], blake2AsHex('c', 256)),
      api.tx.models.registerAdapter(base, 'lora', '', 8, 16, ['q_proj'], blake2AsHex('w', 256), '', [{ datanet, version: 1, weight: 1_000_000_000 }], blake2AsHex('t', 256)),
      api.tx.models.setPricing(adapter, { per1kTokens: 0, perRequest: OPEN }),
    ]), alice),
    ok(api.tx.attribution.depositEscrow(100n * OPEN), eve),
  ]);
  // Charlie bonds as a worker and settles a span receipt crediting contribution 0 with 60 %.
  const { signed, requestId } = await signedReceipt(api, {
    payer: eve, worker: charlie, signer: workerKey, model: adapter, datanet, nonce: 1, fee: OPEN, maxFee: OPEN, shares: [[0, 60]],
  });
  await ok(api.tx.utility.batchAll([
    api.tx.openStaking.bondWorker(api.consts.openStaking.minWorkerBond, workerKey.publicKey, 'http://127.0.0.1:8080', [adapter], 0),
    api.tx.attribution.submitReceipts([signed]),
  ]), charlie);
  // Ferdie disputes that share: spec 106 holds the constant 100 OPEN bond and records none.
  const contribution = { datanet, version: 1, index: 0 };
  const r = await ok(api.tx.attribution.challengeShare(requestId, contribution), ferdie);
  assert.ok(findEvent(r.events, 'attribution', 'ShareChallenged'));
  const entries = await api.query.attribution.disputes.entries();
  assert.equal(entries.length, 1);
  assert.deepEqual(Object.keys(entries[0][1].unwrap().toJSON()).sort(), ['challenger', 'deadline'], 'no bond in 106');
  disputed = { worker: charlie.address, requestId, key: entries[0][0].toHex() };
  referendum = await proposed;
});

after(async () => {
  await api?.disconnect();
  for (const n of nodes) await n.stop();
  for (const n of nodes) n.cleanup();
});

test('the upgrade checks pass over the live spec 106 state (scripts/try-upgrade.sh)', async () => {
  // The dispute is in the finalized state the script reads.
  const at = (await api.rpc.chain.getFinalizedHead()).toHex();
  assert.ok((await api.rpc.state.getStorage(disputed.key, at)).isSome, 'the dispute is finalized');
  const out = execFileSync('bash', [join(ROOT, 'scripts/try-upgrade.sh'), nodes[0].wsUrl, at], {
    encoding: 'utf8', maxBuffer: 64 << 20, stdio: ['ignore', 'pipe', 'pipe'],
  });
  assert.match(out, /spec 106 → this code's spec 107/);
  assert.match(out, /attribution storage version StorageVersion\(1\) → StorageVersion\(2\)/);
  assert.match(out, /test the_upgrade_holds_over_live_state \.\.\. ok/);
});

test('a root referendum authorizes the new runtime; anyone applies it', async () => {
  assert.equal(await decided(api, referendum, 240_000), 'Approved');
  const hash = blake2AsHex(NEW_WASM, 256);
  await waitFor('the upgrade authorized at enactment', async () => {
    const auth = await api.query.system.authorizedUpgrade();
    return auth.isSome && auth.unwrap().codeHash.toHex() === hash;
  }, 60_000);
  // Before the upgrade, the node's RPC reads disputes through version 3 of the runtime API.
  const [before] = await rpc(nodes[0].rpcPort, 'attribution_disputes', [disputed.worker]);
  assert.equal(before.requestId, disputed.requestId);
  assert.equal(before.bond, null, 'spec 106 records no bond');
  // Code other than the authorized one is refused; the authorized code is applied by Eve.
  const wrong = await send(api, api.tx.system.applyAuthorizedUpgrade(u8aToHex(OLD_WASM)), eve);
  assert.equal(wrong.error, 'system.Unauthorized', 'only the authorized code');
  const r = await send(api, api.tx.system.applyAuthorizedUpgrade(u8aToHex(NEW_WASM)), eve);
  assert.equal(r.error, null);
  assert.ok(findEvent(r.events, 'system', 'CodeUpdated'));
  upgradedAt = (await api.rpc.chain.getHeader(r.blockHash)).number.toNumber() + 1;
});

test('spec 107: the migration ran once, the dispute keeps its 100 OPEN bond, and the chain finalizes', async () => {
  assert.ok(upgradedAt, 'upgraded by the previous test');
  await waitFor('spec 107', async () => (await api.rpc.state.getRuntimeVersion()).specVersion.toNumber() === 107, 60_000);
  await waitFor('polkadot-js on the new metadata', async () => api.runtimeVersion.specVersion.toNumber() === 107, 60_000);
  assert.equal((await api.query.system.lastRuntimeUpgrade()).unwrap().specVersion.toNumber(), 107);
  assert.equal((await api.query.attribution.palletVersion()).toNumber(), 2);
  const entries = await api.query.attribution.disputes.entries();
  assert.equal(entries.length, 1, 'the dispute survived the migration');
  const d = entries[0][1].unwrap();
  assert.equal(d.challenger.toString(), ferdie.address);
  assert.equal(d.bond.toBigInt(), OLD_BOND);
  // The node's RPC now reads them through version 4, with the bond.
  const [after] = await rpc(nodes[0].rpcPort, 'attribution_disputes', [disputed.worker]);
  assert.equal(after.bond, OLD_BOND.toString());

  // Once: each validator executed the upgrade block once, and logged the migration once.
  for (const n of nodes) {
    const lines = readFileSync(n.logFile, 'utf8').split('\n').filter((l) => l.includes('migration v2: 1 span disputes now record their bond'));
    assert.equal(lines.length, 1, `${n.name} ran the migration once`);
  }
  // Both validators go on: blocks well past the upgrade are produced and finalized.
  await waitFor('finality past the upgrade', async () =>
    (await api.rpc.chain.getHeader(await api.rpc.chain.getFinalizedHead())).number.toNumber() >= upgradedAt + 4, 120_000);
});
