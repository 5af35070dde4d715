// Datanets through polkadot-js: create, contribute, curate, snapshot, prove.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { blake2AsHex } from '@polkadot/util-crypto';
import { u8aToHex } from '@polkadot/util';
import { Node, rpc, tempDir } from './lib/node.js';
import { connect, devKeys, free, send, findEvent, TREASURY } from './lib/chain.js';
import { leafBytes, verifyProof } from './lib/merkle.js';

let node;
let api;
const { alice, bob, charlie, k } = devKeys();
const dave = k('//Dave');
const eve = k('//Eve');
let datanet;
let bobContribution;
let daveContribution;

before(async () => {
  node = new Node({ name: 'datanets', basePath: tempDir('ol-datanets-'), args: ['--dev', '--sealing', 'instant'] });
  await node.start();
  api = await connect(node.wsUrl);
});

after(async () => {
  await api?.disconnect();
  await node?.stop();
  node?.cleanup();
});

const held = async (who) =>
  (await api.query.balances.holds(who)).reduce((s, h) => s + h.amount.toBigInt(), 0n);

test('Alice creates a curated Datanet and adds Charlie as curator', async () => {
  const policy = {
    base: api.consts.datanets.minContributionDepositBase,
    perByte: api.consts.datanets.minContributionDepositPerByte,
  };
  const { events, error } = await send(
    api,
    api.tx.datanets.createDatanet('medical-qa', 'ipfs://medical-qa/meta.json', 'CC-BY-4.0', 'Curated', policy),
    alice,
  );
  assert.equal(error, null);
  const created = findEvent(events, 'datanets', 'DatanetCreated');
  datanet = created.data.datanet.toNumber();
  assert.equal(created.data.owner.toString(), alice.address);
  assert.equal(created.data.deposit.toBigInt(), api.consts.datanets.datanetDeposit.toBigInt());
  assert.equal((await send(api, api.tx.datanets.addCurator(datanet, charlie.address), alice)).error, null);
  const info = await rpc(node.rpcPort, 'datanets_getDatanet', [datanet]);
  assert.equal(info.name, 'medical-qa');
  assert.equal(info.curation, 'curated');
  assert.equal(info.curatorCount, 1);
});

test('Bob and Dave contribute; contributions are pending with deposits held', async () => {
  const hold0 = await held(bob.address);
  const contentA = 'Q: What is hypertension? A: Persistently raised arterial blood pressure.';
  const contentB = 'Q: Is the moon made of cheese? A: Yes.';
  let r = await send(api, api.tx.datanets.contribute(datanet, blake2AsHex(contentA, 256), contentA.length, 17, 'store://a', null, '{"lang":"en"}'), bob);
  assert.equal(r.error, null);
  const ev = findEvent(r.events, 'datanets', 'Contributed');
  bobContribution = ev.data.contribution.toNumber();
  assert.equal(ev.data.contentHash.toHex(), blake2AsHex(contentA, 256));
  assert.equal(await held(bob.address), hold0 + ev.data.deposit.toBigInt());
  r = await send(api, api.tx.datanets.contribute(datanet, blake2AsHex(contentB, 256), contentB.length, 11, 'store://b', null, null), dave);
  assert.equal(r.error, null);
  daveContribution = findEvent(r.events, 'datanets', 'Contributed').data.contribution.toNumber();
  const c = await rpc(node.rpcPort, 'datanets_getContribution', [bobContribution]);
  assert.equal(c.status, 'pending');
  assert.equal(c.contributor, bob.address);
  assert.equal(c.metadata, '{"lang":"en"}');
  // The same content again is refused: the first contributor keeps it.
  r = await send(api, api.tx.datanets.contribute(datanet, blake2AsHex(contentA, 256), 5, 1, 'store://dup', null, null), eve);
  assert.equal(r.error, 'datanets.DuplicateContent');
});

test('only curators curate; Charlie accepts Bob and rejects Dave', async () => {
  let r = await send(api, api.tx.datanets.accept(bobContribution), eve);
  assert.equal(r.error, 'datanets.NotCurator');
  r = await send(api, api.tx.datanets.accept(bobContribution), charlie);
  assert.equal(r.error, null);
  assert.equal(findEvent(r.events, 'datanets', 'Accepted').data.leaf.toNumber(), 0);

  const deposit = BigInt((await rpc(node.rpcPort, 'datanets_getContribution', [daveContribution])).deposit);
  const t0 = await free(api, TREASURY);
  r = await send(api, api.tx.datanets.reject(daveContribution, 4), charlie);
  assert.equal(r.error, null);
  const rejected = findEvent(r.events, 'datanets', 'Rejected');
  const forfeited = rejected.data.forfeited.toBigInt();
  assert.equal(rejected.data.reason.toNumber(), 4);
  assert.equal(forfeited, deposit / 5n);
  assert.equal(rejected.data.released.toBigInt(), deposit - forfeited);
  const fee = findEvent(r.events, 'transactionPayment', 'TransactionFeePaid').data.actualFee.toBigInt();
  assert.equal(await free(api, TREASURY), t0 + forfeited + fee);
  assert.equal(await held(dave.address), 0n);
  await assert.rejects(rpc(node.rpcPort, 'datanets_getContribution', [daveContribution]), /no contribution/);
});

test('a snapshot freezes the accepted list; the RPC proof verifies against the on-chain root', async () => {
  const r = await send(api, api.tx.datanets.snapshot(datanet), alice);
  assert.equal(r.error, null);
  const taken = findEvent(r.events, 'datanets', 'SnapshotTaken');
  assert.equal(taken.data.version.toNumber(), 1);
  const onChain = (await api.query.datanets.snapshots(datanet, 1)).unwrap();
  assert.equal(onChain.leafCount.toNumber(), 1);

  const proof = await rpc(node.rpcPort, 'datanets_getProof', [datanet, 1, 0]);
  assert.equal(proof.root, onChain.root.toHex());
  assert.equal(proof.contribution, bobContribution);
  const leaf = leafBytes(proof.contribution, proof.contentHash);
  assert.equal(u8aToHex(leaf), proof.leaf);
  assert.ok(verifyProof(onChain.root.toHex(), proof.proof, proof.numberOfLeaves, proof.leafIndex, leaf));
  // A tampered leaf does not verify.
  const bad = leafBytes(proof.contribution + 1, proof.contentHash);
  assert.ok(!verifyProof(onChain.root.toHex(), proof.proof, proof.numberOfLeaves, proof.leafIndex, bad));
  await assert.rejects(rpc(node.rpcPort, 'datanets_getProof', [datanet, 1, 1]), /no leaf/);

  const snap = await rpc(node.rpcPort, 'datanets_getSnapshot', [datanet, 1]);
  assert.equal(snap.root, onChain.root.toHex());
  // Nothing changed: a second snapshot is refused.
  assert.equal((await send(api, api.tx.datanets.snapshot(datanet), alice)).error, 'datanets.NoChangeSinceSnapshot');
});

test('a bigger snapshot: every leaf proves against the root', async () => {
  const contents = Array.from({ length: 7 }, (_, i) => `record ${i}: ${'x'.repeat(i)}`);
  const calls = contents.map((c, i) => api.tx.datanets.contribute(datanet, blake2AsHex(c, 256), c.length, 3, `store://r${i}`, null, null));
  assert.equal((await send(api, api.tx.utility.batchAll(calls), bob)).error, null);
  const page = await rpc(node.rpcPort, 'datanets_listContributions', [datanet, null, 100]);
  const pending = page.items.filter((c) => c.status === 'pending').map((c) => c.id);
  assert.equal(pending.length, 7);
  assert.equal((await send(api, api.tx.utility.batchAll(pending.map((id) => api.tx.datanets.accept(id))), charlie)).error, null);
  assert.equal((await send(api, api.tx.datanets.snapshot(datanet), charlie)).error, null);
  const root = (await api.query.datanets.snapshots(datanet, 2)).unwrap().root.toHex();
  for (let i = 0; i < 8; i++) {
    const p = await rpc(node.rpcPort, 'datanets_getProof', [datanet, 2, i]);
    assert.ok(verifyProof(root, p.proof, p.numberOfLeaves, p.leafIndex, leafBytes(p.contribution, p.contentHash)), `leaf ${i}`);
  }
  const mine = await rpc(node.rpcPort, 'datanets_contributionsOf', [bob.address, null, 3]);
  assert.equal(mine.items.length, 3);
  assert.notEqual(mine.next, null);
  const rest = await rpc(node.rpcPort, 'datanets_contributionsOf', [bob.address, mine.next, 100]);
  assert.equal(mine.items.length + rest.items.length, 8);
});

test('a snapshot of an empty Datanet is refused', async () => {
  const { events } = await send(api, api.tx.datanets.createDatanet('empty', '', '', 'Open', {
    base: api.consts.datanets.minContributionDepositBase,
    perByte: api.consts.datanets.minContributionDepositPerByte,
  }), eve);
  const id = findEvent(events, 'datanets', 'DatanetCreated').data.datanet.toNumber();
  assert.equal((await send(api, api.tx.datanets.snapshot(id), eve)).error, 'datanets.NothingToSnapshot');
});
