// OPEN staking through polkadot-js: the flow end to end — register a base and an adapter
// with lineage, bond a worker with a signing key, delegate, unbond, withdraw after the period.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { blake2AsHex } from '@polkadot/util-crypto';
import { u8aToHex } from '@polkadot/util';
import { Node, rpc, tempDir } from './lib/node.js';
import { connect, devKeys, free, send, findEvent, OPEN, TOTAL_SUPPLY, TREASURY, sudo } from './lib/chain.js';

let node;
let api;
const { alice, bob, charlie, k } = devKeys();
const workerKey = k('//worker-signing-key'); // receipt signing key, not the stash
let adapter;

before(async () => {
  node = new Node({ name: 'staking', basePath: tempDir('ol-staking-'), args: ['--dev', '--sealing', 'instant'] });
  await node.start();
  api = await connect(node.wsUrl);
});

after(async () => {
  await api?.disconnect();
  await node?.stop();
  node?.cleanup();
});

const held = async (who) => (await api.query.balances.holds(who)).reduce((s, h) => s + h.amount.toBigInt(), 0n);
const block = async () => (await api.rpc.chain.getHeader()).number.toNumber();

test('a base and an adapter with lineage are registered', async () => {
  const policy = { base: api.consts.datanets.minContributionDepositBase, perByte: api.consts.datanets.minContributionDepositPerByte };
  let r = await send(api, api.tx.datanets.createDatanet('qa', '', 'CC0', 'Open', policy), alice);
  const datanet = findEvent(r.events, 'datanets', 'DatanetCreated').data.datanet.toNumber();
  await send(api, api.tx.datanets.contribute(datanet, blake2AsHex('q1', 256), 2, 1, 'store://q1', null, null), bob);
  await send(api, api.tx.datanets.snapshot(datanet), alice);
  r = await send(api, api.tx.models.registerBase('base', 'apache-2.0', 'llama', blake2AsHex('b', 256), 'hf://b', [], blake2AsHex('c', 256)), alice);
  const base = findEvent(r.events, 'models', 'BaseRegistered').data.model.toNumber();
  r = await send(api, api.tx.models.registerAdapter(base, 'qa-lora', 'cc0', 8, 16, ['q_proj'], blake2AsHex('a', 256), 'store://a', [{ datanet, version: 1, weight: 1_000_000_000 }], blake2AsHex('t', 256)), bob);
  assert.equal(r.error, null);
  adapter = findEvent(r.events, 'models', 'AdapterRegistered').data.model.toNumber();
});

test('Charlie bonds a worker with a separate signing key, serving the adapter', async () => {
  const min = api.consts.openStaking.minWorkerBond.toBigInt();
  let r = await send(api, api.tx.openStaking.bondWorker(min - 1n, workerKey.publicKey, 'http://127.0.0.1:8080', [adapter], 50_000_000), charlie);
  assert.equal(r.error, 'openStaking.BondTooLow');
  r = await send(api, api.tx.openStaking.bondWorker(min, workerKey.publicKey, 'http://127.0.0.1:8080', [adapter], 50_000_000), charlie);
  assert.equal(r.error, null);
  const w = (await api.query.openStaking.workers(charlie.address)).unwrap();
  assert.equal(u8aToHex(w.signingKey), u8aToHex(workerKey.publicKey));
  assert.equal(w.selfBond.toBigInt(), min);
  assert.deepEqual(w.models.map((m) => m.toNumber()), [adapter]);
  assert.equal((await api.query.openStaking.signingKeys(workerKey.publicKey)).unwrap().toString(), charlie.address);
  assert.equal(await held(charlie.address), min);
});

test('Bob delegates, then unbonds; the stake is released only after the period', async () => {
  // Governance (sudo on the dev chain) cannot make stake unbond faster than a receipt it backs
  // can be challenged: the dispatch inside sudo fails, and Sudid says so.
  const tooShort = await sudo(api, api.tx.openStaking.setUnbondingPeriod(3), alice);
  assert.equal(tooShort.sudoError, 'openStaking.UnbondingTooShort');
  // The shortest allowed period (a challenge window and ten minutes) for the rest of the test.
  const minPeriod = api.consts.openStaking.minUnbondingPeriod.toNumber();
  assert.ok(minPeriod > api.consts.attribution.challengeWindow.toNumber(), 'stake outlives the challenge window');
  assert.equal((await sudo(api, api.tx.openStaking.setUnbondingPeriod(minPeriod), alice)).sudoError, null);
  const amount = 100n * OPEN;
  const held0 = await held(bob.address);
  assert.equal((await send(api, api.tx.openStaking.delegate(charlie.address, amount), bob)).error, null);
  assert.equal(await held(bob.address), held0 + amount);
  assert.equal((await api.query.openStaking.delegations(charlie.address, bob.address)).unwrap().toBigInt(), amount);

  const r = await send(api, api.tx.openStaking.undelegate(charlie.address, amount), bob);
  assert.equal(r.error, null);
  const unlockAt = findEvent(r.events, 'openStaking', 'Unbonding').data.unlockAt.toNumber();
  assert.equal(await held(bob.address), held0 + amount, 'unbonding stake stays held');
  assert.equal((await send(api, api.tx.openStaking.withdrawUnbonded(), bob)).error, 'openStaking.NothingToWithdraw');
  // Seal empty blocks until the chunk matures (a challenge window of them: ~2 ms each).
  for (let n = await block(); n < unlockAt; n++) await rpc(node.rpcPort, 'engine_createBlock', [true, true, null]);
  assert.ok((await block()) >= unlockAt);
  const free0 = await free(api, bob.address);
  const w = await send(api, api.tx.openStaking.withdrawUnbonded(), bob);
  assert.equal(w.error, null);
  const fee = findEvent(w.events, 'transactionPayment', 'TransactionFeePaid').data.actualFee.toBigInt();
  assert.equal(await free(api, bob.address), free0 + amount - fee);
  assert.equal(await held(bob.address), held0);
});

test('governance slashes the worker; the slash goes to the treasury and it is no longer eligible', async () => {
  const t0 = await free(api, TREASURY);
  const r = await sudo(api, api.tx.openStaking.slash(charlie.address, 100_000_000), alice);
  assert.equal(r.sudoError, null);
  const slashed = findEvent(r.events, 'openStaking', 'Slashed').data.amount.toBigInt();
  assert.equal(slashed, api.consts.openStaking.minWorkerBond.toBigInt() / 10n);
  const fee = findEvent(r.events, 'transactionPayment', 'TransactionFeePaid').data.actualFee.toBigInt();
  assert.equal(await free(api, TREASURY), t0 + slashed + fee);
  assert.equal((await api.query.openStaking.workers(charlie.address)).unwrap().status.toString(), 'Slashed');
  assert.equal((await send(api, api.tx.openStaking.delegate(charlie.address, 100n * OPEN), bob)).error, 'openStaking.NotEligible');
  assert.equal((await api.query.balances.totalIssuance()).toBigInt(), TOTAL_SUPPLY);
});
