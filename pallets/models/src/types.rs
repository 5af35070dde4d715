//! Types stored by the model registry and taken by its calls.

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use crate::{BalanceOf, Config};
use frame_support::{BoundedVec, CloneNoBound, EqNoBound, PartialEqNoBound, RuntimeDebugNoBound};
use frame_system::pallet_prelude::BlockNumberFor;
use scale_info::TypeInfo;
use sp_core::H256;
use sp_runtime::{Perbill, RuntimeDebug};

pub use openledger_primitives::{DatanetId, ModelId, ModelVersion, RevenueSplit, SnapshotVersion};

/// One Datanet snapshot a model version was trained on, with its weight in the training mix.
#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
pub struct LineageEntry {
	pub datanet: DatanetId,
	pub version: SnapshotVersion,
	/// Share of the training data; the entries of a lineage sum to 100 %.
	pub weight: Perbill,
}

/// Price of inference on a model, in OPEN's smallest unit.
#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug, Default)]
pub struct Pricing<Balance> {
	/// Per 1,000 tokens (prompt + completion).
	pub per_1k_tokens: Balance,
	/// Per request.
	pub per_request: Balance,
}

/// Shape of a LoRA adapter (PEFT `adapter_config.json`).
#[derive(CloneNoBound, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, PartialEqNoBound, EqNoBound, RuntimeDebugNoBound)]
#[scale_info(skip_type_params(T))]
#[codec(mel_bound())]
pub struct AdapterSpec<T: Config> {
	/// The base model it applies to.
	pub base: ModelId,
	/// LoRA rank `r`.
	pub rank: u16,
	/// LoRA alpha.
	pub alpha: u16,
	/// Target module names (e.g. `q_proj`).
	pub target_modules: BoundedVec<BoundedVec<u8, T::MaxModuleNameLen>, T::MaxTargetModules>,
}

/// Base model or adapter.
#[derive(CloneNoBound, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEqNoBound, EqNoBound, RuntimeDebugNoBound)]
#[scale_info(skip_type_params(T))]
#[codec(mel_bound())]
pub enum ModelKind<T: Config> {
	/// A base model, e.g. architecture `llama`.
	Base { architecture: BoundedVec<u8, T::MaxNameLen> },
	/// A LoRA adapter on a registered base model.
	Adapter(AdapterSpec<T>),
}

/// A model as stored: its identity, which outlives every version.
#[derive(CloneNoBound, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEqNoBound, EqNoBound, RuntimeDebugNoBound)]
#[scale_info(skip_type_params(T))]
#[codec(mel_bound())]
pub struct ModelInfo<T: Config> {
	pub owner: T::AccountId,
	pub name: BoundedVec<u8, T::MaxNameLen>,
	pub license: BoundedVec<u8, T::MaxNameLen>,
	pub kind: ModelKind<T>,
	pub pricing: Pricing<BalanceOf<T>>,
	pub split: RevenueSplit,
	/// Latest published version (versions are 1..=latest).
	pub latest_version: ModelVersion,
	pub created_at: BlockNumberFor<T>,
}

/// One version of a model's weights.
#[derive(CloneNoBound, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEqNoBound, EqNoBound, RuntimeDebugNoBound)]
#[scale_info(skip_type_params(T))]
#[codec(mel_bound())]
pub struct VersionInfo<T: Config> {
	/// Hash identifying the weights (for adapters: the adapter id, a domain-separated SHA-256 of
	/// the PEFT config and weights computed by the worker). Unique across the registry.
	pub weights_hash: H256,
	/// Where the weights can be fetched.
	pub uri: BoundedVec<u8, T::MaxUriLen>,
	/// The Datanet snapshots it was trained on (weights sum to 100 %; empty only for a base
	/// model whose data is not on chain).
	pub lineage: BoundedVec<LineageEntry, T::MaxLineage>,
	/// Hash of the training configuration.
	pub training_config_hash: H256,
	/// Deprecated versions stay queryable but are not to be served.
	pub deprecated: bool,
	pub published_at: BlockNumberFor<T>,
}

/// A lineage as a call argument and as stored: at most `MaxLineage` entries.
pub type LineageOf<T> = BoundedVec<LineageEntry, <T as crate::Config>::MaxLineage>;

/// LoRA target modules as a call argument and as stored.
pub type TargetModulesOf<T> =
	BoundedVec<BoundedVec<u8, <T as crate::Config>::MaxModuleNameLen>, <T as crate::Config>::MaxTargetModules>;
