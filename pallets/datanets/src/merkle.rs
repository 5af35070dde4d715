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
use alloc::{vec, vec::Vec};
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

/// A snapshot's whole tree, built once, from which any leaf's proof is read in O(log n)
/// (what a node caches per snapshot instead of rebuilding the tree for every proof).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
	leaves: Vec<Leaf>,
	/// `layers[0]` = leaf hashes, each next layer its parents, the last the root alone.
	layers: Vec<Vec<H256>>,
}

impl Tree {
	/// The tree over `leaves` in order (the same hashing as [`root`] and [`proof`]).
	pub fn new(leaves: Vec<Leaf>) -> Self {
		let hash = |b: &[u8]| H256(sp_core::hashing::blake2_256(b));
		let mut layers = vec![leaves.iter().map(|l| hash(&l.encode())).collect::<Vec<_>>()];
		while layers.last().is_some_and(|l| l.len() > 1) {
			let below = layers.last().expect("checked above");
			let up = below
				.chunks(2)
				.map(|pair| match pair {
					[a, b] => hash(&[a.as_bytes(), b.as_bytes()].concat()),
					[one] => *one,
					_ => unreachable!("chunks of two"),
				})
				.collect();
			layers.push(up);
		}
		Self { leaves, layers }
	}

	/// The root (32 zero bytes for no leaves).
	pub fn root(&self) -> H256 {
		match self.layers.last() {
			Some(top) if top.len() == 1 => top[0],
			_ => H256::zero(),
		}
	}

	/// How many leaves.
	pub fn len(&self) -> usize {
		self.leaves.len()
	}

	/// Whether there are no leaves.
	pub fn is_empty(&self) -> bool {
		self.leaves.is_empty()
	}

	/// Proof for the leaf at `index`, or `None` if out of range.
	pub fn proof(&self, index: u32) -> Option<SnapshotProof> {
		let leaf = *self.leaves.get(index as usize)?;
		let mut proof = Vec::new();
		let mut i = index as usize;
		for layer in &self.layers[..self.layers.len() - 1] {
			// A promoted last node has no sibling on its layer.
			if let Some(sibling) = layer.get(i ^ 1) {
				proof.push(*sibling);
			}
			i /= 2;
		}
		Some(SnapshotProof {
			root: self.root(),
			proof,
			number_of_leaves: self.leaves.len() as u32,
			leaf_index: index,
			leaf,
		})
	}
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

	/// The cached tree gives byte for byte the proofs and root of the one-shot functions, for
	/// every size (odd rows promote their last node) and every index.
	#[test]
	fn the_tree_proves_like_the_one_shot_proof() {
		for n in 0..=40 {
			let ls = leaves(n);
			let tree = Tree::new(ls.clone());
			assert_eq!(tree.root(), root(ls.iter().copied()), "n={n}");
			for i in 0..=n as u32 {
				assert_eq!(tree.proof(i), proof(&ls, i), "n={n} i={i}");
			}
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
