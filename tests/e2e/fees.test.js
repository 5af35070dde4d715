// A call that fails early costs no more than the work it did: fees read from
// `TransactionFeePaid` on a real node, against the same call succeeding and against what it is
// charged before dispatch (its declared worst case, `payment_queryInfo`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { blake2AsHex } from '@polkadot/util-crypto';
import { devChain, devKeys, send, findEvent, OPEN } from './lib/chain.js';

const chain = devChain('fees');
const { alice, bob } = devKeys();

/** The fee `who` paid for `tx` (and its error, if it failed). */
async function feeOf(tx, who) {
  const r = await send(chain.api, tx, who);
  return { fee: findEvent(r.events, 'transactionPayment', 'TransactionFeePaid').data.actualFee.toBigInt(), error: r.error };
}

/** What `tx` is charged before dispatch (its declared weight). */
const declared = async (tx, who) => (await tx.paymentInfo(who)).partialFee.toBigInt();

test('a failed snapshot costs what it read, not the largest Datanet; a failed contribute what it read', async () => {
  const { api } = chain;
  const policy = { base: api.consts.datanets.minContributionDepositBase, perByte: api.consts.datanets.minContributionDepositPerByte };
  const r = await send(api, api.tx.datanets.createDatanet('fees', '', 'CC0', 'Open', policy), alice);
  const datanet = findEvent(r.events, 'datanets', 'DatanetCreated').data.datanet.toNumber();
  const contribute = (d, i) => api.tx.datanets.contribute(d, blake2AsHex(`record ${i}`, 256), 100, 10, `store://${i}`, null, null);

  const good = await feeOf(contribute(datanet, 0), bob);
  assert.equal(good.error, null);
  const bad = await feeOf(contribute(datanet + 7, 1), bob);
  assert.equal(bad.error, 'datanets.UnknownDatanet');
  // Refused after one read, before any write: charged for that read, well below a good one.
  assert.ok(bad.fee * 3n < good.fee * 2n, `a failed contribute (${bad.fee}) costs less than a good one (${good.fee})`);

  const snapshot = api.tx.datanets.snapshot(datanet);
  const worst = await declared(snapshot, alice);
  const notCurator = await feeOf(snapshot, bob);
  assert.equal(notCurator.error, 'datanets.NotCurator');
  const taken = await feeOf(api.tx.datanets.snapshot(datanet), alice);
  assert.equal(taken.error, null);
  const unchanged = await feeOf(api.tx.datanets.snapshot(datanet), alice);
  assert.equal(unchanged.error, 'datanets.NoChangeSinceSnapshot');
  assert.ok(notCurator.fee <= taken.fee, `refused before reading leaves (${notCurator.fee}) ≤ a one-leaf snapshot (${taken.fee})`);
  assert.ok(unchanged.fee <= taken.fee, `refused after reading one leaf (${unchanged.fee}) ≤ the snapshot of that leaf (${taken.fee})`);
  assert.ok(notCurator.fee * 20n < worst, `charged ${notCurator.fee}, refunded from the declared ${worst}`);
  assert.ok(notCurator.fee < OPEN / 10n, `a failed snapshot costs ${notCurator.fee}`);
});

test('a failed expire_challenge costs one read, not vesting a receipt; a claim that pays nothing is charged', async () => {
  const { api } = chain;
  const tx = api.tx.attribution.expireChallenge(blake2AsHex('no such receipt', 256));
  const worst = await declared(tx, alice);
  const r = await feeOf(tx, alice);
  assert.equal(r.error, 'attribution.UnknownReceipt');
  assert.ok(r.fee * 10n < worst, `charged ${r.fee}, declared ${worst}`);
  const transfer = await feeOf(api.tx.balances.transferKeepAlive(bob.address, OPEN), alice);
  assert.ok(r.fee <= transfer.fee * 2n, `about a transfer: ${r.fee} vs ${transfer.fee}`);
  const none = await feeOf(api.tx.attribution.claimRewards(bob.address), alice);
  assert.equal(none.error, 'attribution.NothingToClaim');
  assert.ok(none.fee > 0n, 'free claims are only those that pay');
});
