//! Training data: the contributions of Datanet snapshots (each leaf verified against the
//! snapshot's on-chain Merkle root, each file against its leaf's content hash), or a plain
//! corpus for pretraining; tokenized, split into train and held-out evaluation documents, cut
//! into windows, and mixed by the snapshots' weights.

use crate::attribution::snapshot::{read_verified, record_text, verified_leaves};
use crate::chain::ChainClient;
use crate::tokenizer::TextTokenizer;
use anyhow::{ensure, Context, Result};
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use std::path::Path;

/// One snapshot of the training mix: `datanet:version[:weight]` on the command line.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SnapshotRef {
	pub datanet: u32,
	pub version: u32,
	/// Relative weight in the mix (normalised over the snapshots).
	pub weight: f64,
}

impl std::str::FromStr for SnapshotRef {
	type Err = String;
	fn from_str(s: &str) -> Result<Self, String> {
		let parts: Vec<&str> = s.split(':').collect();
		let num = |p: &str, what: &str| p.parse::<u32>().map_err(|_| format!("{what} {p:?} in {s:?} is not a number"));
		match parts.as_slice() {
			[d, v] => Ok(Self { datanet: num(d, "datanet")?, version: num(v, "version")?, weight: 1.0 }),
			[d, v, w] => {
				let weight: f64 = w.parse().map_err(|_| format!("weight {w:?} in {s:?} is not a number"))?;
				if !(weight > 0.0 && weight.is_finite()) {
					return Err(format!("weight in {s:?} must be positive"));
				}
				Ok(Self { datanet: num(d, "datanet")?, version: num(v, "version")?, weight })
			}
			_ => Err(format!("{s:?} is not datanet:version[:weight]")),
		}
	}
}

/// One training document and where it came from.
#[derive(Clone, Debug)]
pub struct Doc {
	/// Index into the list of sources.
	pub source: usize,
	/// Leaf index in its snapshot (or line number of a corpus).
	pub leaf: u32,
	pub contribution: Option<u64>,
	pub content_hash: [u8; 32],
	pub text: String,
}

/// The documents of each snapshot, fetched from `store` (`ab/cd/abcd…`) and verified.
pub async fn snapshot_docs(chain: &ChainClient, snapshots: &[SnapshotRef], store: &Path) -> Result<Vec<Doc>> {
	let mut docs = Vec::new();
	for (s, snap) in snapshots.iter().enumerate() {
		let leaves = verified_leaves(chain, snap.datanet, snap.version).await?;
		ensure!(!leaves.is_empty(), "snapshot {} of Datanet {} has no contributions", snap.version, snap.datanet);
		for (i, (id, hash)) in leaves.iter().enumerate() {
			let bytes = read_verified(store, *id, hash, None).with_context(|| format!("leaf {i}"))?;
			docs.push(Doc { source: s, leaf: i as u32, contribution: Some(*id), content_hash: *hash, text: record_text(&bytes) });
		}
	}
	Ok(docs)
}

/// A corpus as documents: its non-empty paragraphs (blank-line separated).
pub fn corpus_docs(text: &str) -> Vec<Doc> {
	text.split("\n\n")
		.map(str::trim)
		.filter(|p| !p.is_empty())
		.enumerate()
		.map(|(i, p)| Doc {
			source: 0,
			leaf: i as u32,
			contribution: None,
			content_hash: sp_core::hashing::blake2_256(p.as_bytes()),
			text: p.to_string(),
		})
		.collect()
}

/// Held-out documents: a seeded choice of `fraction` of them (at least one when there are two or
/// more), chosen whole so that no evaluation text is also trained on.
pub fn split(docs: &[Doc], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
	let n = docs.len();
	let mut order: Vec<(usize, [u8; 32])> = docs
		.iter()
		.enumerate()
		.map(|(i, d)| (i, sp_core::hashing::blake2_256(&[&seed.to_le_bytes()[..], &d.content_hash, &(i as u64).to_le_bytes()].concat())))
		.collect();
	order.sort_by_key(|(_, k)| *k);
	let k = if n < 2 || fraction <= 0.0 { 0 } else { ((n as f64 * fraction).ceil() as usize).clamp(1, n - 1) };
	let mut eval: Vec<usize> = order[..k].iter().map(|(i, _)| *i).collect();
	let mut train: Vec<usize> = order[k..].iter().map(|(i, _)| *i).collect();
	eval.sort_unstable();
	train.sort_unstable();
	(train, eval)
}

/// A window of tokens: the model reads `tokens[..len-1]` and predicts `tokens[1..]`.
#[derive(Clone, Debug)]
pub struct Window {
	pub source: usize,
	pub doc: usize,
	pub tokens: Vec<u32>,
}

/// `bos + text + eos` of each document, cut into windows of at most `max_len + 1` tokens that
/// overlap by one (every token is predicted exactly once).
pub fn windows(tk: &TextTokenizer, docs: &[Doc], which: &[usize], bos: Option<u32>, eos: Option<u32>, max_len: usize) -> Result<Vec<Window>> {
	ensure!(max_len >= 2, "max sequence length must be at least 2");
	let mut out = Vec::new();
	for &d in which {
		let mut ids: Vec<u32> = bos.into_iter().collect();
		ids.extend(tk.encode(&docs[d].text)?);
		ids.extend(eos);
		let mut start = 0;
		while start + 1 < ids.len() {
			let end = (start + max_len + 1).min(ids.len());
			out.push(Window { source: docs[d].source, doc: d, tokens: ids[start..end].to_vec() });
			start = end - 1;
		}
	}
	Ok(out)
}

/// The windows of one epoch in training order: each source contributes in proportion to its
/// weight (`round(weight · total)` windows, cycling through its own windows in a seeded
/// order), then everything is shuffled. With one source an epoch is one pass over its data.
pub fn epoch_order(windows: &[Window], weights: &[f64], epoch: u64, seed: u64) -> Vec<usize> {
	let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
	let total: f64 = weights.iter().sum();
	let n = windows.len();
	let mut order = Vec::with_capacity(n);
	for (s, w) in weights.iter().enumerate() {
		let mut own: Vec<usize> = (0..n).filter(|&i| windows[i].source == s).collect();
		if own.is_empty() {
			continue;
		}
		own.shuffle(&mut rng);
		let want = ((w / total) * n as f64).round().max(1.0) as usize;
		order.extend(own.iter().cycle().take(want).copied());
	}
	order.shuffle(&mut rng);
	order
}

#[cfg(test)]
mod tests {
	use super::*;

	fn doc(source: usize, text: &str) -> Doc {
		Doc { source, leaf: 0, contribution: None, content_hash: sp_core::hashing::blake2_256(text.as_bytes()), text: text.into() }
	}

	#[test]
	fn snapshot_refs_parse_with_clear_errors() {
		assert_eq!("3:2".parse::<SnapshotRef>().unwrap(), SnapshotRef { datanet: 3, version: 2, weight: 1.0 });
		assert_eq!("3:2:0.25".parse::<SnapshotRef>().unwrap().weight, 0.25);
		assert!("3".parse::<SnapshotRef>().unwrap_err().contains("datanet:version"));
		assert!("3:x".parse::<SnapshotRef>().unwrap_err().contains("version"));
		assert!("3:1:-1".parse::<SnapshotRef>().unwrap_err().contains("positive"));
	}

	#[test]
	fn split_is_seeded_whole_documents_and_never_empty() {
		let docs: Vec<Doc> = (0..10).map(|i| doc(0, &format!("doc {i}"))).collect();
		let (train, eval) = split(&docs, 0.2, 1);
		assert_eq!((train.len(), eval.len()), (8, 2));
		assert_eq!(split(&docs, 0.2, 1), (train.clone(), eval.clone()));
		assert_ne!(split(&docs, 0.2, 2).1, eval, "another seed holds out other documents");
		assert!(eval.iter().all(|e| !train.contains(e)));
		assert_eq!(split(&docs[..2], 0.01, 1).1.len(), 1);
		assert_eq!(split(&docs[..1], 0.5, 1), (vec![0], vec![]));
	}

	#[test]
	fn epochs_mix_sources_by_weight() {
		let windows: Vec<Window> =
			(0..100).map(|i| Window { source: usize::from(i >= 80), doc: i, tokens: vec![1, 2] }).collect();
		let order = epoch_order(&windows, &[1.0, 1.0], 0, 7);
		let from_b = order.iter().filter(|&&i| windows[i].source == 1).count();
		assert_eq!((order.len(), from_b), (100, 50), "equal weights: half of the epoch from the small source");
		let one = epoch_order(&windows[..80], &[1.0], 0, 7);
		let mut sorted = one.clone();
		sorted.sort_unstable();
		assert_eq!(sorted, (0..80).collect::<Vec<_>>(), "one source: one pass");
		assert_ne!(one, epoch_order(&windows[..80], &[1.0], 1, 7), "reshuffled per epoch");
	}
}
