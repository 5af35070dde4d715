//! What the chain says this worker serves. The worker's record (`OpenStaking::Workers`) names
//! its receipt-signing key and the models it is registered for; each model's latest
//! non-deprecated version names its weights hash (for adapters: the adapter id of a folder in
//! the adapter store), price and lineage. Refreshed at start and on every finalized block, so
//! an adapter registered (or a worker record updated) while the worker runs is served from the
//! next block on, without a restart.

use super::ChainClient;
use crate::model::lora::{adapter_id, CONFIG_FILE, WEIGHTS_FILE};
use anyhow::{bail, Context, Result};
use jsonrpsee::rpc_params;
use openledger_primitives::{tx, AccountId, ModelId, ModelVersion};
use sp_core::H256;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::RwLock;
use std::time::SystemTime;

/// `models_*` error code for an unknown model.
const MODEL_NOT_FOUND: i32 = 9201;

/// The on-chain terms of a model this worker serves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServedModel {
	pub model: ModelId,
	pub version: ModelVersion,
	pub per_request: u128,
	pub per_1k_tokens: u128,
	/// The model's terms as vouchers must name them (`terms_hash` of its split and price).
	pub terms: H256,
	/// (datanet, snapshot version) pairs of the version's lineage.
	pub lineage: Vec<(u32, u32)>,
	/// For an adapter: the weights hash (adapter id) registered for this version. A request is
	/// billed only when the adapter actually served has this id.
	pub weights_hash: Option<[u8; 32]>,
}

impl ServedModel {
	/// The fee for a request of `tokens` tokens (prompt + completion), rounded down.
	pub fn fee(&self, tokens: u32) -> u128 {
		self.per_request.saturating_add(self.per_1k_tokens.saturating_mul(tokens as u128) / 1000)
	}
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct ModelJson {
	#[serde(default)]
	name: String,
	kind: String,
	price_per_1k_tokens: String,
	price_per_request: String,
	split_perbill: HashMap<String, u32>,
	versions: Vec<VersionJson>,
}

#[derive(serde::Deserialize)]
#[serde(rename_all = "camelCase")]
struct VersionJson {
	version: u32,
	weights_hash: String,
	lineage: Vec<LineageJson>,
	deprecated: bool,
}

#[derive(serde::Deserialize)]
struct LineageJson {
	datanet: u32,
	version: u32,
}

/// Adapter ids of the store's folders, recomputed only when a folder's files change.
#[derive(Default)]
struct IdCache {
	by_name: HashMap<String, ((SystemTime, u64), [u8; 32])>,
}

impl IdCache {
	fn scan(&mut self, dir: &Path) -> HashMap<[u8; 32], String> {
		let mut out = HashMap::new();
		for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
			let name = e.file_name().to_string_lossy().into_owned();
			if !crate::adapters::valid_name(&name) {
				continue; // e.g. a folder the factory is still writing (`.tmp-…`)
			}
			let p: PathBuf = e.path();
			let Ok(meta) = std::fs::metadata(p.join(WEIGHTS_FILE)) else { continue };
			let stamp = (meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), meta.len());
			let id = match self.by_name.get(&name) {
				Some((s, id)) if *s == stamp => *id,
				_ => {
					let (Ok(c), Ok(w)) = (std::fs::read(p.join(CONFIG_FILE)), std::fs::read(p.join(WEIGHTS_FILE))) else { continue };
					let Ok(id) = adapter_id(&c, &w) else { continue };
					self.by_name.insert(name.clone(), (stamp, id));
					id
				},
			};
			out.insert(id, name);
		}
		out
	}
}

/// A composition registered on chain: its on-chain name composes adapters of the store
/// (`legal+medical`, `legal:0.7+medical:0.3`) whose composition id is the registered weights
/// hash. Served, and billed, under that name.
fn composed_name(name: &str, hash: &[u8; 32], local: &HashMap<[u8; 32], String>) -> Option<String> {
	let parts = crate::model::lora::parse_composition(name)?.ok()?;
	let ids: Option<Vec<([u8; 32], f32)>> =
		parts.iter().map(|(n, w)| local.iter().find(|(_, local_name)| *local_name == n).map(|(id, _)| (*id, *w))).collect();
	(crate::model::lora::composition_id(&ids?) == *hash).then(|| name.to_string())
}

/// Keeps a registered composition only when each of its parts is itself served (registered on
/// chain for this worker, as the very folder composed) and the composition's lineage holds every
/// part's lineage: a composition may not serve its parts' data without crediting it. (Routing
/// revenue to the parts' owners needs the chain's support; today the composition's owner is paid.)
fn retain_sound_compositions(served: &mut HashMap<String, ServedModel>) {
	let snapshot = served.clone();
	served.retain(|name, m| {
		let Some(Ok(parts)) = crate::model::lora::parse_composition(name) else { return true };
		let ids: Option<Vec<([u8; 32], f32)>> = parts
			.iter()
			.map(|(n, w)| {
				let p = snapshot.get(n)?;
				p.lineage.iter().all(|l| m.lineage.contains(l)).then_some(())?;
				Some((p.weights_hash?, *w))
			})
			.collect();
		let sound = ids.is_some_and(|ids| Some(crate::model::lora::composition_id(&ids)) == m.weights_hash);
		if !sound {
			tracing::warn!("model {} (`{name}`) composes adapters this worker does not serve, or leaves out their lineage: not served", m.model);
		}
		sound
	});
}

pub struct Registry {
	pub account: AccountId,
	/// The receipt-signing key the chain expects (checked against ours at every refresh).
	pub signing_key: [u8; 32],
	/// The chain's genesis hash: vouchers must name it.
	pub genesis: openledger_primitives::Hash,
	base_name: String,
	base_model: Option<ModelId>,
	adapters_dir: PathBuf,
	pub(crate) served: RwLock<HashMap<String, ServedModel>>,
	ids: std::sync::Mutex<IdCache>,
	/// Latest finalized block number seen.
	pub finalized: AtomicU32,
	/// When the registry last read the chain successfully (unix seconds; 0: never).
	pub refreshed_at: std::sync::atomic::AtomicU64,
}

/// A registry not refreshed for this long refuses paid requests (it follows every finalized
/// block, and re-reads at least every 30 s without one).
pub const STALE_AFTER_SECS: u64 = 120;

fn unix_now() -> u64 {
	SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0)
}

impl Registry {
	pub fn new(
		account: AccountId,
		signing_key: [u8; 32],
		genesis: openledger_primitives::Hash,
		base_name: String,
		base_model: Option<ModelId>,
		adapters_dir: PathBuf,
	) -> Self {
		Self {
			account,
			signing_key,
			genesis,
			base_name,
			base_model,
			adapters_dir,
			served: Default::default(),
			ids: Default::default(),
			finalized: AtomicU32::new(0),
			refreshed_at: Default::default(),
		}
	}

	/// Seconds since the last successful refresh, when that is too long to bill on.
	pub fn stale_for(&self) -> Option<u64> {
		let age = unix_now().saturating_sub(self.refreshed_at.load(Ordering::Relaxed));
		(age > STALE_AFTER_SECS).then_some(age)
	}

	pub fn mark_refreshed(&self) {
		self.refreshed_at.store(unix_now(), Ordering::Relaxed);
	}

	/// The on-chain terms for a served model name (base name or adapter folder).
	pub fn get(&self, name: &str) -> Option<ServedModel> {
		self.served.read().expect("not poisoned; qed").get(name).cloned()
	}

	/// Names served, with their model ids.
	pub fn served(&self) -> Vec<(String, ModelId)> {
		let mut v: Vec<_> = self.served.read().expect("not poisoned; qed").iter().map(|(n, m)| (n.clone(), m.model)).collect();
		v.sort();
		v
	}

	/// Re-reads the worker's record and its models at the finalized block.
	pub async fn refresh(&self, chain: &ChainClient) -> Result<()> {
		let (at, number) = chain.finalized().await?;
		// First: whatever fails below, voucher expiry is judged against the real chain height.
		self.finalized.fetch_max(number, Ordering::Relaxed);
		let raw = chain
			.storage(&tx::worker_storage_key(&self.account), Some(at))
			.await?
			.with_context(|| format!("{} is not a bonded worker on this chain (bond it with openStaking.bondWorker)", self.account))?;
		let head = <tx::WorkerRecordHead as codec::Decode>::decode(&mut &raw[..]).context("decoding the worker record")?;
		if head.signing_key != self.signing_key {
			bail!(
				"the chain expects receipts signed by 0x{}, but this worker signs with 0x{}",
				hex::encode(head.signing_key),
				hex::encode(self.signing_key)
			);
		}
		let local = self.ids.lock().expect("not poisoned; qed").scan(&self.adapters_dir);
		let mut served = HashMap::new();
		for model in head.models {
			let mut weights_hash = None;
			let Some(m) = chain.rpc_opt::<ModelJson>("models_getModel", rpc_params![model, at], MODEL_NOT_FOUND).await? else {
				continue;
			};
			let Some(v) = m.versions.iter().rev().find(|v| !v.deprecated) else { continue };
			let name = if m.kind == "base" {
				if self.base_model != Some(model) {
					continue;
				}
				self.base_name.clone()
			} else {
				let Ok(hash) = hex::decode(v.weights_hash.trim_start_matches("0x")) else { continue };
				let Ok(hash) = <[u8; 32]>::try_from(hash) else { continue };
				weights_hash = Some(hash);
				match local.get(&hash).cloned().or_else(|| composed_name(&m.name, &hash, &local)) {
					Some(name) => name,
					None => {
						tracing::warn!("model {model} (weights 0x{}) is not in the adapter store", hex::encode(hash));
						continue;
					},
				}
			};
			let per_request: u128 = m.price_per_request.parse().context("price")?;
			let per_1k_tokens: u128 = m.price_per_1k_tokens.parse().context("price")?;
			let part = |k: &str| m.split_perbill.get(k).copied().map(sp_runtime::Perbill::from_parts).with_context(|| format!("split share {k}"));
			let split = openledger_primitives::RevenueSplit { owner: part("owner")?, data: part("data")?, worker: part("worker")?, treasury: part("treasury")? };
			served.insert(
				name,
				ServedModel {
					model,
					version: v.version,
					per_request,
					per_1k_tokens,
					terms: openledger_primitives::receipt::terms_hash(&split, per_request, per_1k_tokens),
					lineage: v.lineage.iter().map(|l| (l.datanet, l.version)).collect(),
					weights_hash,
				},
			);
		}
		retain_sound_compositions(&mut served);
		let mut cur = self.served.write().expect("not poisoned; qed");
		if *cur != served {
			tracing::info!("serving on chain at block {number}: {:?}", {
				let mut v: Vec<_> = served.iter().map(|(n, m)| format!("{n} = model {} v{}", m.model, m.version)).collect();
				v.sort();
				v
			});
			*cur = served;
		}
		self.mark_refreshed();
		Ok(())
	}
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::model::lora::composition_id;

	#[test]
	fn a_composition_is_served_under_its_on_chain_name_only_when_its_id_matches() {
		let local: HashMap<[u8; 32], String> = [([1; 32], "legal".to_string()), ([2; 32], "medical".to_string())].into();
		let id = composition_id(&[([1; 32], 0.7), ([2; 32], 0.3)]);
		assert_eq!(composed_name("legal:0.7+medical:0.3", &id, &local).as_deref(), Some("legal:0.7+medical:0.3"));
		// Other weights, other order, a part missing, not a composition: not served.
		assert_eq!(composed_name("legal:0.3+medical:0.7", &id, &local), None);
		assert_eq!(composed_name("medical:0.3+legal:0.7", &id, &local), None);
		assert_eq!(composed_name("legal:0.7+tax:0.3", &id, &local), None);
		assert_eq!(composed_name("legal", &id, &local), None);
		assert_eq!(composed_name("legal+medical", &composition_id(&[([1; 32], 1.0), ([2; 32], 1.0)]), &local).as_deref(), Some("legal+medical"));
	}

	#[test]
	fn a_composition_needs_its_parts_served_and_their_lineage() {
		let m = |model: u32, hash: [u8; 32], lineage: Vec<(u32, u32)>| ServedModel {
			model, version: 1, per_request: 0, per_1k_tokens: 0, terms: Default::default(), lineage, weights_hash: Some(hash),
		};
		let id = composition_id(&[([1; 32], 0.7), ([2; 32], 0.3)]);
		let parts = [("legal".to_string(), m(1, [1; 32], vec![(5, 1)])), ("medical".to_string(), m(2, [2; 32], vec![(6, 1)]))];
		let with = |comp: ServedModel, extra: &[(String, ServedModel)]| {
			let mut s: HashMap<String, ServedModel> = extra.iter().cloned().collect();
			s.insert("legal:0.7+medical:0.3".into(), comp);
			retain_sound_compositions(&mut s);
			s.contains_key("legal:0.7+medical:0.3")
		};
		assert!(with(m(3, id, vec![(5, 1), (6, 1)]), &parts));
		assert!(!with(m(3, id, vec![(5, 1)]), &parts), "medical's lineage left out");
		assert!(!with(m(3, id, vec![(5, 1), (6, 1)]), &parts[..1]), "medical not served");
		assert!(!with(m(3, [9; 32], vec![(5, 1), (6, 1)]), &parts), "another id");
	}
}
