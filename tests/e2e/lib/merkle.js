// Verifies a Datanet snapshot proof exactly as the runtime's `binary-merkle-tree` does:
// leaf hash = blake2-256(leaf bytes); node = blake2-256(left ‖ right); odd last node promoted.
import { blake2AsU8a } from '@polkadot/util-crypto';
import { hexToU8a, u8aConcat, u8aToHex, bnToU8a } from '@polkadot/util';

/** The leaf bytes: contribution id as u64 little-endian ‖ content hash. */
export function leafBytes(contribution, contentHashHex) {
  return u8aConcat(bnToU8a(BigInt(contribution), { bitLength: 64, isLe: true }), hexToU8a(contentHashHex));
}

export function verifyProof(rootHex, proofHexes, numberOfLeaves, leafIndex, leaf) {
  if (leafIndex >= numberOfLeaves) return false;
  let acc = blake2AsU8a(leaf, 256);
  let position = leafIndex;
  let width = numberOfLeaves;
  for (const siblingHex of proofHexes) {
    const sibling = hexToU8a(siblingHex);
    const pair = position % 2 === 1 || position + 1 === width ? u8aConcat(sibling, acc) : u8aConcat(acc, sibling);
    acc = blake2AsU8a(pair, 256);
    position = Math.floor(position / 2);
    width = Math.floor((width - 1) / 2) + 1;
  }
  return u8aToHex(acc) === rootHex;
}
