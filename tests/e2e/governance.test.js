// Governance by OPEN holders on a `local_testnet` chain (Alice and Bob validate; no sudo), four
// referenda decided side by side:
// - on the parameters track, one voted aye with 1x–6x conviction changes the minimum revenue
//   split; one voted down changes nothing;
// - on the validators track, Charlie — a node whose keys come from `author_rotateKeys`, registered
//   with `session.setKeys` — joins the set and authors blocks, and Bob is removed and stops
//   authoring, while the chain keeps finalizing.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { u8aToHex } from '@polkadot/util';
import { Node, rpc, tempDir, waitFor } from './lib/node.js';
import { connect, devKeys, send, propose, vote, decided, OPEN } from './lib/chain.js';

const nodes = [];
const keys = devKeys();
const nodeKey = () => randomBytes(32).toString('hex');
const split = (data, treasury) => ({ owner: 0, data: data * 10_000_000, worker: 50_000_000, treasury: treasury * 10_000_000 });
const WANTED = split(25, 2);
const REFUSED = split(29, 3);
const BALANCE = 10_000_000n * OPEN;
const CONVICTIONS = ['Locked1x', 'Locked2x', 'Locked3x', 'Locked4x', 'Locked5x', 'Locked6x'];

let api;
let charlieAura;
let minSplitBefore;
let referenda;

before(async () => {
  const alice = new Node({ name: 'alice', basePath: tempDir('ol-gov-alice-'), args: ['--chain', 'local', '--alice', '--node-key', nodeKey()] });
  nodes.push(alice);
  await alice.start();
  const boot = ['--bootnodes', await alice.multiaddr()];
  const bob = new Node({ name: 'bob', basePath: tempDir('ol-gov-bob-'), args: ['--chain', 'local', '--bob', '--node-key', nodeKey(), ...boot] });
  // A validator node with an empty keystore: its keys come from author_rotateKeys.
  const charlie = new Node({ name: 'charlie', basePath: tempDir('ol-gov-charlie-'), args: ['--chain', 'local', '--validator', '--node-key', nodeKey(), ...boot] });
  nodes.push(bob, charlie);
  await Promise.all([bob.start(), charlie.start()]);
  api = await connect(alice.wsUrl);
  minSplitBefore = (await api.query.models.minSplit()).toJSON();

  const sessionKeys = await rpc(charlie.rpcPort, 'author_rotateKeys');
  // SCALE of SessionKeys { aura: sr25519, grandpa: ed25519 }: two 32-byte keys.
  assert.equal(sessionKeys.length, 2 + 128);
  charlieAura = `0x${sessionKeys.slice(2, 66)}`;
  const [setKeys, indices] = await Promise.all([
    send(api, api.tx.session.setKeys(sessionKeys, '0x'), keys.charlie),
    propose(api, [
      [api.tx.models.setMinSplit(WANTED), { Origins: 'ParametersAdmin' }],
      [api.tx.models.setMinSplit(REFUSED), { Origins: 'ParametersAdmin' }],
      [api.tx.validatorSet.addValidator(keys.charlie.address), { Origins: 'ValidatorAdmin' }],
      [api.tx.validatorSet.removeValidator(keys.bob.address), { Origins: 'ValidatorAdmin' }],
    ], keys.alice),
  ]);
  assert.equal(setKeys.error, null);
  const [passing, failing, add, remove] = indices;
  referenda = { passing, failing, add, remove };
  // Six holders vote aye with 1x to 6x conviction; on the refused split, two aye and four nay.
  const voters = ['//Alice', '//Bob', '//Charlie', '//Dave', '//Eve', '//Ferdie'].map((u) => keys.k(u));
  await Promise.all(voters.map((who, i) => vote(api, who, [
    { index: passing, aye: true, conviction: CONVICTIONS[i], balance: BALANCE },
    { index: failing, aye: i < 2, conviction: CONVICTIONS[i], balance: BALANCE },
    { index: add, aye: true, conviction: 'Locked1x', balance: BALANCE },
    { index: remove, aye: true, conviction: 'Locked1x', balance: BALANCE },
  ])));
});

after(async () => {
  await api?.disconnect();
  for (const n of nodes) await n.stop();
  for (const n of nodes) n.cleanup();
});

/** The Aura author of block `n`: its slot modulo the authorities at its parent. */
async function authorOf(n) {
  const header = await api.rpc.chain.getHeader(await api.rpc.chain.getBlockHash(n));
  const aura = header.digest.logs.find((l) => l.isPreRuntime && l.asPreRuntime[0].toString() === 'aura');
  const slot = api.createType('u64', aura.asPreRuntime[1]).toBigInt();
  const authorities = (await (await api.at(header.parentHash)).query.aura.authorities()).map((a) => a.toHex());
  return authorities[Number(slot % BigInt(authorities.length))];
}
const bestNumber = async () => (await api.rpc.chain.getHeader()).number.toNumber();
const finalizedNumber = async () => (await api.rpc.chain.getHeader(await api.rpc.chain.getFinalizedHead())).number.toNumber();
const auraAuthorities = async () => (await api.query.aura.authorities()).map((a) => a.toHex());

test('local_testnet has no sudo key: root is a referendum', async () => {
  assert.ok((await api.query.sudo.key()).isNone);
  const r = await send(api, api.tx.sudo.sudo(api.tx.system.remark('0x00')), keys.alice);
  assert.equal(r.error, 'sudo.RequireSudo');
});

test('a parameters referendum voted with conviction changes the minimum split; a failing one changes nothing', async () => {
  // The votes lock (not hold, not spend) the OPEN: the largest vote of the account counts.
  const locks = await api.query.balances.locks(keys.charlie.address);
  const lock = locks.find((l) => l.id.toUtf8() === 'pyconvot');
  assert.ok(lock, 'conviction-voting lock');
  assert.equal(lock.amount.toBigInt(), BALANCE);
  const votes = await api.query.convictionVoting.votingFor(keys.charlie.address, 1);
  assert.equal(votes.asCasting.votes.length, 2, 'Charlie voted on both parameters referenda');

  assert.equal(await decided(api, referenda.passing), 'Approved');
  // Enacted one block after approval: the split is the one voted.
  await waitFor('the minimum split to change', async () =>
    JSON.stringify((await api.query.models.minSplit()).toJSON()) === JSON.stringify(WANTED), 60_000, 1000);
  assert.notDeepEqual(minSplitBefore, WANTED);

  assert.equal(await decided(api, referenda.failing), 'Rejected');
  assert.deepEqual((await api.query.models.minSplit()).toJSON(), WANTED);
});

test('a validator joins by rotated keys and a referendum and authors blocks; a removed one stops', async () => {
  assert.equal(await decided(api, referenda.add), 'Approved');
  assert.equal(await decided(api, referenda.remove), 'Approved');
  await waitFor('Charlie in and Bob out of the validator set', async () => {
    const set = (await api.query.validatorSet.validators()).map((v) => v.toString());
    return set.includes(keys.charlie.address) && !set.includes(keys.bob.address);
  }, 60_000, 1000);
  // At a session boundary after next (5 blocks each), Aura's authorities are Alice and Charlie's
  // rotated key.
  const aliceAura = u8aToHex(keys.alice.publicKey);
  const bobAura = u8aToHex(keys.bob.publicKey);
  await waitFor('Alice and Charlie the Aura authorities', async () =>
    JSON.stringify((await auraAuthorities()).sort()) === JSON.stringify([aliceAura, charlieAura].sort()), 120_000, 1000);
  const from = await bestNumber();
  const finalizedFrom = await finalizedNumber();
  // Charlie authors, Bob never again.
  const authors = new Map();
  await waitFor('a block authored by Charlie', async () => {
    const best = await bestNumber();
    for (let n = from + 1; n <= best; n++) if (!authors.has(n)) authors.set(n, await authorOf(n));
    return [...authors.values()].includes(charlieAura) && authors.size >= 4;
  }, 120_000, 2000);
  assert.ok(![...authors.values()].includes(bobAura), 'Bob authored after his removal');
  assert.ok([...authors.values()].every((a) => a === aliceAura || a === charlieAura));
  // GRANDPA's set changed with it: Alice and Charlie keep finalizing.
  await waitFor('finality to move on', async () => (await finalizedNumber()) > finalizedFrom + 2, 120_000, 1000);
});
