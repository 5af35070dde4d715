//! `models_*` JSON-RPC methods over `pallet_models_runtime_api::ModelsApi`.
//!
//! Amounts are decimal strings, shares are parts per billion (`Perbill`), hashes `0x` hex,
//! accounts SS58. Every method takes an optional block hash `at` (best block if omitted).

use std::sync::Arc;

use jsonrpsee::{core::RpcResult, proc_macros::rpc, types::ErrorObjectOwned};
use openledger_runtime::{opaque::Block, AccountId, BlockNumber};
use pallet_models::{ModelId, ModelInfo, ModelKind, ModelVersion, VersionInfo, MAX_PAGE};
use pallet_models_runtime_api::ModelsApi;
use serde::{Deserialize, Serialize};
use sp_api::ProvideRuntimeApi;
use sp_blockchain::HeaderBackend;
use sp_core::{crypto::Ss58Codec, H256};

use super::datanets::{bytes_text, h256};

type Hash = <Block as sp_runtime::traits::Block>::Hash;
type Runtime = openledger_runtime::Runtime;

/// Error codes of the `models_*` methods.
pub mod error {
	/// A runtime API call failed.
	pub const RUNTIME_ERROR: i32 = 9200;
	/// No such model.
	pub const NOT_FOUND: i32 = 9201;
}

/// A lineage entry.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct LineageJson {
	pub datanet: u32,
	pub version: u32,
	pub weight_perbill: u32,
}

/// A version of a model.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct VersionJson {
	pub version: ModelVersion,
	pub weights_hash: String,
	pub uri: String,
	pub lineage: Vec<LineageJson>,
	pub training_config_hash: String,
	pub deprecated: bool,
	pub published_at: BlockNumber,
}

/// A model with its versions.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ModelJson {
	pub id: ModelId,
	pub owner: String,
	pub name: String,
	pub license: String,
	/// `base` or `adapter`.
	pub kind: String,
	pub architecture: Option<String>,
	pub base: Option<ModelId>,
	pub rank: Option<u16>,
	pub alpha: Option<u16>,
	pub target_modules: Vec<String>,
	pub price_per_1k_tokens: String,
	pub price_per_request: String,
	/// `{owner, data, worker, treasury}` in parts per billion.
	pub split_perbill: std::collections::BTreeMap<String, u32>,
	/// The terms a voucher for this model names now: blake2-256 of SCALE `("terms", split,
	/// per_request as u128, per_1k_tokens as u128)` (`openledger_primitives::receipt::terms_hash`).
	pub terms: String,
	pub latest_version: ModelVersion,
	pub created_at: BlockNumber,
	pub versions: Vec<VersionJson>,
}

impl ModelJson {
	fn new(id: ModelId, m: ModelInfo<Runtime>, versions: Vec<(ModelVersion, VersionInfo<Runtime>)>) -> Self {
		let (kind, architecture, base, rank, alpha, target_modules) = match m.kind {
			ModelKind::Base { architecture } =>
				("base", Some(bytes_text(&architecture)), None, None, None, vec![]),
			ModelKind::Adapter(spec) => (
				"adapter",
				None,
				Some(spec.base),
				Some(spec.rank),
				Some(spec.alpha),
				spec.target_modules.iter().map(|t| bytes_text(t)).collect(),
			),
		};
		let split_perbill = [
			("owner", m.split.owner),
			("data", m.split.data),
			("worker", m.split.worker),
			("treasury", m.split.treasury),
		]
		.into_iter()
		.map(|(k, v)| (k.to_string(), v.deconstruct()))
		.collect();
		Self {
			id,
			owner: m.owner.to_ss58check(),
			name: bytes_text(&m.name),
			license: bytes_text(&m.license),
			kind: kind.into(),
			architecture,
			base,
			rank,
			alpha,
			target_modules,
			terms: h256(&openledger_primitives::receipt::terms_hash(&m.split, m.pricing.per_request, m.pricing.per_1k_tokens)),
			price_per_1k_tokens: m.pricing.per_1k_tokens.to_string(),
			price_per_request: m.pricing.per_request.to_string(),
			split_perbill,
			latest_version: m.latest_version,
			created_at: m.created_at,
			versions: versions
				.into_iter()
				.map(|(version, v)| VersionJson {
					version,
					weights_hash: h256(&v.weights_hash),
					uri: bytes_text(&v.uri),
					lineage: v
						.lineage
						.iter()
						.map(|e| LineageJson { datanet: e.datanet, version: e.version, weight_perbill: e.weight.deconstruct() })
						.collect(),
					training_config_hash: h256(&v.training_config_hash),
					deprecated: v.deprecated,
					published_at: v.published_at,
				})
				.collect(),
		}
	}
}

/// A page of models; pass `next` as `after` for the following page (`null`: done).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ModelPage {
	pub items: Vec<ModelJson>,
	pub next: Option<ModelId>,
}

/// Where a weights hash is registered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct WeightsRef {
	pub model: ModelId,
	pub version: ModelVersion,
}

/// Model registry queries.
#[rpc(client, server)]
pub trait ModelsRpc {
	/// A model with its versions and lineage.
	#[method(name = "models_getModel")]
	fn get_model(&self, id: ModelId, at: Option<Hash>) -> RpcResult<ModelJson>;
	/// The model and version registered with a weights hash (adapter id).
	#[method(name = "models_byWeightsHash")]
	fn by_weights_hash(&self, hash: H256, at: Option<Hash>) -> RpcResult<WeightsRef>;
	/// Models of an owner (`limit` ≤ 1000, default 100).
	#[method(name = "models_listByOwner")]
	fn list_by_owner(&self, owner: String, after: Option<ModelId>, limit: Option<u32>, at: Option<Hash>) -> RpcResult<ModelPage>;
	/// Adapters of a base model.
	#[method(name = "models_listByBase")]
	fn list_by_base(&self, base: ModelId, after: Option<ModelId>, limit: Option<u32>, at: Option<Hash>) -> RpcResult<ModelPage>;
	/// Models trained on a Datanet.
	#[method(name = "models_listByDatanet")]
	fn list_by_datanet(&self, datanet: u32, after: Option<ModelId>, limit: Option<u32>, at: Option<Hash>) -> RpcResult<ModelPage>;
}

/// Implements [`ModelsRpcServer`] over a client.
pub struct Models<C> {
	client: Arc<C>,
}

impl<C> Models<C> {
	/// Over `client`.
	pub fn new(client: Arc<C>) -> Self {
		Self { client }
	}
}

fn runtime_error(e: impl std::fmt::Display) -> ErrorObjectOwned {
	ErrorObjectOwned::owned(error::RUNTIME_ERROR, "runtime API call failed", Some(e.to_string()))
}

impl<C> Models<C>
where
	C: ProvideRuntimeApi<Block> + HeaderBackend<Block> + Send + Sync + 'static,
	C::Api: ModelsApi<Block, AccountId, ModelInfo<Runtime>, VersionInfo<Runtime>>,
{
	fn at(&self, at: Option<Hash>) -> Hash {
		at.unwrap_or_else(|| self.client.info().best_hash)
	}

	fn page(&self, at: Hash, ids: Vec<ModelId>, limit: u32) -> RpcResult<ModelPage> {
		let next = if ids.len() as u32 == limit { ids.last().copied() } else { None };
		let api = self.client.runtime_api();
		let mut items = Vec::with_capacity(ids.len());
		for id in ids {
			if let Some((m, v)) = api.model(at, id).map_err(runtime_error)? {
				items.push(ModelJson::new(id, m, v));
			}
		}
		Ok(ModelPage { items, next })
	}
}

fn limit(l: Option<u32>) -> u32 {
	l.unwrap_or(100).clamp(1, MAX_PAGE)
}

impl<C> ModelsRpcServer for Models<C>
where
	C: ProvideRuntimeApi<Block> + HeaderBackend<Block> + Send + Sync + 'static,
	C::Api: ModelsApi<Block, AccountId, ModelInfo<Runtime>, VersionInfo<Runtime>>,
{
	fn get_model(&self, id: ModelId, at: Option<Hash>) -> RpcResult<ModelJson> {
		let m = self.client.runtime_api().model(self.at(at), id).map_err(runtime_error)?;
		m.map(|(m, v)| ModelJson::new(id, m, v))
			.ok_or_else(|| ErrorObjectOwned::owned(error::NOT_FOUND, format!("no model {id}"), None::<()>))
	}

	fn by_weights_hash(&self, hash: H256, at: Option<Hash>) -> RpcResult<WeightsRef> {
		let r = self.client.runtime_api().by_weights_hash(self.at(at), hash).map_err(runtime_error)?;
		r.map(|(model, version)| WeightsRef { model, version }).ok_or_else(|| {
			ErrorObjectOwned::owned(error::NOT_FOUND, format!("no model with weights {hash:?}"), None::<()>)
		})
	}

	fn list_by_owner(&self, owner: String, after: Option<ModelId>, l: Option<u32>, at: Option<Hash>) -> RpcResult<ModelPage> {
		let who = AccountId::from_ss58check(&owner).map_err(|e| {
			ErrorObjectOwned::owned(jsonrpsee::types::error::INVALID_PARAMS_CODE, format!("bad account {owner}: {e:?}"), None::<()>)
		})?;
		let (at, l) = (self.at(at), limit(l));
		let ids = self.client.runtime_api().models_of_owner(at, who, after, l).map_err(runtime_error)?;
		self.page(at, ids, l)
	}

	fn list_by_base(&self, base: ModelId, after: Option<ModelId>, l: Option<u32>, at: Option<Hash>) -> RpcResult<ModelPage> {
		let (at, l) = (self.at(at), limit(l));
		let ids = self.client.runtime_api().adapters_of_base(at, base, after, l).map_err(runtime_error)?;
		self.page(at, ids, l)
	}

	fn list_by_datanet(&self, datanet: u32, after: Option<ModelId>, l: Option<u32>, at: Option<Hash>) -> RpcResult<ModelPage> {
		let (at, l) = (self.at(at), limit(l));
		let ids = self.client.runtime_api().models_of_datanet(at, datanet, after, l).map_err(runtime_error)?;
		self.page(at, ids, l)
	}
}
