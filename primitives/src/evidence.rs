//! Verifiable span attribution: the byte-range commitments and proofs that let anyone — the
//! runtime included — check a span-match receipt without trusting the worker.
//!
//! ## Content roots (contributions and outputs)
//! Bytes are cut into [`CHUNK_BYTES`]-byte chunks (the last one shorter, none for empty content)
//! and put in a binary Merkle tree:
//!
//! - leaf = blake2-256(`0x00` ‖ chunk), inner node = blake2-256(`0x01` ‖ left ‖ right);
//! - a row with an odd number of nodes promotes its last node unchanged; no leaves: 32 zero bytes;
//! - **content root** = blake2-256(`"openledger:content:v1"` ‖ length as u64 LE ‖ tree root).
//!
//! A contribution's on-chain `content_hash` is its content root, and so is a receipt's
//! `output_root` for the answer's UTF-8 bytes. The root binds the length, so the tree's shape
//! (and each chunk's expected size) is fixed, and a [`RangeProof`] of the chunks covering a byte
//! range proves those bytes without the rest. Leaves and nodes are domain-separated and a proof
//! must have exactly the siblings its position needs, so no inner node passes for a chunk.
//! Content is provable up to [`MAX_CONTENT_BYTES`].
//!
//! ## Span claims
//! A span-match receipt commits (`claims_root`, `claims`) to a list of [`SpanClaim`]s: output
//! bytes `[output_start, output_start + len)` equal the contribution's bytes from `offset`. The
//! claims root is the same tree over the claims' SCALE encodings. A claim is proven by a
//! [`SpanEvidence`]: its place under the claims root, the output bytes under the output root and
//! the contribution's bytes under its content root.
//!
//! ## Share rule
//! A credited contribution's share may not exceed the part of the output its proven spans cover:
//! `share × output_len ≤ covered bytes × 10⁹` ([`share_justified`]), with covered bytes the size
//! of the union of its claims' output ranges ([`covered_bytes`]).

use crate::receipt::ContributionRef;
use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_core::{hashing::blake2_256, ConstU32, H256};
use sp_runtime::{BoundedVec, Perbill, RuntimeDebug};

/// Domain tag of content roots.
pub const CONTENT_DOMAIN: &[u8] = b"openledger:content:v1";
/// Bytes per leaf of a content tree.
pub const CHUNK_BYTES: u32 = 1024;
/// Most siblings a proof may carry: content of up to 2²⁰ chunks.
pub const MAX_PROOF_DEPTH: u32 = 20;
/// Largest content whose byte ranges can be proven (1 GiB).
pub const MAX_CONTENT_BYTES: u64 = (CHUNK_BYTES as u64) << MAX_PROOF_DEPTH;
/// Shortest span that earns credit, in bytes (and the shortest omission a challenger may prove).
pub const MIN_SPAN_BYTES: u32 = 24;
/// Shortest omission a challenger may prove, and the longest run of proven bytes a refutation may
/// leave uncovered: well above what a worker's token matcher can miss (its minimum is 4 tokens,
/// and a maximal match is extended byte by byte).
pub const MIN_OMISSION_BYTES: u32 = 64;
/// Longest span one claim covers; a longer match is claimed in pieces.
pub const MAX_SPAN_BYTES: u32 = 1024;
/// Most claims one answer to a challenge may prove (so a contribution's share is justified by
/// at most this many of its spans).
pub const MAX_EVIDENCE_SPANS: u32 = 16;
/// Chunks a range of at most [`MAX_SPAN_BYTES`] bytes can touch.
pub const MAX_RANGE_CHUNKS: u32 = (MAX_SPAN_BYTES + CHUNK_BYTES - 2) / CHUNK_BYTES + 1;

fn leaf_hash(data: &[u8]) -> H256 {
	let mut buf = Vec::with_capacity(data.len() + 1);
	buf.push(0u8);
	buf.extend_from_slice(data);
	H256(blake2_256(&buf))
}

fn node_hash(left: &H256, right: &H256) -> H256 {
	let mut buf = [0u8; 65];
	buf[0] = 1;
	buf[1..33].copy_from_slice(left.as_bytes());
	buf[33..].copy_from_slice(right.as_bytes());
	H256(blake2_256(&buf))
}

/// A binary Merkle tree (see the module docs), kept whole so that any leaf's proof is read off.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Tree {
	/// `layers[0]` = leaf hashes, each next layer their parents, the last the root alone.
	layers: Vec<Vec<H256>>,
}

impl Tree {
	/// The tree over leaves given as byte strings.
	pub fn new<I: IntoIterator<Item = D>, D: AsRef<[u8]>>(leaves: I) -> Self {
		let mut layers = alloc::vec![leaves.into_iter().map(|l| leaf_hash(l.as_ref())).collect::<Vec<_>>()];
		while layers.last().is_some_and(|l| l.len() > 1) {
			let below = layers.last().expect("checked above; qed");
			let up = below
				.chunks(2)
				.map(|pair| if pair.len() == 2 { node_hash(&pair[0], &pair[1]) } else { pair[0] })
				.collect();
			layers.push(up);
		}
		Self { layers }
	}

	/// The root (32 zero bytes for no leaves).
	pub fn root(&self) -> H256 {
		match self.layers.last() {
			Some(top) if top.len() == 1 => top[0],
			_ => H256::zero(),
		}
	}

	/// How many leaves.
	pub fn leaves(&self) -> u32 {
		self.layers.first().map_or(0, |l| l.len() as u32)
	}

	/// The siblings of leaf `index` from the bottom up (a promoted node has none on its row).
	pub fn proof(&self, index: u32) -> Option<Vec<H256>> {
		if index >= self.leaves() {
			return None;
		}
		let mut out = Vec::new();
		let mut i = index as usize;
		for layer in &self.layers[..self.layers.len() - 1] {
			if let Some(s) = layer.get(i ^ 1) {
				out.push(*s);
			}
			i /= 2;
		}
		Some(out)
	}
}

/// Whether `siblings` prove `leaf` at `index` of a tree of `leaves` leaves with root `root`.
/// The proof must have exactly the siblings that position needs.
pub fn verify_leaf(root: &H256, leaves: u32, index: u32, leaf: &[u8], siblings: &[H256]) -> bool {
	if index >= leaves {
		return false;
	}
	let (mut pos, mut width, mut hash) = (index, leaves, leaf_hash(leaf));
	let mut sib = siblings.iter();
	while width > 1 {
		if pos % 2 == 1 {
			match sib.next() {
				Some(s) => hash = node_hash(s, &hash),
				None => return false,
			}
		} else if pos + 1 < width {
			match sib.next() {
				Some(s) => hash = node_hash(&hash, s),
				None => return false,
			}
		} // else: promoted unchanged.
		pos /= 2;
		width = width.div_ceil(2);
	}
	sib.next().is_none() && hash == *root
}

/// Chunks of content of `len` bytes.
pub fn chunk_count(len: u64) -> u64 {
	len.div_ceil(CHUNK_BYTES as u64)
}

/// The content root of a tree root over `len` bytes.
pub fn commit(len: u64, tree_root: &H256) -> H256 {
	let mut buf = Vec::with_capacity(CONTENT_DOMAIN.len() + 40);
	buf.extend_from_slice(CONTENT_DOMAIN);
	buf.extend_from_slice(&len.to_le_bytes());
	buf.extend_from_slice(tree_root.as_bytes());
	H256(blake2_256(&buf))
}

/// The tree over `bytes`' chunks.
pub fn content_tree(bytes: &[u8]) -> Tree {
	Tree::new(bytes.chunks(CHUNK_BYTES as usize))
}

/// The content root of `bytes` (a contribution's `content_hash`, a receipt's `output_root`).
pub fn content_root(bytes: &[u8]) -> H256 {
	commit(bytes.len() as u64, &content_tree(bytes).root())
}

/// One chunk of content and its siblings.
#[derive(Clone, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct ChunkProof {
	pub index: u32,
	pub bytes: BoundedVec<u8, ConstU32<CHUNK_BYTES>>,
	pub siblings: BoundedVec<H256, ConstU32<MAX_PROOF_DEPTH>>,
}

/// The chunks covering a byte range of some content, each with its proof, and the length and
/// tree root the content root commits to.
#[derive(Clone, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct RangeProof {
	pub len: u64,
	pub tree_root: H256,
	pub chunks: BoundedVec<ChunkProof, ConstU32<MAX_RANGE_CHUNKS>>,
}

/// What a span dispute says is wrong with a span-match receipt (also the dispute's key: one
/// open dispute per receipt and kind).
#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub enum DisputeKind {
	/// This credited contribution's share is more than its proven spans justify.
	Share(ContributionRef),
	/// Output bytes `[output_start, output_start + len)`, proven to occur in `contribution` (of
	/// the lineage, not credited), were left unattributed.
	Omission { contribution: ContributionRef, output_start: u32, len: u32 },
}

/// Why evidence does not hold.
#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
pub enum EvidenceError {
	/// A span is shorter than [`MIN_SPAN_BYTES`].
	SpanTooShort,
	/// A span is longer than [`MAX_SPAN_BYTES`].
	SpanTooLong,
	/// The output proof is not under the receipt's output root (or not of its length).
	BadOutputProof,
	/// The contribution proof is not under the contribution's content root.
	BadContentProof,
	/// The range lies outside the content, or the proof's chunks are not the range's.
	OutOfRange,
	/// The output bytes differ from the contribution's.
	BytesDiffer,
	/// A claim is not under the receipt's claims root.
	NotCommitted,
}

/// Proves `bytes[start..start + len]`, or `None` if the range is empty, too long or outside.
pub fn range_proof(tree: &Tree, bytes: &[u8], start: u64, len: u32) -> Option<RangeProof> {
	if len == 0 || len > MAX_SPAN_BYTES || start.checked_add(len as u64)? > bytes.len() as u64 {
		return None;
	}
	let (first, last) = (start / CHUNK_BYTES as u64, (start + len as u64 - 1) / CHUNK_BYTES as u64);
	let chunks = (first..=last)
		.map(|i| {
			let from = (i * CHUNK_BYTES as u64) as usize;
			let to = (from + CHUNK_BYTES as usize).min(bytes.len());
			Some(ChunkProof {
				index: i as u32,
				bytes: BoundedVec::truncate_from(bytes[from..to].to_vec()),
				siblings: BoundedVec::try_from(tree.proof(i as u32)?).ok()?,
			})
		})
		.collect::<Option<Vec<_>>>()?;
	Some(RangeProof { len: bytes.len() as u64, tree_root: tree.root(), chunks: BoundedVec::try_from(chunks).ok()? })
}

/// The bytes `[start, start + len)` of the content whose root is `root`, if `proof` proves them.
/// `bad` is the error for a proof that is not under `root`.
pub fn verify_range(root: &H256, proof: &RangeProof, start: u64, len: u32, bad: EvidenceError) -> Result<Vec<u8>, EvidenceError> {
	if commit(proof.len, &proof.tree_root) != *root || proof.len > MAX_CONTENT_BYTES {
		return Err(bad);
	}
	let end = start.checked_add(len as u64).ok_or(EvidenceError::OutOfRange)?;
	if len == 0 || end > proof.len {
		return Err(EvidenceError::OutOfRange);
	}
	let (first, last) = (start / CHUNK_BYTES as u64, (end - 1) / CHUNK_BYTES as u64);
	if proof.chunks.len() as u64 != last - first + 1 {
		return Err(EvidenceError::OutOfRange);
	}
	let n = chunk_count(proof.len) as u32;
	let mut joined = Vec::with_capacity(proof.chunks.len() * CHUNK_BYTES as usize);
	for (k, c) in proof.chunks.iter().enumerate() {
		let i = first + k as u64;
		let expected = (proof.len - i * CHUNK_BYTES as u64).min(CHUNK_BYTES as u64);
		if c.index as u64 != i || c.bytes.len() as u64 != expected {
			return Err(EvidenceError::OutOfRange);
		}
		if !verify_leaf(&proof.tree_root, n, c.index, &c.bytes, &c.siblings) {
			return Err(bad);
		}
		joined.extend_from_slice(&c.bytes);
	}
	let from = (start - first * CHUNK_BYTES as u64) as usize;
	Ok(joined[from..from + len as usize].to_vec())
}

/// A receipt's claim that output bytes `[output_start, output_start + len)` are the bytes of
/// `contribution` from `offset`.
#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct SpanClaim {
	pub output_start: u32,
	pub len: u32,
	pub contribution: ContributionRef,
	pub offset: u64,
}

impl SpanClaim {
	/// The output range it covers.
	pub fn output_range(&self) -> (u64, u64) {
		(self.output_start as u64, self.output_start as u64 + self.len as u64)
	}
}

/// The root a receipt commits to over its claims, in order.
pub fn claims_tree(claims: &[SpanClaim]) -> Tree {
	Tree::new(claims.iter().map(|c| c.encode()))
}

/// A span proven byte for byte: the output bytes under the output root equal the contribution's
/// bytes under its content root.
#[derive(Clone, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct SpanProof {
	pub claim: SpanClaim,
	pub output: RangeProof,
	pub content: RangeProof,
}

/// A committed claim with its proof: its index among the receipt's claims, the siblings under
/// the claims root, and the span proof.
#[derive(Clone, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct SpanEvidence {
	pub index: u32,
	pub siblings: BoundedVec<H256, ConstU32<MAX_PROOF_DEPTH>>,
	pub span: SpanProof,
}

/// Checks a span: its length within bounds, its output bytes under `output_root` (of
/// `output_len` bytes) equal to its contribution's bytes under `content_root`.
pub fn verify_span(p: &SpanProof, output_root: &H256, output_len: u32, content_root: &H256) -> Result<(), EvidenceError> {
	let len = p.claim.len;
	if len < MIN_SPAN_BYTES {
		return Err(EvidenceError::SpanTooShort);
	}
	if len > MAX_SPAN_BYTES {
		return Err(EvidenceError::SpanTooLong);
	}
	if p.output.len != output_len as u64 {
		return Err(EvidenceError::BadOutputProof);
	}
	let out = verify_range(output_root, &p.output, p.claim.output_start as u64, len, EvidenceError::BadOutputProof)?;
	let data = verify_range(content_root, &p.content, p.claim.offset, len, EvidenceError::BadContentProof)?;
	if out != data {
		return Err(EvidenceError::BytesDiffer);
	}
	Ok(())
}

/// Checks that `e`'s claim is claim `e.index` of the `claims` committed to by `claims_root`.
pub fn verify_committed(e: &SpanEvidence, claims_root: &H256, claims: u32) -> Result<(), EvidenceError> {
	if verify_leaf(claims_root, claims, e.index, &e.span.claim.encode(), &e.siblings) {
		Ok(())
	} else {
		Err(EvidenceError::NotCommitted)
	}
}

/// Bytes in the union of half-open ranges.
pub fn covered_bytes(mut ranges: Vec<(u64, u64)>) -> u64 {
	ranges.sort_unstable();
	let (mut total, mut reach) = (0u64, 0u64);
	for (a, b) in ranges {
		let a = a.max(reach);
		if b > a {
			total += b - a;
			reach = b;
		}
	}
	total
}

/// Up to `max` of `ranges`, chosen greedily by the bytes each adds to the union (ties: the
/// earlier one), in the order chosen: how a worker picks the claims that justify a share (the
/// same choice it caps the share by, so its answer always justifies it).
pub fn pick_covering(ranges: &[(u64, u64)], max: usize) -> Vec<usize> {
	let mut picked: Vec<usize> = Vec::new();
	while picked.len() < max {
		let union = |extra: Option<usize>| covered_bytes(picked.iter().copied().chain(extra).map(|i| ranges[i]).collect());
		let now = union(None);
		let mut best: Option<(usize, u64)> = None;
		for i in (0..ranges.len()).filter(|i| !picked.contains(i)) {
			let gain = union(Some(i)) - now;
			if gain > 0 && best.is_none_or(|(_, g)| gain > g) {
				best = Some((i, gain));
			}
		}
		match best {
			Some((i, _)) => picked.push(i),
			None => break,
		}
	}
	picked
}

/// The longest run of bytes of `[start, end)` that no range covers.
pub fn longest_uncovered(mut ranges: Vec<(u64, u64)>, start: u64, end: u64) -> u64 {
	ranges.sort_unstable();
	let (mut longest, mut reach) = (0u64, start);
	for (a, b) in ranges {
		if a >= end {
			break;
		}
		if a > reach {
			longest = longest.max(a - reach);
		}
		reach = reach.max(b);
	}
	if end > reach {
		longest = longest.max(end - reach);
	}
	longest
}

/// Whether spans covering `covered` of `output_len` output bytes justify `share`:
/// `share × output_len ≤ covered × 10⁹`.
pub fn share_justified(share: Perbill, covered: u64, output_len: u32) -> bool {
	(share.deconstruct() as u128) * (output_len as u128) <= (covered as u128) * 1_000_000_000
}

/// The largest share that `covered` of `output_len` bytes justify (what a worker caps at).
pub fn share_cap(covered: u64, output_len: u32) -> Perbill {
	if output_len == 0 {
		return Perbill::zero();
	}
	let parts = (covered as u128 * 1_000_000_000 / output_len as u128).min(1_000_000_000);
	Perbill::from_parts(parts as u32)
}

#[cfg(all(test, feature = "std"))]
mod tests {
	use super::*;

	/// Deterministic pseudo-random bytes (xorshift), so the property tests are reproducible.
	struct Rng(u64);
	impl Rng {
		fn next(&mut self) -> u64 {
			self.0 ^= self.0 << 13;
			self.0 ^= self.0 >> 7;
			self.0 ^= self.0 << 17;
			self.0
		}
		fn below(&mut self, n: u64) -> u64 {
			self.next() % n.max(1)
		}
		fn bytes(&mut self, n: usize) -> Vec<u8> {
			(0..n).map(|_| self.next() as u8).collect()
		}
	}

	#[test]
	fn every_leaf_of_every_size_proves_and_no_other_position_does() {
		for n in 0..=37u32 {
			let leaves: Vec<Vec<u8>> = (0..n).map(|i| alloc::vec![i as u8; 3]).collect();
			let t = Tree::new(&leaves);
			assert_eq!(t.leaves(), n);
			if n == 0 {
				assert_eq!(t.root(), H256::zero());
			}
			for i in 0..n {
				let p = t.proof(i).unwrap();
				assert!(verify_leaf(&t.root(), n, i, &leaves[i as usize], &p), "n={n} i={i}");
				// Another index, leaf count, a sibling too many or too few: refused.
				if n > 1 {
					assert!(!verify_leaf(&t.root(), n, (i + 1) % n, &leaves[i as usize], &p), "n={n} i={i}: another index");
				}
				assert!(!verify_leaf(&t.root(), n, n, &leaves[i as usize], &p), "an index beyond the leaves");
				let mut longer = p.clone();
				longer.push(H256::zero());
				assert!(!verify_leaf(&t.root(), n, i, &leaves[i as usize], &longer));
				if !p.is_empty() {
					assert!(!verify_leaf(&t.root(), n, i, &leaves[i as usize], &p[..p.len() - 1]));
				}
			}
			assert!(t.proof(n).is_none());
		}
	}

	/// An inner node's preimage (64 bytes, `left ‖ right`) is not accepted as a leaf, whatever
	/// position or proof is tried: leaves and nodes hash under different tags.
	#[test]
	fn inner_nodes_do_not_pass_for_leaves() {
		let leaves: Vec<Vec<u8>> = (0..4u8).map(|i| alloc::vec![i; 64]).collect();
		let t = Tree::new(&leaves);
		let (l2, l3) = (leaf_hash(&leaves[2]), leaf_hash(&leaves[3]));
		let fake = [l2.as_bytes(), l3.as_bytes()].concat();
		let l01 = node_hash(&leaf_hash(&leaves[0]), &leaf_hash(&leaves[1]));
		for i in 0..4 {
			assert!(!verify_leaf(&t.root(), 4, i, &fake, &[l01]));
			assert!(!verify_leaf(&t.root(), 2, i, &fake, &[l01]));
		}
	}

	#[test]
	fn random_ranges_of_random_contents_prove_and_every_tampered_byte_is_refused() {
		let mut rng = Rng(0x5eed);
		for round in 0..60 {
			let len = match round % 4 {
				0 => rng.below(40) as usize,
				1 => CHUNK_BYTES as usize * (1 + rng.below(3) as usize),
				_ => rng.below(5000) as usize,
			};
			let bytes = rng.bytes(len);
			let tree = content_tree(&bytes);
			let root = content_root(&bytes);
			assert_eq!(root, commit(len as u64, &tree.root()));
			if len == 0 {
				assert!(range_proof(&tree, &bytes, 0, 1).is_none());
				continue;
			}
			for _ in 0..6 {
				let start = rng.below(len as u64);
				let max = ((len as u64 - start) as u32).min(MAX_SPAN_BYTES);
				let n = 1 + rng.below(max as u64) as u32;
				let p = range_proof(&tree, &bytes, start, n).unwrap();
				let got = verify_range(&root, &p, start, n, EvidenceError::BadContentProof).unwrap();
				assert_eq!(got, bytes[start as usize..(start + n as u64) as usize]);
				// Every byte of every chunk, flipped, is refused.
				for c in 0..p.chunks.len() {
					for b in 0..p.chunks[c].bytes.len() {
						let mut t = p.clone();
						t.chunks[c].bytes[b] ^= 0x01;
						assert_eq!(verify_range(&root, &t, start, n, EvidenceError::BadContentProof), Err(EvidenceError::BadContentProof));
					}
					for s in 0..p.chunks[c].siblings.len() {
						let mut t = p.clone();
						t.chunks[c].siblings[s].0[rng.below(32) as usize] ^= 0x80;
						assert!(verify_range(&root, &t, start, n, EvidenceError::BadContentProof).is_err());
					}
				}
				// Another length, tree root or content root; a range beyond the proof's chunks.
				let mut t = p.clone();
				t.len += 1;
				assert_eq!(verify_range(&root, &t, start, n, EvidenceError::BadContentProof), Err(EvidenceError::BadContentProof));
				let mut t = p.clone();
				t.tree_root.0[0] ^= 1;
				assert!(verify_range(&root, &t, start, n, EvidenceError::BadContentProof).is_err());
				assert!(verify_range(&H256::repeat_byte(3), &p, start, n, EvidenceError::BadContentProof).is_err());
				if start + n as u64 + CHUNK_BYTES as u64 <= len as u64 {
					assert_eq!(
						verify_range(&root, &p, start + CHUNK_BYTES as u64, n, EvidenceError::BadContentProof),
						Err(EvidenceError::OutOfRange)
					);
				}
				assert_eq!(verify_range(&root, &p, len as u64, 1, EvidenceError::BadContentProof), Err(EvidenceError::OutOfRange));
				assert_eq!(verify_range(&root, &p, u64::MAX, 2, EvidenceError::BadContentProof), Err(EvidenceError::OutOfRange));
			}
		}
	}

	fn cref(index: u32) -> ContributionRef {
		ContributionRef { datanet: 0, version: 1, index }
	}

	#[test]
	fn a_committed_span_verifies_and_forgeries_are_refused_with_their_error() {
		let output = b"The court held that the contract was void because the seller lied. Then more.".to_vec();
		let doc = b"Preamble. In 1901 the court held that the contract was void because the seller lied, said X.".to_vec();
		let (out_tree, doc_tree) = (content_tree(&output), content_tree(&doc));
		let (out_root, doc_root) = (content_root(&output), content_root(&doc));
		let phrase = b"court held that the contract was void because the seller lied";
		let (os, ds) = (4u32, 22u64);
		assert_eq!(&output[os as usize..os as usize + phrase.len()], phrase);
		assert_eq!(&doc[ds as usize..ds as usize + phrase.len()], phrase);
		let claim = SpanClaim { output_start: os, len: phrase.len() as u32, contribution: cref(7), offset: ds };
		let other = SpanClaim { output_start: 0, len: 30, contribution: cref(8), offset: 0 };
		let claims = [other, claim];
		let ct = claims_tree(&claims);
		let span = |c: SpanClaim| SpanProof {
			claim: c,
			output: range_proof(&out_tree, &output, c.output_start as u64, c.len).unwrap(),
			content: range_proof(&doc_tree, &doc, c.offset, c.len).unwrap(),
		};
		let e = SpanEvidence { index: 1, siblings: BoundedVec::truncate_from(ct.proof(1).unwrap()), span: span(claim) };
		let ol = output.len() as u32;
		assert_eq!(verify_span(&e.span, &out_root, ol, &doc_root), Ok(()));
		assert_eq!(verify_committed(&e, &ct.root(), 2), Ok(()));
		// Not the committed claim, or at another index, or under another count.
		let mut t = e.clone();
		t.index = 0;
		assert_eq!(verify_committed(&t, &ct.root(), 2), Err(EvidenceError::NotCommitted));
		assert_eq!(verify_committed(&e, &ct.root(), 3), Err(EvidenceError::NotCommitted));
		let mut t = e.clone();
		t.span.claim.offset += 1;
		assert_eq!(verify_committed(&t, &ct.root(), 2), Err(EvidenceError::NotCommitted));
		// Shifted by one byte in the contribution: the bytes differ.
		let shifted = SpanClaim { offset: ds + 1, ..claim };
		assert_eq!(verify_span(&span(shifted), &out_root, ol, &doc_root), Err(EvidenceError::BytesDiffer));
		// Under the minimum; over the maximum (the proof cannot even be built).
		let short = SpanClaim { len: MIN_SPAN_BYTES - 1, ..claim };
		assert_eq!(verify_span(&span(short), &out_root, ol, &doc_root), Err(EvidenceError::SpanTooShort));
		let mut long = e.span.clone();
		long.claim.len = MAX_SPAN_BYTES + 1;
		assert_eq!(verify_span(&long, &out_root, ol, &doc_root), Err(EvidenceError::SpanTooLong));
		// Proven against another contribution's root, or another output length.
		assert_eq!(verify_span(&e.span, &out_root, ol, &content_root(b"other")), Err(EvidenceError::BadContentProof));
		assert_eq!(verify_span(&e.span, &out_root, ol + 1, &doc_root), Err(EvidenceError::BadOutputProof));
		// A proof of the right bytes from other content with the same bytes is not this content's.
		let mut twin = doc.clone();
		twin[0] ^= 1;
		let tt = content_tree(&twin);
		let mut t = e.span.clone();
		t.content = range_proof(&tt, &twin, ds, claim.len).unwrap();
		assert_eq!(verify_span(&t, &out_root, ol, &doc_root), Err(EvidenceError::BadContentProof));
	}

	#[test]
	fn coverage_and_the_share_rule() {
		assert_eq!(covered_bytes(alloc::vec![]), 0);
		assert_eq!(covered_bytes(alloc::vec![(0, 10), (5, 15), (20, 25), (21, 22)]), 20);
		assert_eq!(covered_bytes(alloc::vec![(30, 40), (0, 10)]), 20);
		assert_eq!(pick_covering(&[(0, 10), (0, 30), (25, 40), (5, 8)], 2), alloc::vec![1, 2]);
		assert_eq!(pick_covering(&[(0, 10), (0, 10), (20, 25)], 5), alloc::vec![0, 2], "no range that adds nothing");
		assert!(pick_covering(&[(0, 10)], 0).is_empty());
		assert_eq!(longest_uncovered(alloc::vec![], 5, 50), 45);
		assert_eq!(longest_uncovered(alloc::vec![(0, 10), (20, 30)], 5, 50), 20);
		assert_eq!(longest_uncovered(alloc::vec![(20, 30), (0, 10)], 5, 28), 10);
		assert_eq!(longest_uncovered(alloc::vec![(0, 100)], 5, 50), 0);
		assert_eq!(longest_uncovered(alloc::vec![(6, 49)], 5, 50), 1);
		assert_eq!(longest_uncovered(alloc::vec![(60, 70)], 5, 50), 45);
		// 25 of 100 bytes justify 25 % and not a part more.
		assert!(share_justified(Perbill::from_percent(25), 25, 100));
		assert!(!share_justified(Perbill::from_parts(250_000_001), 25, 100));
		assert_eq!(share_cap(25, 100), Perbill::from_percent(25));
		assert_eq!(share_cap(1, 3), Perbill::from_parts(333_333_333));
		assert!(share_justified(share_cap(1, 3), 1, 3));
		assert!(!share_justified(Perbill::from_parts(333_333_334), 1, 3));
		assert_eq!(share_cap(5, 0), Perbill::zero());
		assert_eq!(share_cap(500, 100), Perbill::one());
		assert!(share_justified(Perbill::one(), u32::MAX as u64, u32::MAX));
	}
}
