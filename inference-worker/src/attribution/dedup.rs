//! Near-duplicate contributions (copycat defence): MinHash signatures over token shingles,
//! banded LSH for candidates, exact Jaccard similarity to confirm.
//!
//! A contribution whose shingle set is at least [`THRESHOLD`] similar to an earlier one (lower
//! document number: earlier leaf of the snapshot, so earlier contribution) is a **copy** of the
//! earliest such contribution, its **original**. The span index records copies
//! (`copies.json`) and, where a span occurs in both a copy and its original, credits only the
//! original ([`crate::attribution::span::SpanIndex::attribute`]): an edited copy earns nothing for
//! the text it took, and still earns for text of its own. The list is what curators review
//! (`span near-duplicates`, the snapshot build's report).
//!
//! Cost: `HASHES` hashes per shingle, one pass over the corpus; candidates are pairs that agree
//! on a whole band, so dissimilar pairs are almost never compared (`BANDS` × `ROWS`: pairs at
//! Jaccard 0.8 collide with probability 1 − (1 − 0.8⁴)³² > 0.9999, at 0.3 with 0.23).

use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// Tokens per shingle.
pub const SHINGLE: usize = 5;
/// Jaccard similarity of shingle sets at and above which a contribution is a copy.
pub const THRESHOLD: f64 = 0.8;
const BANDS: usize = 32;
const ROWS: usize = 4;
const HASHES: usize = BANDS * ROWS;

/// What `copies.json` holds: each copy (document number) with its original.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Copies {
	pub shingle: usize,
	pub threshold: f64,
	/// Documents of the index it was found over (checked when the index opens).
	pub docs: usize,
	/// `(copy, original, similarity)`, copies ascending.
	pub copies: Vec<(usize, usize, f64)>,
}

impl Copies {
	/// The original of document `d`, if it is a copy.
	pub fn original(&self, d: usize) -> Option<usize> {
		self.copies.binary_search_by_key(&d, |c| c.0).ok().map(|i| self.copies[i].1)
	}
}

fn mix(mut x: u64) -> u64 {
	// splitmix64's finalizer: a fixed, well-spread hash (the same on every machine).
	x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
	x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
	x ^ (x >> 31)
}

/// The distinct shingle hashes of a document (one shingle of its whole text when shorter).
fn shingles(tokens: &[u32]) -> Vec<u64> {
	let hash = |w: &[u32]| w.iter().fold(0x9e37_79b9_7f4a_7c15u64, |h, &t| mix(h ^ t as u64));
	let mut s: Vec<u64> = if tokens.len() < SHINGLE {
		if tokens.is_empty() {
			Vec::new()
		} else {
			vec![hash(tokens)]
		}
	} else {
		tokens.windows(SHINGLE).map(hash).collect()
	};
	s.sort_unstable();
	s.dedup();
	s
}

fn jaccard(a: &[u64], b: &[u64]) -> f64 {
	let (mut i, mut j, mut both) = (0, 0, 0usize);
	while i < a.len() && j < b.len() {
		match a[i].cmp(&b[j]) {
			std::cmp::Ordering::Less => i += 1,
			std::cmp::Ordering::Greater => j += 1,
			std::cmp::Ordering::Equal => {
				both += 1;
				i += 1;
				j += 1;
			},
		}
	}
	let union = a.len() + b.len() - both;
	if union == 0 {
		0.0
	} else {
		both as f64 / union as f64
	}
}

/// Finds the copies among `docs` (in document order): each with the earliest earlier document
/// it is at least [`THRESHOLD`] similar to (an original is never itself a copy).
///
/// Memory: the MinHash signatures (1 KiB per document) and the LSH buckets; shingle sets are
/// made again for the few pairs a bucket proposes, so a billion-token corpus needs no 8 bytes
/// per token beside it. Signatures are computed on every core; the result does not depend on
/// how many.
pub fn find_copies(docs: &[&[u32]]) -> Copies {
	use rayon::prelude::*;
	let sigs: Vec<Option<Vec<u64>>> = docs
		.par_iter()
		.map(|d| {
			let set = shingles(d);
			// Documents too short to shingle twice are left alone: one shared shingle is no copy.
			(set.len() >= 2).then(|| (0..HASHES).map(|k| set.iter().map(|&h| mix(h ^ mix(k as u64 + 1))).min().expect("not empty; qed")).collect())
		})
		.collect();
	let mut buckets: HashMap<(usize, u64), Vec<usize>> = HashMap::new();
	for (d, sig) in sigs.iter().enumerate() {
		let Some(sig) = sig else { continue };
		for b in 0..BANDS {
			let key = sig[b * ROWS..(b + 1) * ROWS].iter().fold(b as u64, |h, &x| mix(h ^ x));
			buckets.entry((b, key)).or_default().push(d);
		}
	}
	drop(sigs);
	// Each document is compared with the first (earliest) member of each of its buckets only:
	// at most `BANDS` comparisons per document, however many documents share a bucket (a
	// thousand identical uploads cost a thousand comparisons per band, not half a million).
	let mut candidates: Vec<Vec<usize>> = vec![Vec::new(); docs.len()];
	for members in buckets.values() {
		for &later in &members[1..] {
			candidates[later].push(members[0]);
		}
	}
	drop(buckets);
	// Each document with candidates, checked on its own (in parallel): the earliest similar one.
	let firsts: Vec<Option<(usize, f64)>> = candidates
		.into_par_iter()
		.enumerate()
		.map(|(d, mut c)| {
			if c.is_empty() {
				return None;
			}
			c.sort_unstable();
			c.dedup();
			let mine = shingles(docs[d]);
			c.into_iter().map(|o| (o, jaccard(&shingles(docs[o]), &mine))).find(|&(_, sim)| sim >= THRESHOLD)
		})
		.collect();
	let mut copies = Vec::new();
	let mut original: Vec<Option<usize>> = vec![None; docs.len()];
	for (d, first) in firsts.into_iter().enumerate() {
		// A copy of a copy belongs to the first original; the similarity reported is to that
		// original (which may be below the threshold: the copy is linked through the other).
		if let Some((o, sim)) = first {
			let root = original[o].unwrap_or(o);
			original[d] = Some(root);
			let sim = if root == o { sim } else { jaccard(&shingles(docs[d]), &shingles(docs[root])) };
			copies.push((d, root, sim));
		}
	}
	Copies { shingle: SHINGLE, threshold: THRESHOLD, docs: docs.len(), copies }
}

/// [`find_copies`] where "earlier" is by `age[i]` (ties by position), not by position: the
/// result still numbers documents by position, copies ascending.
pub fn find_copies_by_age(docs: &[&[u32]], age: &[u64]) -> Copies {
	let mut order: Vec<usize> = (0..docs.len()).collect();
	order.sort_by_key(|&i| (age[i], i));
	let by_age: Vec<&[u32]> = order.iter().map(|&i| docs[i]).collect();
	let mut found = find_copies(&by_age);
	for c in &mut found.copies {
		(c.0, c.1) = (order[c.0], order[c.1]);
	}
	found.copies.sort_by_key(|c| c.0);
	found
}

#[cfg(test)]
mod tests {
	use super::*;
	use rand::{Rng, SeedableRng};

	fn random_doc(rng: &mut rand_chacha::ChaCha8Rng, len: usize) -> Vec<u32> {
		(0..len).map(|_| rng.gen_range(0..32_000)).collect()
	}

	/// An edited copy (a few tokens changed, a sentence added) of an earlier contribution is
	/// found with its original; unrelated contributions and shared boilerplate are not.
	#[test]
	fn edited_copies_are_found_and_distinct_texts_are_not() {
		let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
		let mut docs: Vec<Vec<u32>> = (0..200).map(|_| random_doc(&mut rng, 300)).collect();
		// Document 150 copies 40 with 2 tokens changed and 10 appended; 170 copies 150 (a copy
		// of a copy: its original is 40).
		let mut copy = docs[40].clone();
		copy[100] = 7;
		copy[200] = 8;
		copy.extend(random_doc(&mut rng, 10));
		docs[150] = copy.clone();
		copy[10] = 9;
		docs[170] = copy;
		// 60 and 61 share a 20-token header and are otherwise different.
		let header = random_doc(&mut rng, 20);
		docs[60][..20].copy_from_slice(&header);
		docs[61][..20].copy_from_slice(&header);
		let refs: Vec<&[u32]> = docs.iter().map(|d| d.as_slice()).collect();
		let found = find_copies(&refs);
		let pairs: Vec<(usize, usize)> = found.copies.iter().map(|c| (c.0, c.1)).collect();
		assert_eq!(pairs, vec![(150, 40), (170, 40)]);
		assert!(found.copies.iter().all(|c| c.2 >= THRESHOLD && c.2 < 1.0));
		assert_eq!((found.original(150), found.original(40), found.original(60)), (Some(40), None, None));
		// The same corpus gives the same answer (fixed hashes).
		assert_eq!(find_copies(&refs), found);
	}

	/// By age, not position: the original is the older document wherever it sits, and a copy
	/// of a copy reports its similarity to the first original, not to the copy it matched.
	#[test]
	fn originals_are_the_oldest_and_similarity_is_to_them() {
		let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(8);
		let base = random_doc(&mut rng, 400);
		let mut b = base.clone();
		// B: 5 tokens of A changed (Jaccard ≈ 0.88); C: 5 more of B's (≈ 0.88 to B, ≈ 0.78 to A).
		for i in (0..400).step_by(80) {
			b[i] = 31_000 + i as u32;
		}
		let mut c = b.clone();
		for i in (40..400).step_by(80) {
			c[i] = 32_000 + i as u32;
		}
		let docs: Vec<&[u32]> = vec![&c, &b, &base];
		// Ages: A (position 2) is the oldest, then B, then C.
		let found = find_copies_by_age(&docs, &[30, 20, 10]);
		let pairs: Vec<(usize, usize)> = found.copies.iter().map(|c| (c.0, c.1)).collect();
		assert_eq!(pairs, vec![(0, 2), (1, 2)]);
		let direct = jaccard(&shingles(&c), &shingles(&base));
		assert!(direct < THRESHOLD, "C is linked to A only through B: {direct}");
		assert!((found.copies[0].2 - direct).abs() < 1e-12, "{} vs {direct}", found.copies[0].2);
		// By position instead, C would be the original.
		assert_eq!(find_copies(&docs).copies.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(), vec![(1, 0), (2, 0)]);
	}

	/// A thousand identical uploads are all copies of the first (each compared with one earlier
	/// document per band, not with all of them); a copy of a copy of a copy belongs to the first.
	#[test]
	fn many_identical_uploads_and_chains_of_copies() {
		let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5);
		let same = random_doc(&mut rng, 60);
		let docs: Vec<Vec<u32>> = (0..1000).map(|_| same.clone()).collect();
		let refs: Vec<&[u32]> = docs.iter().map(|d| d.as_slice()).collect();
		let found = find_copies(&refs);
		assert_eq!(found.copies.len(), 999);
		assert!(found.copies.iter().all(|&(_, o, sim)| o == 0 && sim == 1.0));
		// Each step edits 4 more tokens: C is 0.8-similar to B but not to A.
		let a = random_doc(&mut rng, 300);
		let mut b = a.clone();
		for i in [30, 90, 150, 210] {
			b[i] = 31_000 + i as u32;
		}
		let mut c = b.clone();
		for i in [60, 120, 180, 240] {
			c[i] = 31_500 + i as u32;
		}
		assert!(jaccard(&shingles(&a), &shingles(&c)) >= THRESHOLD || jaccard(&shingles(&b), &shingles(&c)) >= THRESHOLD);
		let found = find_copies(&[&a, &b, &c]);
		assert_eq!(found.copies.iter().map(|c| (c.0, c.1)).collect::<Vec<_>>(), vec![(1, 0), (2, 0)]);
	}

	/// A half-edited text is not a copy; an exact one is (similarity 1).
	#[test]
	fn the_threshold_separates_copies_from_rewrites() {
		let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
		let a = random_doc(&mut rng, 400);
		let mut half = a.clone();
		for t in half.iter_mut().step_by(2) {
			*t = rng.gen_range(0..32_000);
		}
		let found = find_copies(&[&a, &half, &a, &[1, 2, 3]]);
		assert_eq!(found.copies, vec![(2, 0, 1.0)]);
		assert!(jaccard(&shingles(&a), &shingles(&half)) < 0.1);
	}
}
