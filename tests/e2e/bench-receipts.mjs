// Benchmark: flood a dev node with batched, signed attribution receipts (8 shares each, from 250
// payers, crediting 256 contributors) from
// several workers and report settled receipts/s from first submission to finalization, next to
// plain balance transfers measured in the same run, and the benchmarked weights of both.
//
//   node bench-receipts.mjs <ws-url> [receipts per worker] [workers] [batch]
import { blake2AsHex, cryptoWaitReady } from '@polkadot/util-crypto';
import { u8aConcat, u8aToHex } from '@polkadot/util';
import { connect, devKeys, send, findEvent, OPEN, signVoucher, completionRequestHash, RECEIPT_DOMAIN, termsOf } from './lib/chain.js';

const [url, perWorkerArg = '1000', workersArg = '4', batchArg = '250'] = process.argv.slice(2);
const PER_WORKER = Number(perWorkerArg);
const WORKERS = Number(workersArg);
const BATCH = Number(batchArg);
const SHARES = 8;

await cryptoWaitReady();
const api = await connect(url);
const { alice, bob, k } = devKeys();
const ok = async (tx, who) => {
  const r = await send(api, tx, who);
  if (r.error) throw new Error(r.error);
  return r;
};

/** Sends signed extrinsics with explicit nonces and resolves when all are finalized. */
function finalizeAll(txs) {
  return Promise.all(txs.map((tx) => new Promise((resolve, reject) => {
    let unsub;
    tx.send(({ status, events }) => {
      if (status.isInvalid || status.isDropped) reject(new Error(status.type));
      if (status.isFinalized) { unsub?.(); resolve(events); }
    }).then((u) => { unsub = u; }, reject);
  })));
}

// --- setup: a snapshot of LEAVES leaves from as many contributors, a model, workers with signing
// keys, PAYERS funded payers: receipts spread over distinct payers and contributors, so every
// receipt and share writes entries of its own (the worst case the weights are benchmarked for).
const LEAVES = 256;
const PAYERS = 250;
const policy = { base: api.consts.datanets.minContributionDepositBase, perByte: api.consts.datanets.minContributionDepositPerByte };
let r = await ok(api.tx.datanets.createDatanet('bench', '', 'CC0', 'Open', policy), alice);
const datanet = findEvent(r.events, 'datanets', 'DatanetCreated').data.datanet.toNumber();
const contributors = Array.from({ length: LEAVES }, (_, i) => k(`//BenchContributor${i}`));
await ok(api.tx.utility.batchAll(contributors.map((c) => api.tx.balances.transferKeepAlive(c.address, 10n * OPEN))), alice);
for (let i = 0; i < LEAVES; i += 32) {
  await Promise.all(contributors.slice(i, i + 32).map((c, j) => ok(api.tx.datanets.contribute(datanet, blake2AsHex(`leaf ${i + j}`, 256), 10, 2, 'store://x', null, null), c)));
}
await ok(api.tx.datanets.snapshot(datanet), alice);
r = await ok(api.tx.models.registerBase('base', '', 'llama', blake2AsHex('b', 256), '', [], blake2AsHex('c', 256)), alice);
const model = findEvent(r.events, 'models', 'BaseRegistered').data.model.toNumber();
await ok(api.tx.models.publishVersion(model, blake2AsHex('b2', 256), '', [{ datanet, version: 1, weight: 1_000_000_000 }], blake2AsHex('c', 256)), alice);
// Priced so that the receipts' fee (0.01 OPEN) is within the price.
await ok(api.tx.models.setPricing(model, { per1kTokens: 0, perRequest: OPEN / 100n }), alice);
const payers = Array.from({ length: PAYERS }, (_, i) => k(`//BenchPayer${i}`));
await ok(api.tx.utility.batchAll(payers.map((p) => api.tx.balances.transferKeepAlive(p.address, 1_000n * OPEN))), alice);
for (let i = 0; i < PAYERS; i += 50) {
  await Promise.all(payers.slice(i, i + 50).map((p) => ok(api.tx.attribution.depositEscrow(500n * OPEN), p)));
}
const workers = Array.from({ length: WORKERS }, (_, i) => ({ stash: k(`//BenchWorker${i}`), key: k(`//BenchWorker${i}//receipts`) }));
await ok(api.tx.utility.batchAll(workers.map((w) => api.tx.balances.transferKeepAlive(w.stash.address, 10_000n * OPEN))), alice);
for (const w of workers) await ok(api.tx.openStaking.bondWorker(1_000n * OPEN, w.key.publicKey, '', [model], 0), w.stash);

// --- sign every receipt up front (what workers do as they serve) --------------------------------
const domain = (t) => api.createType('Bytes', t).toU8a();
const signedType = api.tx.attribution.submitReceipts.meta.args[0].type.toString().replace(/^Vec<(.*)>$/, '$1');
// Within the runtime's voucher lifetime (a day of blocks).
const expiresAt = (await api.rpc.chain.getHeader()).number.toNumber() + 10_000;
const terms = await termsOf(api, model);
let nonce = 0;
const t0sign = Date.now();
const batches = workers.map((w) => {
  const out = [];
  for (let i = 0; i < PER_WORKER; i++) {
    const { voucher, signature } = signVoucher(api, payers[nonce % PAYERS], {
      worker: w.stash.address, model, modelVersion: 2, maxFee: OPEN, terms, nonce: nonce++, expiresAt, requestHash: completionRequestHash(api, `request ${nonce}`),
    });
    const receipt = api.createType(signedType, {
      receipt: {
        voucher,
        payerSignature: signature,
        promptTokens: 50, completionTokens: 200, fee: OPEN / 100n, outputLen: 200, outputRoot: blake2AsHex(`out ${nonce}`, 256), claimsRoot: new Uint8Array(32), claims: 0, method: 'SpanMatch',
        attribution: Array.from({ length: SHARES }, (_, j) => ({ contribution: { datanet, version: 1, index: (nonce * SHARES + j) % LEAVES }, share: 100_000_000 })),
      },
      workerSignature: new Uint8Array(64),
    }).receipt;
    out.push({ receipt, workerSignature: u8aToHex(w.key.sign(u8aConcat(domain(RECEIPT_DOMAIN), receipt.toU8a()))) });
  }
  return out;
});
const signSeconds = (Date.now() - t0sign) / 1000;

// --- flood: every worker submits its batches with consecutive nonces, all at once ----------------
const txs = [];
for (const [wi, w] of workers.entries()) {
  let n = (await api.rpc.system.accountNextIndex(w.stash.address)).toNumber();
  for (let i = 0; i < batches[wi].length; i += BATCH) {
    txs.push(await api.tx.attribution.submitReceipts(batches[wi].slice(i, i + BATCH)).signAsync(w.stash, { nonce: n++ }));
  }
}
const t0 = Date.now();
const eventsPerTx = await finalizeAll(txs);
const receiptSeconds = (Date.now() - t0) / 1000;
const settled = eventsPerTx.flat().filter((e) => e.event.method === 'ReceiptSettled').length;
const rejected = eventsPerTx.flat().filter((e) => e.event.method === 'ReceiptRejected').length;

// --- baseline: the same number of plain transfers, from several senders, in the same run ---------
const TRANSFERS = PER_WORKER * WORKERS;
const senders = Array.from({ length: WORKERS }, (_, i) => k(`//BenchSender${i}`));
await ok(api.tx.utility.batchAll(senders.map((s) => api.tx.balances.transferKeepAlive(s.address, 10_000n * OPEN))), alice);
const ttxs = [];
for (const s of senders) {
  let n = (await api.rpc.system.accountNextIndex(s.address)).toNumber();
  for (let i = 0; i < TRANSFERS / WORKERS; i++) ttxs.push(await api.tx.balances.transferKeepAlive(bob.address, OPEN / 1000n).signAsync(s, { nonce: n++ }));
}
// (thousands of watch subscriptions would exceed the node's per-connection limit, so transfers
// are submitted without one and the run ends when the finalized state has every sender's nonce)
const target = await Promise.all(senders.map(async (s) => (await api.rpc.system.accountNextIndex(s.address)).toNumber() + TRANSFERS / WORKERS));
const t1 = Date.now();
await Promise.all(ttxs.map((tx) => api.rpc.author.submitExtrinsic(tx)));
for (;;) {
  const at = await api.at(await api.rpc.chain.getFinalizedHead());
  const nonces = await Promise.all(senders.map(async (s) => (await at.query.system.account(s.address)).nonce.toNumber()));
  if (nonces.every((n, i) => n >= target[i])) break;
  await new Promise((res) => setTimeout(res, 50));
}
const transferSeconds = (Date.now() - t1) / 1000;

// --- weights from the generated weight files, via the runtime's fee query ----------------------
const oneBatch = await api.tx.attribution.submitReceipts(batches[0].slice(0, BATCH)).signAsync(workers[0].stash, { nonce: 1_000_000 });
const batchWeight = (await api.call.transactionPaymentApi.queryInfo(oneBatch.toU8a(), oneBatch.encodedLength)).weight.refTime.toBigInt();
const oneTransfer = await api.tx.balances.transferKeepAlive(bob.address, 1).signAsync(alice, { nonce: 1_000_000 });
const transferWeight = (await api.call.transactionPaymentApi.queryInfo(oneTransfer.toU8a(), oneTransfer.encodedLength)).weight.refTime.toBigInt();
const perReceipt = Number(batchWeight) / Math.min(BATCH, PER_WORKER);

console.log(`\n## Receipts: ${WORKERS} workers × ${PER_WORKER} receipts, ${SHARES} shares each, batches of ${BATCH}, dev chain (instant seal)`);
console.log('| what | count | seconds | per second |');
console.log('|---|---:|---:|---:|');
console.log(`| receipts settled (submit → finalized) | ${settled} | ${receiptSeconds.toFixed(2)} | ${(settled / receiptSeconds).toFixed(0)} |`);
console.log(`| plain transfers (submit → finalized) | ${TRANSFERS} | ${transferSeconds.toFixed(2)} | ${(TRANSFERS / transferSeconds).toFixed(0)} |`);
console.log(`\nrejected: ${rejected}; signing (client side) took ${signSeconds.toFixed(1)} s`);
console.log(`declared weight per receipt (before dispatch, charged for 32 shares; from a ${Math.min(BATCH, PER_WORKER)}-receipt batch): ${(perReceipt / 1e6).toFixed(1)} µs; transfer_keep_alive: ${(Number(transferWeight) / 1e6).toFixed(1)} µs; ratio ${(perReceipt / Number(transferWeight)).toFixed(2)}x`);
await api.disconnect();
process.exit(settled === PER_WORKER * WORKERS ? 0 : 1);
