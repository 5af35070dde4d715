// polkadot-js helpers shared by the tests. No custom type definitions anywhere: the node's
// metadata is all polkadot-js needs.
import { ApiPromise, WsProvider, Keyring } from '@polkadot/api';
import { stringToU8a, u8aConcat, u8aToHex } from '@polkadot/util';
import { blake2AsHex, encodeAddress } from '@polkadot/util-crypto';
import { contentRoot } from './evidence.js';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { before, after } from 'node:test';
import { Node, rpc, tempDir } from './node.js';

export const OPEN = 10n ** 18n;
export const TOTAL_SUPPLY = 1_000_000_000n * OPEN;
export const EXISTENTIAL_DEPOSIT = OPEN / 1000n;

export async function connect(url) {
  return ApiPromise.create({ provider: new WsProvider(url, 1000), noInitWarn: true, throwOnConnect: true });
}

export function devKeys() {
  const keyring = new Keyring({ type: 'sr25519', ss58Format: 42 });
  const k = (uri) => keyring.addFromUri(uri);
  return { keyring, alice: k('//Alice'), bob: k('//Bob'), charlie: k('//Charlie'), k };
}

/** The account of a FRAME `PalletId` (`modl` ++ id, zero padded). */
export function palletAccount(id) {
  return encodeAddress(u8aConcat(stringToU8a('modl'), stringToU8a(id), new Uint8Array(32 - 4 - id.length)), 42);
}
export const TREASURY = palletAccount('ol/trsry');

export async function free(api, who) {
  const { data } = await api.query.system.account(who);
  return data.free.toBigInt();
}

/**
 * Signs and sends `tx`, resolves when it is finalized with its events and dispatch error
 * (decoded), rejects if the pool refuses it.
 */
export function send(api, tx, signer) {
  return new Promise((resolve, reject) => {
    let unsub;
    tx.signAndSend(signer, (result) => {
      const { status, events, dispatchError } = result;
      if (status.isInvalid || status.isDropped || status.isUsurped) {
        unsub?.();
        reject(new Error(`transaction ${status.type}`));
      }
      if (status.isFinalized) {
        unsub?.();
        let error = null;
        if (dispatchError) {
          if (dispatchError.isModule) {
            const m = api.registry.findMetaError(dispatchError.asModule);
            error = `${m.section}.${m.name}`;
          } else {
            error = dispatchError.toString();
          }
        }
        resolve({ blockHash: status.asFinalized, events, error });
      }
    }).then((u) => { unsub = u; }, reject);
  });
}

export function findEvent(events, section, method) {
  return events.map((r) => r.event).find((e) => e.section === section && e.method === method);
}

/**
 * A Datanet with `texts` contributed by `contributor` in one batch and snapshot 1 taken by
 * `owner`; the texts are also written to a content store at `store` (the CLI's layout:
 * ab/cd/abcd… by content root). Resolves to { datanet, paths } (paths: each text's store file).
 */
export async function datanetWithSnapshot(api, { owner, contributor, contributors, name, texts, store }) {
  const ok = async (tx, who) => {
    const r = await send(api, tx, who);
    if (r.error) throw new Error(`${name}: ${r.error}`);
    return r;
  };
  const policy = { base: api.consts.datanets.minContributionDepositBase, perByte: api.consts.datanets.minContributionDepositPerByte };
  const r = await ok(api.tx.datanets.createDatanet(name, '', 'CC0', 'Open', policy), owner);
  const datanet = r.events.find(({ event }) => event.section === 'datanets' && event.method === 'DatanetCreated').event.data.datanet.toNumber();
  // One batch per run of texts by the same contributor (`contributors[i]`, else `contributor`), in
  // order: leaf i is texts[i].
  const by = texts.map((_, i) => contributors?.[i] ?? contributor);
  for (let i = 0; i < texts.length;) {
    let j = i;
    while (j < texts.length && by[j] === by[i]) j += 1;
    await ok(api.tx.utility.batchAll(texts.slice(i, j).map((t, k) =>
      api.tx.datanets.contribute(datanet, contentRoot(t), stringToU8a(t).length, 10, `store://${i + k}`, null, null))), by[i]);
    i = j;
  }
  await ok(api.tx.datanets.snapshot(datanet), owner);
  const paths = texts.map((t) => putInStore(store, t));
  return { datanet, paths };
}

/** Writes `text` into a content store in the CLI's layout (ab/cd/abcd…); returns its path. */
export function putInStore(store, text) {
  const h = contentRoot(text).slice(2);
  mkdirSync(join(store, h.slice(0, 2), h.slice(2, 4)), { recursive: true });
  writeFileSync(join(store, h.slice(0, 2), h.slice(2, 4), h), text);
  return join(store, h.slice(0, 2), h.slice(2, 4), h);
}

// ---- vouchers (primitives/src/receipt.rs) ----------------------------------------------------
export const VOUCHER_DOMAIN = 'openledger:voucher:v4';
export const RECEIPT_DOMAIN = 'openledger:receipt:v4';

/** What a voucher names for `/v1/completions` of `prompt`: blake2-256 of SCALE ("completion", prompt). */
export const completionRequestHash = (api, prompt) =>
  blake2AsHex(api.createType('(Text, Text)', ['completion', prompt]).toU8a(), 256);

/** What a voucher names for `/v1/chat/completions`: blake2-256 of SCALE ("chat", [(role, content)]). */
export const chatRequestHash = (api, messages) =>
  blake2AsHex(api.createType('(Text, Vec<(Text, Text)>)', ['chat', messages.map((m) => [m.role, m.content])]).toU8a(), 256);

/** A domain tag as the runtime encodes it (a SCALE `Vec<u8>`). */
export const domainTag = (api, tag) => api.createType('Bytes', tag).toU8a();

/**
 * The terms a voucher for `model` accepts, as the chain has them now: blake2-256 of SCALE
 * `("terms", split, perRequest as u128, per1kTokens as u128)`.
 */
export async function termsOf(api, model) {
  const m = (await api.query.models.models(model)).unwrap();
  return blake2AsHex(u8aConcat(
    api.createType('Text', 'terms').toU8a(),
    m.split.toU8a(),
    api.createType('u128', m.pricing.perRequest).toU8a(),
    api.createType('u128', m.pricing.per1kTokens).toU8a(),
  ), 256);
}

/**
 * A voucher of this chain (its genesis hash) signed by `payer` (a keyring pair); `fields` are the
 * rest (`worker`, `model`, `modelVersion`, `maxFee`, `terms` (see `termsOf`), `nonce`,
 * `expiresAt`, `requestHash`).
 * Returns the voucher, its signature, the worker's `X-OpenLedger-Voucher` header and the request id.
 */
export function signVoucher(api, payer, fields) {
  const voucher = api.createType('OpenledgerPrimitivesReceiptVoucher', {
    payer: payer.address, genesis: api.genesisHash.toHex(), ...fields,
  });
  const payload = u8aConcat(domainTag(api, VOUCHER_DOMAIN), voucher.toU8a());
  const signature = api.createType('MultiSignature', { Sr25519: payer.sign(payload) });
  return {
    voucher,
    signature,
    header: { 'x-openledger-voucher': u8aToHex(u8aConcat(voucher.toU8a(), signature.toU8a())) },
    requestId: blake2AsHex(payload, 256),
  };
}

/**
 * A receipt as a worker builds it, for a voucher `payer` signs now (valid 100 blocks) for request
 * `nonce` to `worker` on version 1 of `model`: `fee` charged, span-match shares `[[index, percent],
 * …]` of version 1 of `datanet`, signed with the worker's receipt key `signer`. Returns
 * `{ signed, requestId }`, `signed` ready for `attribution.submitReceipts`.
 */
export async function signedReceipt(api, { payer, worker, signer, model, datanet, nonce, fee, maxFee, shares }) {
  const now = (await api.rpc.chain.getHeader()).number.toNumber();
  const { voucher, signature: payerSignature, requestId } = signVoucher(api, payer, {
    worker: worker.address, model, modelVersion: 1, maxFee, terms: await termsOf(api, model), nonce, expiresAt: now + 100,
    requestHash: completionRequestHash(api, `request ${nonce}`),
  });
  // The signed-receipt type as the runtime metadata names it (`Vec<…>` of the call argument).
  const signedType = api.tx.attribution.submitReceipts.meta.args[0].type.toString().replace(/^Vec<(.*)>$/, '$1');
  const r = api.createType(signedType, {
    receipt: {
      voucher, payerSignature, promptTokens: 12, completionTokens: 40, fee, outputLen: 10, outputRoot: blake2AsHex('the answer', 256), claimsRoot: new Uint8Array(32), claims: 0,
      method: 'SpanMatch',
      attribution: shares.map(([index, percent]) => ({ contribution: { datanet, version: 1, index }, share: percent * 10_000_000 })),
    },
    workerSignature: new Uint8Array(64),
  }).receipt;
  const workerSignature = signer.sign(u8aConcat(domainTag(api, RECEIPT_DOMAIN), r.toU8a()));
  return { signed: { receipt: r, workerSignature: u8aToHex(workerSignature) }, requestId };
}

/**
 * Sends `call` through `sudo.sudo` as `who` and checks the dispatch inside it: the outer
 * extrinsic succeeds even when the call fails, so `Sudid.sudo_result` is what says. Returns the
 * send result with `sudoError` (the inner error's `section.name`, or null).
 */
export async function sudo(api, call, who) {
  const r = await send(api, api.tx.sudo.sudo(call), who);
  if (r.error) throw new Error(`sudo extrinsic failed: ${r.error}`);
  const result = findEvent(r.events, 'sudo', 'Sudid').data.sudoResult;
  let sudoError = null;
  if (result.isErr) {
    const e = result.asErr;
    sudoError = e.isModule ? (({ section, name }) => `${section}.${name}`)(api.registry.findMetaError(e.asModule)) : e.toString();
  }
  return { ...r, sudoError };
}

/**
 * Seals empty blocks on an instant-seal dev node (`engine_createBlock`, ~2 ms each) until the
 * chain is at `target` or beyond.
 */
export async function sealUntil(api, rpcPort, target) {
  for (let n = (await api.rpc.chain.getHeader()).number.toNumber(); n < target; n++) {
    await rpc(rpcPort, 'engine_createBlock', [true, true, null]);
  }
}

/**
 * Seals past the challenge window of every receipt settled so far: their payouts vest (the
 * pallet prunes them in `on_idle`) and become claimable.
 */
export async function vestSettled(api, rpcPort) {
  const now = (await api.rpc.chain.getHeader()).number.toNumber();
  await sealUntil(api, rpcPort, now + api.consts.attribution.challengeWindow.toNumber() + 2);
}

/**
 * A fresh `--dev --sealing instant` node for the calling test file: started before its tests,
 * stopped (by process id) and removed after. Returns `{ node, api }`, filled in `before`.
 */
export function devChain(name) {
  const ctx = { node: null, api: null };
  before(async () => {
    ctx.node = new Node({ name, basePath: tempDir(`ol-${name}-`), args: ['--dev', '--sealing', 'instant'] });
    await ctx.node.start();
    ctx.api = await connect(ctx.node.wsUrl);
  });
  after(async () => {
    await ctx.api?.disconnect();
    await ctx.node?.stop();
    ctx.node?.cleanup();
  });
  return ctx;
}

// ---- governance (OpenGov) ------------------------------------------------------------------

/**
 * Opens referenda, one per `[call, origin]` (origin: `{ system: 'Root' }`, or a track's origin such
 * as `{ Origins: 'ParametersAdmin' }`), in one batch from `who`: notes each call's preimage,
 * submits it (enactment one block after approval) and places its decision deposit.
 * Resolves to their indices.
 */
export async function propose(api, proposals, who) {
  const first = (await api.query.referenda.referendumCount()).toNumber();
  const txs = proposals.flatMap(([call, origin], i) => {
    const bytes = call.method.toU8a();
    return [
      api.tx.preimage.notePreimage(u8aToHex(bytes)),
      api.tx.referenda.submit(origin, { Lookup: { hash: blake2AsHex(bytes, 256), len: bytes.length } }, { After: 1 }),
      api.tx.referenda.placeDecisionDeposit(first + i),
    ];
  });
  const r = await send(api, api.tx.utility.batchAll(txs), who);
  if (r.error) throw new Error(`proposing referenda from ${first}: ${r.error}`);
  const indices = r.events.filter(({ event }) => event.section === 'referenda' && event.method === 'Submitted')
    .map(({ event }) => event.data.index.toNumber());
  const expected = proposals.map((_, i) => first + i);
  if (JSON.stringify(indices) !== JSON.stringify(expected)) throw new Error(`referenda ${indices} submitted, not ${expected}`);
  return indices;
}

/**
 * `who` casts `votes` in one batch: each `{ index, aye, conviction, balance }` locks `balance`
 * (bigint, planck) at `conviction` on referendum `index`.
 */
export async function vote(api, who, votes) {
  const txs = votes.map(({ index, aye, conviction, balance }) =>
    api.tx.convictionVoting.vote(index, { Standard: { vote: { aye, conviction }, balance } }));
  const r = await send(api, api.tx.utility.batchAll(txs), who);
  if (r.error) throw new Error(`votes of ${who.address}: ${r.error}`);
}

/** Waits until referendum `index` is decided; resolves to 'Approved', 'Rejected', 'TimedOut', …. */
export async function decided(api, index, ms = 180_000) {
  const deadline = Date.now() + ms;
  for (;;) {
    const info = await api.query.referenda.referendumInfoFor(index);
    if (info.isSome && !info.unwrap().isOngoing) return info.unwrap().type;
    if (Date.now() > deadline) throw new Error(`referendum ${index} undecided after ${ms} ms`);
    await new Promise((r) => setTimeout(r, 1000));
  }
}
