/**
 * Vouchers for OpenLedger inference workers, in TypeScript, on @polkadot/util and
 * @polkadot/util-crypto only (no metadata, no @polkadot/api).
 *
 * A voucher pays for one request to one worker: sign it with the payer's sr25519 key and send
 * `voucherHeader(...)` as `X-OpenLedger-Voucher` with `POST /v1/completions` or
 * `/v1/chat/completions`. The bytes are those of `openledger_primitives::receipt` (SCALE):
 *
 * - voucher = payer (32) ‖ worker (32) ‖ model u32 ‖ modelVersion u32 ‖ maxFee u128 ‖
 *   terms (32) ‖ nonce u64 ‖ expiresAt u32 ‖ genesis (32) ‖ requestHash (32), little-endian;
 * - signed bytes = compact(len) ‖ "openledger:voucher:v4" ‖ voucher;
 * - request id = blake2-256(signed bytes);
 * - header = hex(voucher ‖ 0x01 ‖ sr25519 signature) (0x01: `MultiSignature::Sr25519`; 0x00 and
 *   a 64-byte signature for ed25519, 0x02 and 65 bytes for ecdsa). The signature may be of the
 *   signed bytes or of them wrapped in `<Bytes>…</Bytes>`, as wallets sign raw bytes
 *   (`signVoucherWithWallet`).
 *
 * ```ts
 * const payer = new Keyring({ type: 'sr25519' }).addFromUri(process.env.PAYER_SURI!);
 * const q = await quote('http://127.0.0.1:9944', 1);
 * const v = { payer: payer.publicKey, worker: decodeAddress(WORKER), model: 1, modelVersion: q.version,
 *   maxFee: 10n ** 16n, terms: q.terms, nonce: freshNonce(), expiresAt: q.best + 600, genesis: q.genesis,
 *   requestHash: completionRequestHash(prompt) };
 * const { header, requestId } = signVoucher(v, (m) => payer.sign(m));
 * ```
 */
import { bnToU8a, compactToU8a, hexToU8a, stringToU8a, u8aConcat, u8aToHex } from '@polkadot/util';
import { blake2AsU8a } from '@polkadot/util-crypto';

export const VOUCHER_DOMAIN = 'openledger:voucher:v4';

export interface Voucher {
  payer: Uint8Array;
  worker: Uint8Array;
  model: number;
  modelVersion: number;
  maxFee: bigint;
  terms: Uint8Array;
  nonce: bigint;
  expiresAt: number;
  genesis: Uint8Array;
  requestHash: Uint8Array;
}

/** SCALE string / Vec<u8>: compact length, then the bytes. */
export function scaleText(s: string | Uint8Array): Uint8Array {
  const b = typeof s === 'string' ? stringToU8a(s) : s;
  return u8aConcat(compactToU8a(b.length), b);
}

function le(v: number | bigint, bytes: number): Uint8Array {
  const n = BigInt(v); // throws on fractions
  if (n < 0n || n >= 1n << BigInt(8 * bytes)) throw new Error(`${v} does not fit ${bytes * 8} unsigned bits`);
  return bnToU8a(n, { bitLength: bytes * 8, isLe: true });
}

function bytes32(name: string, b: Uint8Array): Uint8Array {
  if (b.length !== 32) throw new Error(`${name} must be 32 bytes`);
  return b;
}

/** The SCALE encoding of a voucher. */
export function encodeVoucher(v: Voucher): Uint8Array {
  return u8aConcat(
    bytes32('payer', v.payer), bytes32('worker', v.worker), le(v.model, 4), le(v.modelVersion, 4), le(v.maxFee, 16),
    bytes32('terms', v.terms), le(v.nonce, 8), le(v.expiresAt, 4), bytes32('genesis', v.genesis), bytes32('requestHash', v.requestHash),
  );
}

/** The bytes the payer signs. */
export const signingPayload = (v: Voucher): Uint8Array => u8aConcat(scaleText(VOUCHER_DOMAIN), encodeVoucher(v));

/** What a voucher names for `/v1/completions` of `prompt`. */
export const completionRequestHash = (prompt: string): Uint8Array =>
  blake2AsU8a(u8aConcat(scaleText('completion'), scaleText(prompt)), 256);

/** What a voucher names for `/v1/chat/completions`: each message's role and text content. */
export function chatRequestHash(messages: { role: string; content: string }[]): Uint8Array {
  const parts = messages.map((m) => u8aConcat(scaleText(m.role), scaleText(m.content)));
  return blake2AsU8a(u8aConcat(scaleText('chat'), compactToU8a(messages.length), ...parts), 256);
}

/** The signature schemes of `MultiSignature`, by their SCALE index, with their lengths. */
const SCHEMES = { ed25519: [0, 64], sr25519: [1, 64], ecdsa: [2, 65] } as const;
export type Scheme = keyof typeof SCHEMES;

/**
 * The `X-OpenLedger-Voucher` value of `v` signed with `signature` (of `signingPayload(v)`, or of
 * it wrapped in `<Bytes>…</Bytes>` as wallets sign raw bytes; both are accepted) by a key of
 * `scheme`, and the request id.
 */
export function voucherHeader(v: Voucher, signature: Uint8Array, scheme: Scheme = 'sr25519'): { header: string; requestId: string } {
  const [index, length] = SCHEMES[scheme] ?? [];
  if (index === undefined) throw new Error(`no voucher signature of a ${scheme} key`);
  if (signature.length !== length) throw new Error(`a ${scheme} signature has ${length} bytes, not ${signature.length}`);
  return {
    header: u8aToHex(u8aConcat(encodeVoucher(v), new Uint8Array([index]), signature)),
    requestId: u8aToHex(blake2AsU8a(signingPayload(v), 256)),
  };
}

/**
 * Signs `v` with `sign` (the payer's sr25519 signer, e.g. a keyring pair's `sign`) and returns
 * the `X-OpenLedger-Voucher` value and the request id.
 */
export function signVoucher(v: Voucher, sign: (message: Uint8Array) => Uint8Array): { header: string; requestId: string } {
  return voucherHeader(v, sign(signingPayload(v)), 'sr25519');
}

/**
 * Signs `v` with a wallet: `signRaw` is a polkadot-js extension's `signer.signRaw` (from
 * `web3FromAddress(address)`), which signs the payload wrapped in `<Bytes>…</Bytes>`; `scheme` is
 * the account's key type as the wallet lists it.
 */
export async function signVoucherWithWallet(
  v: Voucher,
  address: string,
  signRaw: (raw: { address: string; data: string; type: 'bytes' }) => Promise<{ signature: string }>,
  scheme: Scheme = 'sr25519',
): Promise<{ header: string; requestId: string }> {
  const { signature } = await signRaw({ address, data: u8aToHex(signingPayload(v)), type: 'bytes' });
  return voucherHeader(v, hexToU8a(signature), scheme);
}

/** A nonce unique in practice (a reused one is refused by the chain, never charged twice). */
export function freshNonce(): bigint {
  const b = new Uint8Array(8);
  globalThis.crypto.getRandomValues(b);
  return b.reduce((n, x, i) => n | (BigInt(x) << BigInt(8 * i)), 0n);
}

async function rpc<T>(url: string, method: string, params: unknown[]): Promise<T> {
  const r = await fetch(url.replace(/^ws/, 'http'), {
    method: 'POST',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ jsonrpc: '2.0', id: 1, method, params }),
  });
  const body = await r.json();
  if (body.error) throw new Error(`${method}: ${JSON.stringify(body.error)}`);
  return body.result as T;
}

/**
 * What a voucher for `model` must name, read from a node: its latest version that is not
 * deprecated, the terms hash, the price, the genesis hash and the best block.
 */
export async function quote(nodeUrl: string, model: number) {
  const m = await rpc<{ terms: string; pricePerRequest: string; pricePer1kTokens: string; versions: { version: number; deprecated: boolean }[] }>(
    nodeUrl, 'models_getModel', [model]);
  const versions = m.versions.filter((v) => !v.deprecated).map((v) => v.version);
  if (versions.length === 0) throw new Error(`model ${model} has no version that is not deprecated`);
  const header = await rpc<{ number: string }>(nodeUrl, 'chain_getHeader', []);
  return {
    version: Math.max(...versions),
    terms: hexToU8a(m.terms),
    pricePerRequest: BigInt(m.pricePerRequest),
    pricePer1kTokens: BigInt(m.pricePer1kTokens),
    genesis: hexToU8a(await rpc<string>(nodeUrl, 'chain_getBlockHash', [0])),
    best: parseInt(header.number, 16),
  };
}
