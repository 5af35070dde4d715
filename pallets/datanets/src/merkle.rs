//! Snapshot Merkle trees.
//!
//! A snapshot of version `v` commits to the Datanet's accepted list `leaves[0..n)` in index order
//! (acceptance order; a withdrawal before the first snapshot that contains it moves the last leaf
//! into the freed index). The tree is the polkadot-sdk `binary-merkle-tree`:
//!
//! - leaf hash = blake2-256(SCALE(`Leaf`)) = blake2-256(contribution id as u64 LE ‖ content hash);
//! - inner node = blake2-256(left ‖ right);
//! - a row with an odd number of nodes promotes its last node unchanged;
//! - the root of zero leaves is 32 zero bytes (snapshots are never empty).

use crate::types::{Leaf, SnapshotProof};
use alloc::vec::Vec;
use codec::Encode;
use sp_core::H256;
use sp_runtime::traits::BlakeTwo256;

/// Root over `leaves` in order.
pub fn root<I: IntoIterator<Item = Leaf>>(leaves: I) -> H256 {
	binary_merkle_tree::merkle_root::<BlakeTwo256, _>(leaves.into_iter().map(|l| l.encode()))
}

/// Proof for the leaf at `index` of `leaves`, or `None` if out of range.
pub fn proof(leaves: &[Leaf], index: u32) -> Option<SnapshotProof> {
	if index as usize >= leaves.len() {
		return None;
	}
	let encoded: Vec<Vec<u8>> = leaves.iter().map(|l| l.encode()).collect();
	let p = binary_merkle_tree::merkle_proof::<BlakeTwo256, _, _>(encoded, index);
	Some(SnapshotProof {
		root: p.root,
		proof: p.proof,
		number_of_leaves: p.number_of_leaves,
		leaf_index: p.leaf_index,
		leaf: leaves[index as usize],
	})
}

/// Whether `proof` shows its leaf at its index under `root`.
pub fn verify(root: &H256, proof: &SnapshotProof) -> bool {
	binary_merkle_tree::verify_proof::<BlakeTwo256, _, _>(
		root,
		proof.proof.iter().copied(),
		proof.number_of_leaves,
		proof.leaf_index,
		&proof.leaf.encode(),
	)
}

#[cfg(test)]
mod tests {
	use super::*;

	fn leaves(n: u64) -> Vec<Leaf> {
		(0..n)
			.map(|i| Leaf { contribution: i * 7, content_hash: H256::repeat_byte(i as u8) })
			.collect()
	}

	#[test]
	fn every_leaf_proves_for_every_size() {
		for n in 1..=17 {
			let ls = leaves(n);
			let r = root(ls.iter().copied());
			for i in 0..n as u32 {
				let p = proof(&ls, i).unwrap();
				assert_eq!(p.root, r);
				assert!(verify(&r, &p), "n={n} i={i}");
			}
			assert!(proof(&ls, n as u32).is_none());
		}
	}

	#[test]
	fn tampered_proofs_fail() {
		let ls = leaves(9);
		let r = root(ls.iter().copied());
		let good = proof(&ls, 4).unwrap();
		let mut p = good.clone();
		p.leaf.content_hash = H256::repeat_byte(0xee);
		assert!(!verify(&r, &p), "other content");
		let mut p = good.clone();
		p.leaf.contribution += 1;
		assert!(!verify(&r, &p), "other contribution id");
		let mut p = good.clone();
		p.proof[0] = H256::zero();
		assert!(!verify(&r, &p), "other sibling");
		let mut p = good.clone();
		p.leaf_index = 5;
		assert!(!verify(&r, &p), "other index");
		assert!(!verify(&H256::zero(), &good), "other root");
	}

	#[test]
	fn leaf_encoding_is_documented_layout() {
		let l = Leaf { contribution: 0x0102, content_hash: H256::repeat_byte(0xab) };
		let e = l.encode();
		assert_eq!(e.len(), 40);
		assert_eq!(&e[..8], &[0x02, 0x01, 0, 0, 0, 0, 0, 0]);
		assert_eq!(&e[8..], &[0xab; 32]);
		// Two leaves: root = blake2(blake2(l0) ‖ blake2(l1)).
		let l1 = Leaf { contribution: 1, content_hash: H256::zero() };
		let h = |b: &[u8]| sp_core::hashing::blake2_256(b);
		let expected = h(&[h(&l.encode()), h(&l1.encode())].concat());
		assert_eq!(root([l, l1]).0, expected);
	}
}
