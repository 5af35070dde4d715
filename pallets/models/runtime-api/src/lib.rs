//! Runtime API of the model registry. The node's `models_*` JSON-RPC methods call it.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use codec::Codec;
pub use pallet_models::{DatanetId, ModelId, ModelVersion, MAX_PAGE};
use sp_core::H256;

sp_api::decl_runtime_apis! {
	/// Queries over registered models. `Model` and `Version` are the runtime's stored types
	/// (`pallet_models::ModelInfo<Runtime>`, `VersionInfo<Runtime>`).
	pub trait ModelsApi<AccountId, Model, Version>
	where
		AccountId: Codec,
		Model: Codec,
		Version: Codec,
	{
		/// A model with every version (and so its lineage).
		fn model(id: ModelId) -> Option<(Model, Vec<(ModelVersion, Version)>)>;
		/// The model and version registered with these weights (adapter id).
		fn by_weights_hash(hash: H256) -> Option<(ModelId, ModelVersion)>;
		/// Models of an owner, a page after `after`.
		fn models_of_owner(owner: AccountId, after: Option<ModelId>, limit: u32) -> Vec<ModelId>;
		/// Adapters of a base model.
		fn adapters_of_base(base: ModelId, after: Option<ModelId>, limit: u32) -> Vec<ModelId>;
		/// Models trained on a Datanet.
		fn models_of_datanet(datanet: DatanetId, after: Option<ModelId>, limit: u32) -> Vec<ModelId>;
	}
}
