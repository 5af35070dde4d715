// Model registry through polkadot-js: base + adapter with lineage, versions, pricing, splits.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { blake2AsHex } from '@polkadot/util-crypto';
import { Node, rpc, tempDir } from './lib/node.js';
import { connect, devKeys, free, send, findEvent, OPEN, TOTAL_SUPPLY, TREASURY, sudo } from './lib/chain.js';

let node;
let api;
const { alice, bob } = devKeys();
let datanet;
let baseId;
let adapterId;

before(async () => {
  node = new Node({ name: 'models', basePath: tempDir('ol-models-'), args: ['--dev', '--sealing', 'instant'] });
  await node.start();
  api = await connect(node.wsUrl);
  // A Datanet with a snapshot to train on.
  const policy = { base: api.consts.datanets.minContributionDepositBase, perByte: api.consts.datanets.minContributionDepositPerByte };
  const { events } = await send(api, api.tx.datanets.createDatanet('clinical-notes', '', 'CC-BY-4.0', 'Open', policy), alice);
  datanet = findEvent(events, 'datanets', 'DatanetCreated').data.datanet.toNumber();
  const calls = ['note one', 'note two', 'note three'].map((c, i) =>
    api.tx.datanets.contribute(datanet, blake2AsHex(c, 256), c.length, 2, `store://n${i}`, null, null));
  assert.equal((await send(api, api.tx.utility.batchAll(calls), bob)).error, null);
  assert.equal((await send(api, api.tx.datanets.snapshot(datanet), alice)).error, null);
});

after(async () => {
  await api?.disconnect();
  await node?.stop();
  node?.cleanup();
});

const hash = (s) => blake2AsHex(s, 256);

test('register a base model; the fee goes to the treasury', async () => {
  const t0 = await free(api, TREASURY);
  const r = await send(api, api.tx.models.registerBase('tiny-llama', 'apache-2.0', 'llama', hash('base-weights'), 'hf://openledger/tiny-llama', [], hash('pretrain-config')), alice);
  assert.equal(r.error, null);
  const ev = findEvent(r.events, 'models', 'BaseRegistered');
  baseId = ev.data.model.toNumber();
  const fee = ev.data.fee.toBigInt();
  assert.equal(fee, api.consts.models.registrationFee.toBigInt());
  const txFee = findEvent(r.events, 'transactionPayment', 'TransactionFeePaid').data.actualFee.toBigInt();
  assert.equal(await free(api, TREASURY), t0 + fee + txFee);
  assert.equal((await api.query.balances.totalIssuance()).toBigInt(), TOTAL_SUPPLY);
});

test('register an adapter whose lineage points at the snapshot; bad lineage is refused', async () => {
  const adapter = (weights, lineage) => api.tx.models.registerAdapter(baseId, 'clinical-lora', 'cc-by-4.0', 16, 32, ['q_proj', 'v_proj'], hash(weights), 'store://adapters/clinical', lineage, hash('train-config'));
  assert.equal((await send(api, adapter('w0', [{ datanet, version: 2, weight: 1_000_000_000 }]), bob)).error, 'models.UnknownSnapshot');
  assert.equal((await send(api, adapter('w0', [{ datanet, version: 1, weight: 500_000_000 }]), bob)).error, 'models.BadLineageWeights');
  assert.equal((await send(api, adapter('w0', []), bob)).error, 'models.EmptyLineage');
  const r = await send(api, adapter('adapter-v1', [{ datanet, version: 1, weight: 1_000_000_000 }]), bob);
  assert.equal(r.error, null);
  adapterId = findEvent(r.events, 'models', 'AdapterRegistered').data.model.toNumber();

  const m = await rpc(node.rpcPort, 'models_getModel', [adapterId]);
  assert.equal(m.kind, 'adapter');
  assert.equal(m.base, baseId);
  assert.deepEqual(m.targetModules, ['q_proj', 'v_proj']);
  assert.equal(m.owner, bob.address);
  assert.deepEqual(m.versions[0].lineage, [{ datanet, version: 1, weightPerbill: 1_000_000_000 }]);
  assert.equal(m.versions[0].weightsHash, hash('adapter-v1'));
  assert.deepEqual(await rpc(node.rpcPort, 'models_byWeightsHash', [hash('adapter-v1')]), { model: adapterId, version: 1 });
  assert.deepEqual((await rpc(node.rpcPort, 'models_listByBase', [baseId])).items.map((x) => x.id), [adapterId]);
  assert.deepEqual((await rpc(node.rpcPort, 'models_listByDatanet', [datanet])).items.map((x) => x.id), [adapterId]);
  assert.deepEqual((await rpc(node.rpcPort, 'models_listByOwner', [bob.address])).items.map((x) => x.id), [adapterId]);
});

test('a new version keeps the identity; the old one is deprecated but queryable', async () => {
  let r = await send(api, api.tx.models.publishVersion(adapterId, hash('adapter-v2'), 'store://adapters/clinical-v2', [{ datanet, version: 1, weight: 1_000_000_000 }], hash('train-config-2')), bob);
  assert.equal(r.error, null);
  assert.equal(findEvent(r.events, 'models', 'VersionPublished').data.version.toNumber(), 2);
  r = await send(api, api.tx.models.deprecateVersion(adapterId, 1), bob);
  assert.equal(r.error, null);
  assert.equal((await send(api, api.tx.models.deprecateVersion(adapterId, 1), alice)).error, 'models.NotOwner');
  const m = await rpc(node.rpcPort, 'models_getModel', [adapterId]);
  assert.equal(m.latestVersion, 2);
  assert.deepEqual(m.versions.map((v) => [v.version, v.deprecated]), [[1, true], [2, false]]);
});

test('pricing and revenue split within governance bounds', async () => {
  assert.equal((await send(api, api.tx.models.setPricing(adapterId, { per1kTokens: 2n * OPEN / 1000n, perRequest: 0 }), bob)).error, null);
  const split = (o, d, w, t) => ({ owner: o * 10_000_000, data: d * 10_000_000, worker: w * 10_000_000, treasury: t * 10_000_000 });
  assert.equal((await send(api, api.tx.models.setRevenueSplit(adapterId, split(50, 30, 20, 10)), bob)).error, 'models.SplitNotComplete');
  assert.equal((await sudo(api, api.tx.models.setMinSplit(split(0, 25, 0, 5)), alice)).sudoError, null);
  assert.equal((await send(api, api.tx.models.setRevenueSplit(adapterId, split(60, 20, 15, 5)), bob)).error, 'models.SplitBelowMinimum');
  assert.equal((await send(api, api.tx.models.setRevenueSplit(adapterId, split(45, 30, 20, 5)), bob)).error, null);
  const m = await rpc(node.rpcPort, 'models_getModel', [adapterId]);
  assert.equal(m.pricePer1kTokens, (2n * OPEN / 1000n).toString());
  assert.deepEqual(m.splitPerbill, { data: 300_000_000, owner: 450_000_000, treasury: 50_000_000, worker: 200_000_000 });
});
