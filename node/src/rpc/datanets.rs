//! `datanets_*` JSON-RPC methods over `pallet_datanets_runtime_api::DatanetsApi`.
//!
//! Amounts of OPEN are decimal strings; hashes and non-UTF-8 bytes are `0x` hex; accounts are
//! SS58 (prefix 42). Every method takes an optional block hash `at` (best block if omitted).

use std::sync::Arc;

use jsonrpsee::{
	core::{async_trait, RpcResult},
	proc_macros::rpc,
	types::ErrorObjectOwned,
};
use openledger_runtime::{opaque::Block, AccountId, BlockNumber};
use pallet_datanets::{
	ContributionId, ContributionOf, ContributionStatus, CurationMode, DatanetId, DatanetOf,
	DatanetStatus, LeafIndex, SnapshotInfo, SnapshotProof, SnapshotVersion, MAX_PAGE,
};
use pallet_datanets_runtime_api::DatanetsApi;
use serde::{Deserialize, Serialize};
use sp_api::ProvideRuntimeApi;
use sp_blockchain::HeaderBackend;
use sp_core::crypto::Ss58Codec;

type Hash = <Block as sp_runtime::traits::Block>::Hash;
type Runtime = openledger_runtime::Runtime;

/// Error codes of the `datanets_*` methods.
pub mod error {
	/// A runtime API call failed.
	pub const RUNTIME_ERROR: i32 = 9100;
	/// No such Datanet, contribution, snapshot or leaf.
	pub const NOT_FOUND: i32 = 9101;
}

/// Bytes as UTF-8 text, or `0x` hex when they are not UTF-8.
pub fn bytes_text(b: &[u8]) -> String {
	match std::str::from_utf8(b) {
		Ok(s) => s.to_owned(),
		Err(_) => format!("0x{}", hex(b)),
	}
}

fn hex(b: &[u8]) -> String {
	b.iter().map(|x| format!("{x:02x}")).collect()
}

/// A hash as `0x` hex.
pub fn h256(h: &sp_core::H256) -> String {
	format!("0x{}", hex(h.as_bytes()))
}

/// A Datanet.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct DatanetJson {
	pub id: DatanetId,
	pub owner: String,
	pub name: String,
	pub metadata_uri: String,
	pub license: String,
	/// `open` or `curated`.
	pub curation: String,
	pub deposit_base: String,
	pub deposit_per_byte: String,
	pub owner_deposit: String,
	/// `active` or `archived`.
	pub status: String,
	pub curator_count: u32,
	pub pending_count: u32,
	pub leaf_count: u32,
	pub accepted_bytes: u64,
	pub accepted_tokens: u64,
	pub latest_snapshot: u32,
	pub frozen_leaves: u32,
	pub created_at: BlockNumber,
}

impl DatanetJson {
	fn new(id: DatanetId, d: DatanetOf<Runtime>) -> Self {
		Self {
			id,
			owner: d.owner.to_ss58check(),
			name: bytes_text(&d.name),
			metadata_uri: bytes_text(&d.metadata_uri),
			license: bytes_text(&d.license),
			curation: match d.curation {
				CurationMode::Open => "open",
				CurationMode::Curated => "curated",
			}
			.into(),
			deposit_base: d.deposit.base.to_string(),
			deposit_per_byte: d.deposit.per_byte.to_string(),
			owner_deposit: d.owner_deposit.to_string(),
			status: match d.status {
				DatanetStatus::Active => "active",
				DatanetStatus::Archived => "archived",
			}
			.into(),
			curator_count: d.curator_count,
			pending_count: d.pending_count,
			leaf_count: d.leaf_count,
			accepted_bytes: d.accepted_bytes,
			accepted_tokens: d.accepted_tokens,
			latest_snapshot: d.latest_snapshot,
			frozen_leaves: d.frozen_leaves,
			created_at: d.created_at,
		}
	}
}

/// A contribution.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContributionJson {
	pub id: ContributionId,
	pub datanet: DatanetId,
	pub contributor: String,
	pub content_hash: String,
	pub size_bytes: u64,
	pub token_count: u64,
	pub uri: String,
	pub license: Option<String>,
	pub metadata: Option<String>,
	/// `pending` or `accepted`.
	pub status: String,
	/// Index in the accepted list, if accepted.
	pub leaf: Option<LeafIndex>,
	pub deposit: String,
	pub submitted_at: BlockNumber,
}

impl ContributionJson {
	fn new(id: ContributionId, c: ContributionOf<Runtime>) -> Self {
		let (status, leaf) = match c.status {
			ContributionStatus::Pending => ("pending", None),
			ContributionStatus::Accepted { leaf } => ("accepted", Some(leaf)),
		};
		Self {
			id,
			datanet: c.datanet,
			contributor: c.contributor.to_ss58check(),
			content_hash: h256(&c.content_hash),
			size_bytes: c.size_bytes,
			token_count: c.token_count,
			uri: bytes_text(&c.uri),
			license: c.license.map(|l| bytes_text(&l)),
			metadata: c.metadata.map(|m| bytes_text(&m)),
			status: status.into(),
			leaf,
			deposit: c.deposit.to_string(),
			submitted_at: c.submitted_at,
		}
	}
}

/// A page of contributions; pass `next` as `after` to get the following page (`null`: done).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ContributionPage {
	pub items: Vec<ContributionJson>,
	pub next: Option<ContributionId>,
}

/// A snapshot.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct SnapshotJson {
	pub datanet: DatanetId,
	pub version: SnapshotVersion,
	pub root: String,
	pub leaf_count: u32,
	pub total_bytes: u64,
	pub total_tokens: u64,
	pub taken_at: BlockNumber,
}

/// A Merkle proof of `(datanet, version, leafIndex)`; see `pallet_datanets::merkle` for the tree.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ProofJson {
	pub root: String,
	/// Sibling hashes from the leaf up.
	pub proof: Vec<String>,
	pub number_of_leaves: u32,
	pub leaf_index: u32,
	pub contribution: ContributionId,
	pub content_hash: String,
	/// The leaf's bytes (SCALE of `(contribution u64, content hash)`) whose blake2-256 is hashed up.
	pub leaf: String,
}

impl From<SnapshotProof> for ProofJson {
	fn from(p: SnapshotProof) -> Self {
		use codec::Encode;
		Self {
			root: h256(&p.root),
			proof: p.proof.iter().map(h256).collect(),
			number_of_leaves: p.number_of_leaves,
			leaf_index: p.leaf_index,
			contribution: p.leaf.contribution,
			content_hash: h256(&p.leaf.content_hash),
			leaf: format!("0x{}", hex(&p.leaf.encode())),
		}
	}
}

/// Datanet queries.
#[rpc(client, server)]
pub trait DatanetsRpc {
	/// A Datanet by id.
	#[method(name = "datanets_getDatanet")]
	fn get_datanet(&self, id: DatanetId, at: Option<Hash>) -> RpcResult<DatanetJson>;
	/// A contribution by id.
	#[method(name = "datanets_getContribution")]
	fn get_contribution(&self, id: ContributionId, at: Option<Hash>) -> RpcResult<ContributionJson>;
	/// A page of a Datanet's contributions (`limit` ≤ 1000, default 100), in storage order: by
	/// the hash of the id, stable from page to page but not ascending (sort by `id` when order
	/// matters); pass the page's `next` as `after`.
	#[method(name = "datanets_listContributions")]
	fn list_contributions(&self, datanet: DatanetId, after: Option<ContributionId>, limit: Option<u32>, at: Option<Hash>) -> RpcResult<ContributionPage>;
	/// A page of an account's contributions (SS58 `account`), in the same storage order and
	/// paging as `datanets_listContributions`.
	#[method(name = "datanets_contributionsOf")]
	fn contributions_of(&self, account: String, after: Option<ContributionId>, limit: Option<u32>, at: Option<Hash>) -> RpcResult<ContributionPage>;
	/// A snapshot.
	#[method(name = "datanets_getSnapshot")]
	fn get_snapshot(&self, datanet: DatanetId, version: SnapshotVersion, at: Option<Hash>) -> RpcResult<SnapshotJson>;
	/// The Merkle proof of leaf `index` of snapshot `version`.
	#[method(name = "datanets_getProof")]
	fn get_proof(&self, datanet: DatanetId, version: SnapshotVersion, index: LeafIndex, at: Option<Hash>) -> RpcResult<ProofJson>;
}

/// Implements [`DatanetsRpcServer`] over a client.
pub struct Datanets<C> {
	client: Arc<C>,
	trees: Arc<TreeCache>,
}

impl<C> Datanets<C> {
	/// Over `client`.
	pub fn new(client: Arc<C>) -> Self {
		Self { client, trees: Arc::new(TreeCache::new(TREE_CACHE_LEAVES)) }
	}
}

/// Most leaves held in the snapshot-tree cache, over all cached snapshots (~104 bytes each with
/// their tree: about 20 MiB).
pub const TREE_CACHE_LEAVES: usize = 200_000;

/// Most snapshot trees cached (lookups scan them).
pub const MAX_CACHED_TREES: usize = 64;

/// Snapshot trees by `(datanet, version, root)`, least recently used dropped first once the
/// leaves held pass the budget. Snapshots never change, and the root in the key (read from the
/// state at the requested block on every call) means a cached tree is only ever used for the
/// snapshot it was built from.
pub struct TreeCache {
	budget: usize,
	entries: std::sync::Mutex<std::collections::VecDeque<((DatanetId, SnapshotVersion, sp_core::H256), Arc<pallet_datanets::merkle::Tree>)>>,
}

impl TreeCache {
	/// A cache holding at most `budget` leaves.
	pub fn new(budget: usize) -> Self {
		Self { budget, entries: Default::default() }
	}

	/// The cached tree for `key`, or the one `build` makes (then cached). `build` runs outside
	/// the lock: concurrent misses may build twice, and never block hits.
	pub fn get_or_build<E>(
		&self,
		key: (DatanetId, SnapshotVersion, sp_core::H256),
		build: impl FnOnce() -> Result<pallet_datanets::merkle::Tree, E>,
	) -> Result<Arc<pallet_datanets::merkle::Tree>, E> {
		{
			let mut entries = self.entries.lock().expect("no panics under the lock; qed");
			if let Some(i) = entries.iter().position(|(k, _)| *k == key) {
				let hit = entries.remove(i).expect("found above; qed");
				let tree = hit.1.clone();
				entries.push_back(hit);
				return Ok(tree);
			}
		}
		let tree = Arc::new(build()?);
		if tree.len() <= self.budget {
			let mut entries = self.entries.lock().expect("no panics under the lock; qed");
			entries.retain(|(k, _)| *k != key);
			entries.push_back((key, tree.clone()));
			while entries.len() > MAX_CACHED_TREES || entries.iter().map(|(_, t)| t.len()).sum::<usize>() > self.budget {
				entries.pop_front();
			}
		}
		Ok(tree)
	}
}

fn runtime_error(e: impl std::fmt::Display) -> ErrorObjectOwned {
	ErrorObjectOwned::owned(error::RUNTIME_ERROR, "runtime API call failed", Some(e.to_string()))
}

fn not_found(what: String) -> ErrorObjectOwned {
	ErrorObjectOwned::owned(error::NOT_FOUND, what, None::<()>)
}

fn page(items: Vec<(ContributionId, ContributionOf<Runtime>)>, limit: u32) -> ContributionPage {
	let next = if items.len() as u32 == limit { items.last().map(|(id, _)| *id) } else { None };
	ContributionPage { items: items.into_iter().map(|(id, c)| ContributionJson::new(id, c)).collect(), next }
}

impl<C> Datanets<C>
where
	C: ProvideRuntimeApi<Block> + HeaderBackend<Block> + Send + Sync + 'static,
	C::Api: DatanetsApi<Block, AccountId, DatanetOf<Runtime>, ContributionOf<Runtime>, BlockNumber>,
{
	fn at(&self, at: Option<Hash>) -> Hash {
		at.unwrap_or_else(|| self.client.info().best_hash)
	}
}

#[async_trait]
impl<C> DatanetsRpcServer for Datanets<C>
where
	C: ProvideRuntimeApi<Block> + HeaderBackend<Block> + Send + Sync + 'static,
	C::Api: DatanetsApi<Block, AccountId, DatanetOf<Runtime>, ContributionOf<Runtime>, BlockNumber>,
{
	fn get_datanet(&self, id: DatanetId, at: Option<Hash>) -> RpcResult<DatanetJson> {
		let d = self.client.runtime_api().datanet(self.at(at), id).map_err(runtime_error)?;
		d.map(|d| DatanetJson::new(id, d)).ok_or_else(|| not_found(format!("no datanet {id}")))
	}

	fn get_contribution(&self, id: ContributionId, at: Option<Hash>) -> RpcResult<ContributionJson> {
		let c = self.client.runtime_api().contribution(self.at(at), id).map_err(runtime_error)?;
		c.map(|c| ContributionJson::new(id, c)).ok_or_else(|| not_found(format!("no contribution {id}")))
	}

	fn list_contributions(&self, datanet: DatanetId, after: Option<ContributionId>, limit: Option<u32>, at: Option<Hash>) -> RpcResult<ContributionPage> {
		let limit = limit.unwrap_or(100).clamp(1, MAX_PAGE);
		let items = self
			.client
			.runtime_api()
			.contributions_of_datanet(self.at(at), datanet, after, limit)
			.map_err(runtime_error)?;
		Ok(page(items, limit))
	}

	fn contributions_of(&self, account: String, after: Option<ContributionId>, limit: Option<u32>, at: Option<Hash>) -> RpcResult<ContributionPage> {
		let who = AccountId::from_ss58check(&account).map_err(|e| {
			ErrorObjectOwned::owned(jsonrpsee::types::error::INVALID_PARAMS_CODE, format!("bad account {account}: {e:?}"), None::<()>)
		})?;
		let limit = limit.unwrap_or(100).clamp(1, MAX_PAGE);
		let items = self
			.client
			.runtime_api()
			.contributions_of_account(self.at(at), who, after, limit)
			.map_err(runtime_error)?;
		Ok(page(items, limit))
	}

	fn get_snapshot(&self, datanet: DatanetId, version: SnapshotVersion, at: Option<Hash>) -> RpcResult<SnapshotJson> {
		let s: Option<SnapshotInfo<BlockNumber>> =
			self.client.runtime_api().snapshot(self.at(at), datanet, version).map_err(runtime_error)?;
		let s = s.ok_or_else(|| not_found(format!("no snapshot {datanet}/{version}")))?;
		Ok(SnapshotJson {
			datanet,
			version,
			root: h256(&s.root),
			leaf_count: s.leaf_count,
			total_bytes: s.total_bytes,
			total_tokens: s.total_tokens,
			taken_at: s.taken_at,
		})
	}

	fn get_proof(&self, datanet: DatanetId, version: SnapshotVersion, index: LeafIndex, at: Option<Hash>) -> RpcResult<ProofJson> {
		let at = self.at(at);
		let missing = || not_found(format!("no leaf {index} in snapshot {datanet}/{version}"));
		// The snapshot as the state at `at` has it (one storage read): its root keys the cache.
		let s: SnapshotInfo<BlockNumber> =
			self.client.runtime_api().snapshot(at, datanet, version).map_err(runtime_error)?.ok_or_else(missing)?;
		if index >= s.leaf_count {
			return Err(missing());
		}
		let tree = self.trees.get_or_build((datanet, version, s.root), || {
			let leaves = self
				.client
				.runtime_api()
				.snapshot_leaves(at, datanet, version)
				.map_err(runtime_error)?
				.ok_or_else(missing)?;
			let tree = pallet_datanets::merkle::Tree::new(leaves);
			if tree.root() != s.root {
				return Err(runtime_error(format!("snapshot {datanet}/{version}: its leaves do not hash to its root")));
			}
			Ok(tree)
		})?;
		tree.proof(index).map(Into::into).ok_or_else(missing)
	}
}
