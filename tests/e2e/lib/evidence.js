// Content roots and range proofs in JavaScript, from the layout the README documents
// (primitives/src/evidence.rs): 1 KiB chunks; leaf = blake2-256(0x00 ‖ chunk), node =
// blake2-256(0x01 ‖ left ‖ right), an odd row's last node promoted; content root =
// blake2-256("openledger:content:v1" ‖ u64 LE length ‖ tree root). What a client needs to commit
// to bytes and prove a range of them without the runtime's code.
import { blake2AsU8a } from '@polkadot/util-crypto';
import { stringToU8a, u8aConcat, u8aToHex } from '@polkadot/util';

export const CHUNK_BYTES = 1024;
export const MIN_SPAN_BYTES = 24;
export const MIN_OMISSION_BYTES = 64;

const bytesOf = (x) => (typeof x === 'string' ? stringToU8a(x) : x);
const leaf = (chunk) => blake2AsU8a(u8aConcat(new Uint8Array([0]), chunk), 256);
const node = (l, r) => blake2AsU8a(u8aConcat(new Uint8Array([1]), l, r), 256);

/** The tree over leaves given as byte arrays: its layers, bottom first. */
export function tree(leaves) {
  const layers = [leaves.map(leaf)];
  while (layers[layers.length - 1].length > 1) {
    const below = layers[layers.length - 1];
    const up = [];
    for (let i = 0; i < below.length; i += 2) up.push(i + 1 < below.length ? node(below[i], below[i + 1]) : below[i]);
    layers.push(up);
  }
  return layers;
}

export const rootOf = (layers) => (layers[0].length ? layers[layers.length - 1][0] : new Uint8Array(32));

/** Siblings of leaf `i`, bottom up (a promoted node has none on its row). */
export function siblings(layers, i) {
  const out = [];
  for (const layer of layers.slice(0, -1)) {
    if ((i ^ 1) < layer.length) out.push(u8aToHex(layer[i ^ 1]));
    i >>= 1;
  }
  return out;
}

const chunksOf = (bytes) => {
  const out = [];
  for (let i = 0; i < bytes.length; i += CHUNK_BYTES) out.push(bytes.subarray(i, i + CHUNK_BYTES));
  return out;
};

/** `commit(len, treeRoot)`: the content root. */
export function commit(len, treeRoot) {
  const le = new Uint8Array(8);
  new DataView(le.buffer).setBigUint64(0, BigInt(len), true);
  return blake2AsU8a(u8aConcat(stringToU8a('openledger:content:v1'), le, treeRoot), 256);
}

/** The content root of bytes (or a string's UTF-8), as 0x hex. */
export const contentRoot = (x) => {
  const b = bytesOf(x);
  return u8aToHex(commit(b.length, rootOf(tree(chunksOf(b)))));
};

/** A `RangeProof` of bytes `[start, start + len)` (a polkadot-js-ready object). */
export function rangeProof(x, start, len) {
  const b = bytesOf(x);
  const chunks = chunksOf(b);
  const layers = tree(chunks);
  const first = Math.floor(start / CHUNK_BYTES);
  const last = Math.floor((start + len - 1) / CHUNK_BYTES);
  const out = [];
  for (let i = first; i <= last; i++) out.push({ index: i, bytes: u8aToHex(chunks[i]), siblings: siblings(layers, i) });
  return { len: b.length, treeRoot: u8aToHex(rootOf(layers)), chunks: out };
}

/** Where `needle` (bytes or string) first occurs in `hay` at or after `from`, or -1. */
export function indexOfBytes(hay, needle, from = 0) {
  const h = bytesOf(hay);
  const n = bytesOf(needle);
  outer: for (let i = from; i + n.length <= h.length; i++) {
    for (let k = 0; k < n.length; k++) if (h[i + k] !== n[k]) continue outer;
    return i;
  }
  return -1;
}
