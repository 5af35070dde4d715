// Paid inference end to end: a script signs vouchers (payer key) and receipts (worker signing
// key) with real sr25519 keys, submits them over JSON-RPC, and polkadot-js sees the fee split.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { blake2AsHex } from '@polkadot/util-crypto';
import { Node, rpc, tempDir } from './lib/node.js';
import { connect, devKeys, free, send, findEvent, OPEN, TOTAL_SUPPLY, vestSettled, signedReceipt } from './lib/chain.js';

let node;
let api;
const { alice, bob, charlie, k } = devKeys();
const dave = k('//Dave'); // model owner
const eve = k('//Eve'); // payer
const workerKey = k('//Charlie//receipts'); // Charlie's receipt signing key
let datanet;
let adapter;
let first; // the settled receipt, replayed below

before(async () => {
  node = new Node({ name: 'attribution', basePath: tempDir('ol-attr-'), args: ['--dev', '--sealing', 'instant'] });
  await node.start();
  api = await connect(node.wsUrl);
  const ok = async (tx, who) => { const r = await send(api, tx, who); assert.equal(r.error, null); return r; };
  const policy = { base: api.consts.datanets.minContributionDepositBase, perByte: api.consts.datanets.minContributionDepositPerByte };
  let r = await ok(api.tx.datanets.createDatanet('support', '', 'CC0', 'Open', policy), alice);
  datanet = findEvent(r.events, 'datanets', 'DatanetCreated').data.datanet.toNumber();
  await ok(api.tx.utility.batchAll(['a', 'b', 'c'].map((c) => api.tx.datanets.contribute(datanet, blake2AsHex(c, 256), 1, 1, `store://${c}`, null, null))), bob);
  await ok(api.tx.datanets.snapshot(datanet), alice);
  r = await ok(api.tx.models.registerBase('base', '', 'llama', blake2AsHex('b', 256), '', [], blake2AsHex('c', 256)), alice);
  const base = findEvent(r.events, 'models', 'BaseRegistered').data.model.toNumber();
  r = await ok(api.tx.models.registerAdapter(base, 'support-lora', '', 8, 16, ['q_proj'], blake2AsHex('w', 256), '', [{ datanet, version: 1, weight: 1_000_000_000 }], blake2AsHex('t', 256)), dave);
  adapter = findEvent(r.events, 'models', 'AdapterRegistered').data.model.toNumber();
  // Priced at 2 OPEN a request: a receipt charges at most that.
  await ok(api.tx.models.setPricing(adapter, { per1kTokens: 0, perRequest: 2n * OPEN }), dave);
  await ok(api.tx.openStaking.bondWorker(api.consts.openStaking.minWorkerBond, workerKey.publicKey, 'http://127.0.0.1:8080', [adapter], 0), charlie);
  await ok(api.tx.attribution.depositEscrow(100n * OPEN), eve);
});

after(async () => {
  await api?.disconnect();
  await node?.stop();
  node?.cleanup();
});

/** A signed receipt for `nonce`, as the worker would build it. */
const receipt = ({ nonce, fee, maxFee = 2n * OPEN, shares, signer = workerKey }) =>
  signedReceipt(api, { payer: eve, worker: charlie, signer, model: adapter, datanet, nonce, fee, maxFee, shares });

test('a signed receipt settles and the fee is split as the model says', async () => {
  const fee = OPEN;
  first = await receipt({ nonce: 1, fee, shares: [[0, 60], [2, 30]] });
  const { signed, requestId } = first;
  const escrow0 = (await api.query.balances.holds(eve.address)).reduce((s, h) => s + h.amount.toBigInt(), 0n);
  const r = await send(api, api.tx.attribution.submitReceipts([signed]), charlie);
  assert.equal(r.error, null);
  const settled = findEvent(r.events, 'attribution', 'ReceiptSettled');
  assert.ok(settled, 'ReceiptSettled');
  assert.equal(settled.data.requestId.toHex(), requestId);
  assert.equal(settled.data.fee.toBigInt(), fee);
  const escrow1 = (await api.query.balances.holds(eve.address)).reduce((s, h) => s + h.amount.toBigInt(), 0n);
  assert.equal(escrow0 - escrow1, fee);
  // Default split 40/30/20/10: data 0.3 OPEN → Bob (both leaves) 60 % + 30 %, the rest to the
  // lineage's Datanet owner (Alice). Pending while the receipt can be challenged.
  const rewards = async (who) => (await api.query.attribution.rewards(who)).toBigInt();
  const pending = async (who) => (await api.query.attribution.accountEarnings(who)).pending.toBigInt();
  assert.equal(await pending(dave.address), OPEN * 40n / 100n);
  assert.equal(await pending(charlie.address), OPEN * 20n / 100n);
  assert.equal(await pending(bob.address), OPEN * 27n / 100n);
  assert.equal(await pending(alice.address), OPEN * 3n / 100n);
  assert.equal(await rewards(bob.address), 0n, 'nothing claimable yet');
  const usage = await api.query.attribution.modelUsage(adapter);
  assert.equal(usage.requests.toNumber(), 1);
  assert.equal(usage.tokens.toNumber(), 52);

  // The same through the attribution_* RPC.
  const rec = await rpc(node.rpcPort, 'attribution_getReceipt', [requestId]);
  assert.equal(rec.fee, fee.toString());
  assert.equal(rec.worker, charlie.address);
  assert.deepEqual(rec.attribution.map((x) => [x.index, x.sharePerbill]), [[0, 600_000_000], [2, 300_000_000]]);
  const paid = Object.fromEntries(rec.payouts.map((p) => [p.kind + (p.contribution ? p.contribution.join('/') : ''), BigInt(p.amount)]));
  assert.deepEqual(paid, {
    owner: OPEN * 40n / 100n, worker: OPEN * 20n / 100n, treasury: OPEN * 10n / 100n,
    [`contribution${datanet}/1/0`]: OPEN * 18n / 100n, [`contribution${datanet}/1/2`]: OPEN * 9n / 100n, datanet: OPEN * 3n / 100n,
  });
  assert.equal(rec.payouts.reduce((s, p) => s + BigInt(p.amount), 0n), fee, 'the payouts are the whole fee');
  assert.deepEqual(await rpc(node.rpcPort, 'attribution_modelUsage', [adapter]), { requests: 1, tokens: 52, revenue: fee.toString() });
  assert.deepEqual(await rpc(node.rpcPort, 'attribution_earnings', [bob.address]), {
    accrued: '0', claimed: '0', unclaimed: '0', pending: (OPEN * 27n / 100n).toString(),
  });
  assert.equal((await send(api, api.tx.attribution.claimRewards(bob.address), alice)).error, 'attribution.NothingToClaim');

  // Once the challenge window has passed, the payouts vest and the record is pruned.
  await vestSettled(api, node.rpcPort);
  await assert.rejects(rpc(node.rpcPort, 'attribution_getReceipt', [requestId]), 'pruned');
  assert.equal(await rewards(dave.address), OPEN * 40n / 100n);
  // Charlie's worker share entered its staking reward pool (no commission, no delegators: all
  // its own), claimed there and paid from the attribution pot.
  const charlie0 = await free(api, charlie.address);
  const claimed = await send(api, api.tx.openStaking.claimStakingRewards(charlie.address), charlie);
  assert.equal(claimed.error, null);
  const share = findEvent(claimed.events, 'openStaking', 'StakingRewardsClaimed').data.amount.toBigInt();
  assert.ok(OPEN * 20n / 100n - share <= 1n, `worker share ${share}`);
  const claimFee = findEvent(claimed.events, 'transactionPayment', 'TransactionFeePaid').data.actualFee.toBigInt();
  assert.equal(claimFee, 0n, 'a claim that pays is free of fees');
  assert.equal(await free(api, charlie.address), charlie0 + share);
  assert.equal(await rewards(bob.address), OPEN * 27n / 100n);
  assert.equal(await rewards(alice.address), OPEN * 3n / 100n);
  assert.equal((await rpc(node.rpcPort, 'attribution_contributionEarnings', [datanet, 1, 0])), (OPEN * 18n / 100n).toString());
  assert.equal((await rpc(node.rpcPort, 'attribution_datanetEarnings', [datanet])), (OPEN * 30n / 100n).toString());
  assert.deepEqual(await rpc(node.rpcPort, 'attribution_earnings', [bob.address]), {
    accrued: (OPEN * 27n / 100n).toString(), claimed: '0', unclaimed: (OPEN * 27n / 100n).toString(), pending: '0',
  });

  // Bob's earnings are paid out (Alice triggers the claim; the OPEN goes to Bob).
  const bob0 = await free(api, bob.address);
  assert.equal((await send(api, api.tx.attribution.claimRewards(bob.address), alice)).error, null);
  assert.equal(await free(api, bob.address), bob0 + OPEN * 27n / 100n);
  assert.equal((await rpc(node.rpcPort, 'attribution_earnings', [bob.address])).claimed, (OPEN * 27n / 100n).toString());
  assert.equal((await api.query.balances.totalIssuance()).toBigInt(), TOTAL_SUPPLY);
});

test('bad receipts are rejected one by one with their reason', async () => {
  // The first receipt again: pruned after its window, but its voucher has expired by then, so
  // it can never settle twice.
  const old = await send(api, api.tx.attribution.submitReceipts([first.signed]), charlie);
  assert.deepEqual(old.events.map((e) => e.event).filter((e) => e.method === 'ReceiptRejected').map((e) => e.data.reason.toString()), ['Expired']);
  const greedy = await receipt({ nonce: 2, fee: 3n * OPEN, shares: [] });
  const overPriced = await receipt({ nonce: 6, fee: 3n * OPEN, maxFee: 4n * OPEN, shares: [] });
  const stashSigned = await receipt({ nonce: 3, fee: OPEN, shares: [], signer: charlie });
  const outside = await receipt({ nonce: 4, fee: OPEN, shares: [[7, 10]] });
  const fine = await receipt({ nonce: 5, fee: OPEN / 2n, shares: [[1, 100]] });
  // `fine` twice in one batch: settled, then the very same signed receipt again.
  const r = await send(api, api.tx.attribution.submitReceipts([fine, fine, greedy, overPriced, stashSigned, outside].map((x) => x.signed)), charlie);
  assert.equal(r.error, null);
  const reasons = r.events.map((e) => e.event).filter((e) => e.method === 'ReceiptRejected').map((e) => e.data.reason.toString());
  assert.deepEqual(reasons, ['AlreadyUsed', 'FeeAboveVoucher', 'FeeAbovePrice', 'BadWorkerSignature', 'BadAttribution']);
  const settled = r.events.map((e) => e.event).filter((e) => e.method === 'ReceiptSettled');
  assert.equal(settled.length, 1);
  assert.equal(settled[0].data.requestId.toHex(), fine.requestId);
});
