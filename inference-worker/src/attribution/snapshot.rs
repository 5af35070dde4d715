//! A span index of one Datanet snapshot, built from what the chain commits to:
//!
//! 1. the snapshot's Merkle root and leaf count (`datanets_getSnapshot`);
//! 2. its leaves — (contribution id, content hash) at leaf indices `0..leaf_count`, from the
//!    Datanet's accepted contributions (`datanets_listContributions`); the root recomputed over
//!    them with the runtime's own tree (`binary-merkle-tree`, blake2-256) must equal the
//!    on-chain root, which proves every leaf and its index at once;
//! 3. each contribution's bytes from the content store (`<store>/ab/cd/abcd…`, the CLI's
//!    layout), checked against the leaf's content hash (its content root:
//!    `openledger_primitives::evidence::content_root`), and kept in the index as they are so
//!    that span claims can point into them;
//! 4. the text of each record (a JSON record's `text`, `prompt` + `completion`/`response`, or
//!    `messages[].content`; otherwise the bytes as UTF-8), tokenized with the served model's
//!    tokenizer, indexed with `(datanet, version, leaf index, content hash)` per document.

use super::span::{build_index_aged, shard_tokens_for, BuildOptions, DocRef, Meta};
use crate::chain::ChainClient;
use crate::tokenizer::TextTokenizer;
use anyhow::{bail, ensure, Context, Result};
use codec::Encode;
use jsonrpsee::rpc_params;
use openledger_primitives::Hash;
use std::path::Path;

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct SnapshotJson {
	root: String,
	leaf_count: u32,
}

#[derive(serde::Deserialize)]
struct Page {
	items: Vec<Item>,
	next: Option<u64>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct Item {
	id: u64,
	contributor: String,
	content_hash: String,
	size_bytes: u64,
	status: String,
	leaf: Option<u32>,
}

fn h256(s: &str) -> Result<[u8; 32]> {
	let b = hex::decode(s.trim_start_matches("0x")).with_context(|| format!("bad hash {s}"))?;
	b.try_into().map_err(|_| anyhow::anyhow!("bad hash length: {s}"))
}

/// The text a record contributes to the index.
pub fn record_text(bytes: &[u8]) -> String {
	if let Ok(serde_json::Value::Object(o)) = serde_json::from_slice::<serde_json::Value>(bytes) {
		let field = |k: &str| o.get(k).and_then(|v| v.as_str());
		if let Some(t) = field("text") {
			return t.to_string();
		}
		if let (Some(p), Some(c)) = (field("prompt"), field("completion").or_else(|| field("response"))) {
			return format!("{p}\n{c}");
		}
		if let Some(m) = o.get("messages").and_then(|m| m.as_array()) {
			return m.iter().filter_map(|x| x.get("content").and_then(|c| c.as_str())).collect::<Vec<_>>().join("\n");
		}
	}
	String::from_utf8_lossy(bytes).into_owned()
}

/// Every contribution of `datanet` the node lists at block `at` (the best when `None`), page by
/// page, handed to `each` (whose error stops the listing).
async fn each_contribution(chain: &ChainClient, datanet: u32, at: Option<Hash>, mut each: impl FnMut(Item) -> Result<()>) -> Result<()> {
	let mut after: Option<u64> = None;
	loop {
		let page: Page = chain
			.rpc("datanets_listContributions", rpc_params![datanet, after, 1000u32, at])
			.await
			.with_context(|| format!("contributions of Datanet {datanet}"))?;
		for it in page.items {
			each(it)?;
		}
		match page.next {
			Some(next) => after = Some(next),
			None => return Ok(()),
		}
	}
}

/// The leaves of snapshot `version` of `datanet`, verified against its on-chain root.
pub async fn verified_leaves(chain: &ChainClient, datanet: u32, version: u32) -> Result<Vec<(u64, [u8; 32])>> {
	let snap: SnapshotJson = chain
		.rpc("datanets_getSnapshot", rpc_params![datanet, version, Option::<Hash>::None])
		.await
		.with_context(|| format!("snapshot {version} of Datanet {datanet}"))?;
	let n = snap.leaf_count as usize;
	let mut leaves: Vec<Option<(u64, [u8; 32])>> = vec![None; n];
	each_contribution(chain, datanet, None, |it| {
		if let (true, Some(leaf)) = (it.status == "accepted", it.leaf) {
			if (leaf as usize) < n {
				leaves[leaf as usize] = Some((it.id, h256(&it.content_hash)?));
			}
		}
		Ok(())
	})
	.await?;
	let leaves: Vec<(u64, [u8; 32])> = leaves
		.into_iter()
		.enumerate()
		.map(|(i, l)| l.with_context(|| format!("leaf {i} of the snapshot is not among the accepted contributions")))
		.collect::<Result<_>>()?;
	let root = binary_merkle_tree::merkle_root::<sp_runtime::traits::BlakeTwo256, _>(leaves.iter().map(|l| l.encode()));
	ensure!(
		root.0 == h256(&snap.root)?,
		"the contributions listed by the node do not hash to snapshot {version}'s root {} (got {root:?})",
		snap.root
	);
	Ok(leaves)
}

/// The bytes of contribution `id` from the content store (`ab/cd/abcd…`), checked against its
/// on-chain content hash — and first against its on-chain size when given, so a file of the
/// wrong size is refused without being read.
pub fn read_verified(store: &Path, id: u64, hash: &[u8; 32], size: Option<u64>) -> Result<Vec<u8>> {
	let hex = hex::encode(hash);
	let path = store.join(&hex[0..2]).join(&hex[2..4]).join(&hex);
	let meta = std::fs::metadata(&path).with_context(|| format!("contribution {id}: {} is not in the content store", path.display()))?;
	if let Some(size) = size.filter(|&s| s != meta.len()) {
		bail!("contribution {id}: {} holds {} bytes, the chain says {size}", path.display(), meta.len());
	}
	let bytes = std::fs::read(&path).with_context(|| format!("contribution {id}: reading {}", path.display()))?;
	if openledger_primitives::evidence::content_root(&bytes).0 != *hash {
		bail!("contribution {id}: {} does not match its on-chain content hash 0x{hex}", path.display());
	}
	Ok(bytes)
}

/// Build memory per shard of a snapshot's index (MiB): 128 Mi tokens per shard.
pub const SNAPSHOT_SHARD_MIB: u64 = 2048;

/// Builds the index of snapshot `version` of `datanet` into `out`; content from `store`.
pub async fn build(chain: &ChainClient, datanet: u32, version: u32, store: &Path, tokenizer: &TextTokenizer, out: &Path) -> Result<Meta> {
	let leaves = verified_leaves(chain, datanet, version).await?;
	let mut refs = Vec::with_capacity(leaves.len());
	let mut docs = Vec::with_capacity(leaves.len());
	let mut raws = Vec::with_capacity(leaves.len());
	for (i, (id, hash)) in leaves.iter().enumerate() {
		let bytes = read_verified(store, *id, hash, None).with_context(|| format!("leaf {i}"))?;
		refs.push(DocRef { datanet, version, index: i as u32, content_hash: *hash });
		docs.push(tokenizer.encode(&record_text(&bytes))?);
		raws.push(bytes);
	}
	// Snapshots past 128 Mi tokens are built in shards, each within 2 GiB of build memory.
	let opts = BuildOptions { shard_tokens: Some(shard_tokens_for(SNAPSHOT_SHARD_MIB)), ..Default::default() };
	// A near-copy's original is the earlier contribution (lower id), whichever was accepted first.
	let ages: Vec<u64> = leaves.iter().map(|(id, _)| *id).collect();
	build_index_aged(
		out,
		refs.into_iter().zip(docs.iter().zip(raws.iter())).map(|(r, (d, b))| (r, d.as_slice(), b.as_slice())),
		Some(&ages),
		opts,
	)
}

/// A contribution that is a near-copy of an earlier one of its Datanet, for curators.
#[derive(Debug, serde::Serialize)]
pub struct NearCopy {
	pub contribution: u64,
	pub status: String,
	pub contributor: String,
	pub original: u64,
	pub original_status: String,
	pub original_contributor: String,
	pub similarity: f64,
}

/// What [`review`] finds: near-copies, and contributions whose bytes could not be compared
/// (missing from the store, or not matching their on-chain hash), with the reason.
#[derive(Debug, Default)]
pub struct Review {
	pub contributions: usize,
	pub copies: Vec<NearCopy>,
	pub unreadable: Vec<(u64, String, String)>,
}

/// Compares every contribution of `datanet` the chain holds — pending ones before a curator
/// accepts them, as well as accepted ones — with the earlier ones (lower contribution id), as
/// the index build does (`dedup::find_copies`: MinHash + LSH, confirmed by exact Jaccard on
/// token shingles). A near-copy is reported with the earliest contribution it copies.
///
/// Everything is read at one block (the best when the review starts), and no more
/// contributions are taken than the Datanet counts there (pending + accepted), none twice: a
/// node cannot make the review page forever. A contribution's file is checked against its
/// on-chain size before it is read.
pub async fn review(chain: &ChainClient, datanet: u32, store: &Path, tokenizer: &TextTokenizer) -> Result<Review> {
	#[derive(serde::Deserialize)]
	#[serde(rename_all = "camelCase")]
	struct Counts {
		pending_count: u64,
		leaf_count: u64,
	}
	let at: Hash = chain.rpc("chain_getBlockHash", rpc_params![]).await?;
	let counts: Counts = chain
		.rpc("datanets_getDatanet", rpc_params![datanet, Some(at)])
		.await
		.with_context(|| format!("Datanet {datanet}"))?;
	let expected = counts.pending_count.saturating_add(counts.leaf_count);
	let mut items = Vec::new();
	let mut seen = std::collections::HashSet::new();
	each_contribution(chain, datanet, Some(at), |it| {
		ensure!(seen.insert(it.id), "the node listed contribution {} twice", it.id);
		items.push(it);
		ensure!(items.len() as u64 <= expected, "the node lists more contributions than Datanet {datanet} counts ({expected})");
		Ok(())
	})
	.await?;
	items.sort_by_key(|it| it.id);
	let mut out = Review { contributions: items.len(), ..Default::default() };
	let mut kept = Vec::with_capacity(items.len());
	let mut docs = Vec::with_capacity(items.len());
	for it in &items {
		let tokens = h256(&it.content_hash)
			.and_then(|h| read_verified(store, it.id, &h, Some(it.size_bytes)))
			.and_then(|bytes| tokenizer.encode(&record_text(&bytes)));
		match tokens {
			Ok(tokens) => {
				docs.push(tokens);
				kept.push(it);
			},
			Err(e) => out.unreadable.push((it.id, it.status.clone(), format!("{e:#}"))),
		}
	}
	let refs: Vec<&[u32]> = docs.iter().map(|d| d.as_slice()).collect();
	for (copy, original, similarity) in super::dedup::find_copies(&refs).copies {
		let (c, o) = (kept[copy], kept[original]);
		out.copies.push(NearCopy {
			contribution: c.id,
			status: c.status.clone(),
			contributor: c.contributor.clone(),
			original: o.id,
			original_status: o.status.clone(),
			original_contributor: o.contributor.clone(),
			similarity,
		});
	}
	Ok(out)
}

#[cfg(test)]
mod tests {
	use super::record_text;

	#[test]
	fn record_texts() {
		assert_eq!(record_text(br#"{"text":"a b","id":3}"#), "a b");
		assert_eq!(record_text(br#"{"prompt":"q","completion":"a"}"#), "q\na");
		assert_eq!(record_text(br#"{"messages":[{"role":"user","content":"hi"},{"role":"assistant","content":"yo"}]}"#), "hi\nyo");
		assert_eq!(record_text(b"plain text"), "plain text");
		assert_eq!(record_text(br#"{"other":1}"#), r#"{"other":1}"#);
	}
}
