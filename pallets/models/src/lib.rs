//! # Model registry pallet
//!
//! Records the models of the OpenLedger economy and where they came from.
//!
//! ## Overview
//!
//! - [`Pallet::register_base`]: a **base model** (architecture, license, weights hash, URI and,
//!   optionally, the Datanet snapshots it was trained on).
//! - [`Pallet::register_adapter`]: a **LoRA adapter** on a registered base: rank, alpha, target
//!   modules, weights hash (the adapter id the inference worker computes from the PEFT folder),
//!   URI, training-config hash and its **lineage**: the Datanet snapshots it was trained on with
//!   their weights in the mix (each snapshot must exist; weights sum to 100 %).
//! - Versions: [`Pallet::publish_version`] adds weights under the same identity (id, owner,
//!   pricing, revenue split, history); [`Pallet::deprecate_version`] marks old ones, which stay
//!   queryable.
//! - Economics: the owner sets [`Pricing`] (OPEN per 1,000 tokens and/or per request) and a
//!   [`RevenueSplit`] (owner, data, worker, treasury; exactly 100 %), each share at least the
//!   governance-set minimum ([`MinSplit`], changed by [`Config::GovernanceOrigin`]). A raised
//!   minimum binds new splits; existing models keep theirs until their owner changes it.
//!
//! ## Fees
//!
//! Registering a model costs [`Config::RegistrationFee`], a new version [`Config::VersionFee`],
//! both transferred to [`Config::FeeDestination`] (the treasury): records are permanent, so the
//! fee is not refundable, and sending it to the treasury rather than burning it keeps the OPEN
//! supply constant.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;
pub use types::*;
pub use weights::WeightInfo;

pub mod types;
pub mod weights;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use frame_support::traits::fungible::{Inspect, Mutate};

/// Balance type of the pallet's currency.
pub type BalanceOf<T> =
	<<T as Config>::Currency as Inspect<<T as frame_system::Config>::AccountId>>::Balance;

/// Most items one page of a listing query returns.
pub const MAX_PAGE: u32 = 1_000;

/// Most earlier terms of a model kept at once (changes within the grace period beyond this are
/// refused).
pub const MAX_PREVIOUS_TERMS: u32 = 4;

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use frame_support::{pallet_prelude::*, traits::tokens::Preservation};
	use frame_system::pallet_prelude::*;
	use openledger_primitives::DatanetSnapshots;
	use sp_core::H256;
	use sp_runtime::{traits::Zero, Perbill};

	const STORAGE_VERSION: StorageVersion = StorageVersion::new(1);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config: frame_system::Config {
		/// The overarching event type.
		type RuntimeEvent: From<Event<Self>> + IsType<<Self as frame_system::Config>::RuntimeEvent>;
		/// The currency fees are paid in (OPEN).
		type Currency: Mutate<Self::AccountId>;
		/// Which Datanet snapshots exist (lineage must point at real snapshots).
		type Snapshots: DatanetSnapshots;
		/// Fee to register a model.
		#[pallet::constant]
		type RegistrationFee: Get<BalanceOf<Self>>;
		/// Fee to publish a new version.
		#[pallet::constant]
		type VersionFee: Get<BalanceOf<Self>>;
		/// Receives the fees (the treasury). Must exist.
		type FeeDestination: Get<Self::AccountId>;
		/// Revenue split of a newly registered model.
		#[pallet::constant]
		type DefaultSplit: Get<RevenueSplit>;
		/// The minimum shares in force from genesis until governance changes them ([`MinSplit`]):
		/// no owner can give its data contributors (or workers, or the treasury) less.
		#[pallet::constant]
		type InitialMinSplit: Get<RevenueSplit>;
		/// May change the minimum shares of revenue splits.
		type GovernanceOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// Longest name, license or architecture, in bytes.
		#[pallet::constant]
		type MaxNameLen: Get<u32>;
		/// Longest weights URI, in bytes.
		#[pallet::constant]
		type MaxUriLen: Get<u32>;
		/// Most snapshots in a lineage.
		#[pallet::constant]
		type MaxLineage: Get<u32>;
		/// Most LoRA target modules.
		#[pallet::constant]
		type MaxTargetModules: Get<u32>;
		/// Longest target module name.
		#[pallet::constant]
		type MaxModuleNameLen: Get<u32>;
		/// How long a model's previous price and split stay valid for vouchers signed under
		/// them after the owner changes them (the longest a voucher lives): a request served on
		/// the old terms settles on the old terms.
		#[pallet::constant]
		type TermsGrace: Get<BlockNumberFor<Self>>;
		/// Weight information for extrinsics in this pallet.
		type WeightInfo: WeightInfo;
	}

	/// The next model id.
	#[pallet::storage]
	pub type NextModelId<T> = StorageValue<_, ModelId, ValueQuery>;

	/// Models by id.
	#[pallet::storage]
	pub type Models<T: Config> = StorageMap<_, Blake2_128Concat, ModelId, ModelInfo<T>>;

	/// Versions of each model (1..=latest).
	#[pallet::storage]
	pub type Versions<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, ModelId, Twox64Concat, ModelVersion, VersionInfo<T>>;

	/// Weights hash (adapter id) → model and version. A hash is registered once.
	#[pallet::storage]
	pub type ByWeightsHash<T: Config> = StorageMap<_, Blake2_128Concat, H256, (ModelId, ModelVersion)>;

	/// Models of each owner.
	#[pallet::storage]
	pub type ModelsByOwner<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Twox64Concat, ModelId, ()>;

	/// Adapters of each base model.
	#[pallet::storage]
	pub type AdaptersByBase<T: Config> =
		StorageDoubleMap<_, Twox64Concat, ModelId, Twox64Concat, ModelId, ()>;

	/// Models trained (in any version) on each Datanet.
	#[pallet::storage]
	pub type ModelsByDatanet<T: Config> =
		StorageDoubleMap<_, Twox64Concat, DatanetId, Twox64Concat, ModelId, ()>;

	/// Minimum share of each party in any revenue split set from now on.
	#[pallet::storage]
	pub type MinSplit<T: Config> = StorageValue<_, RevenueSplit, ValueQuery, MinSplitDefault<T>>;

	#[pallet::type_value]
	pub fn MinSplitDefault<T: Config>() -> RevenueSplit {
		T::InitialMinSplit::get()
	}

	/// A model's earlier prices and splits still within their grace period, with the last block
	/// vouchers signed under each may settle (at most [`MAX_PREVIOUS_TERMS`]).
	#[pallet::storage]
	pub type PreviousTerms<T: Config> = StorageMap<
		_,
		Twox64Concat,
		ModelId,
		BoundedVec<(Pricing<BalanceOf<T>>, RevenueSplit, BlockNumberFor<T>), ConstU32<MAX_PREVIOUS_TERMS>>,
		ValueQuery,
	>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// A base model was registered (version 1).
		BaseRegistered { model: ModelId, owner: T::AccountId, weights_hash: H256, fee: BalanceOf<T> },
		/// An adapter was registered (version 1).
		AdapterRegistered { model: ModelId, base: ModelId, owner: T::AccountId, weights_hash: H256, fee: BalanceOf<T> },
		/// A new version was published.
		VersionPublished { model: ModelId, version: ModelVersion, weights_hash: H256, fee: BalanceOf<T> },
		/// A version was deprecated.
		VersionDeprecated { model: ModelId, version: ModelVersion },
		/// Pricing changed.
		PricingSet { model: ModelId, pricing: Pricing<BalanceOf<T>> },
		/// Revenue split changed.
		SplitSet { model: ModelId, split: RevenueSplit },
		/// Ownership moved.
		OwnershipTransferred { model: ModelId, from: T::AccountId, to: T::AccountId },
		/// Governance changed the minimum shares.
		MinSplitSet { min: RevenueSplit },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// The model's terms changed too often within the grace period (earlier terms of
		/// vouchers not yet settled would be lost): wait for them to expire.
		TooManyTermsChanges,
		/// No model with this id.
		UnknownModel,
		/// No such version of the model.
		UnknownVersion,
		/// The base of an adapter must be a registered base model.
		NotABaseModel,
		/// Only the model's owner may do this.
		NotOwner,
		/// A name, license, architecture, URI or module name is too long, or there are too many
		/// lineage entries or target modules.
		TooLong,
		/// The name must not be empty.
		EmptyName,
		/// An adapter needs a rank, an alpha and at least one target module.
		BadAdapterShape,
		/// A lineage entry points at a snapshot that does not exist.
		UnknownSnapshot,
		/// The same snapshot twice in a lineage.
		DuplicateLineage,
		/// Lineage weights must sum to exactly 100 %.
		BadLineageWeights,
		/// An adapter must name the snapshots it was trained on.
		EmptyLineage,
		/// These weights are already registered.
		DuplicateWeights,
		/// The version is already deprecated.
		AlreadyDeprecated,
		/// Revenue shares must sum to exactly 100 %.
		SplitNotComplete,
		/// A revenue share is below the governance minimum.
		SplitBelowMinimum,
		/// The minimum shares must sum to at most 100 %.
		MinSplitTooHigh,
		/// An id or version counter overflowed.
		Overflow,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn integrity_test() {
			assert!(T::DefaultSplit::get().is_complete(), "DefaultSplit must sum to 100 %");
			assert!(T::DefaultSplit::get().respects(&T::InitialMinSplit::get()), "DefaultSplit must respect InitialMinSplit");
			assert!(T::MaxLineage::get() > 0, "MaxLineage must be positive");
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call(weight(<T as Config>::WeightInfo))]
	impl<T: Config> Pallet<T> {
		/// Registers a base model owned by the caller, paying [`Config::RegistrationFee`].
		///
		/// ## Complexity
		/// O(l) in the lineage length.
		#[pallet::call_index(0)]
		#[pallet::weight(<T as Config>::WeightInfo::register_base(lineage.len() as u32))]
		pub fn register_base(
			origin: OriginFor<T>,
			name: Vec<u8>,
			license: Vec<u8>,
			architecture: Vec<u8>,
			weights_hash: H256,
			uri: Vec<u8>,
			lineage: LineageOf<T>,
			training_config_hash: H256,
		) -> DispatchResult {
			let owner = ensure_signed(origin)?;
			let architecture = architecture.try_into().map_err(|_| Error::<T>::TooLong)?;
			let version = Self::new_version(weights_hash, uri, lineage, training_config_hash, false)?;
			let (model, fee) = Self::insert_model(owner.clone(), name, license, ModelKind::Base { architecture }, version)?;
			Self::deposit_event(Event::BaseRegistered { model, owner, weights_hash, fee });
			Ok(())
		}

		/// Registers a LoRA adapter on base model `base`, paying [`Config::RegistrationFee`].
		///
		/// ## Complexity
		/// O(l) in the lineage length.
		#[pallet::call_index(1)]
		#[pallet::weight(<T as Config>::WeightInfo::register_adapter(lineage.len() as u32))]
		pub fn register_adapter(
			origin: OriginFor<T>,
			base: ModelId,
			name: Vec<u8>,
			license: Vec<u8>,
			rank: u16,
			alpha: u16,
			target_modules: TargetModulesOf<T>,
			weights_hash: H256,
			uri: Vec<u8>,
			lineage: LineageOf<T>,
			training_config_hash: H256,
		) -> DispatchResult {
			let owner = ensure_signed(origin)?;
			let base_info = Models::<T>::get(base).ok_or(Error::<T>::UnknownModel)?;
			ensure!(matches!(base_info.kind, ModelKind::Base { .. }), Error::<T>::NotABaseModel);
			ensure!(rank > 0 && alpha > 0 && !target_modules.is_empty(), Error::<T>::BadAdapterShape);
			let version = Self::new_version(weights_hash, uri, lineage, training_config_hash, true)?;
			let spec = AdapterSpec { base, rank, alpha, target_modules };
			let (model, fee) = Self::insert_model(owner.clone(), name, license, ModelKind::Adapter(spec), version)?;
			AdaptersByBase::<T>::insert(base, model, ());
			Self::deposit_event(Event::AdapterRegistered { model, base, owner, weights_hash, fee });
			Ok(())
		}

		/// Publishes version `latest + 1` of the caller's model, paying [`Config::VersionFee`].
		#[pallet::call_index(2)]
		#[pallet::weight(<T as Config>::WeightInfo::publish_version(lineage.len() as u32))]
		pub fn publish_version(
			origin: OriginFor<T>,
			model: ModelId,
			weights_hash: H256,
			uri: Vec<u8>,
			lineage: LineageOf<T>,
			training_config_hash: H256,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut info = Models::<T>::get(model).ok_or(Error::<T>::UnknownModel)?;
			ensure!(info.owner == who, Error::<T>::NotOwner);
			let is_adapter = matches!(info.kind, ModelKind::Adapter(_));
			let v = Self::new_version(weights_hash, uri, lineage, training_config_hash, is_adapter)?;
			let version = info.latest_version.checked_add(1).ok_or(Error::<T>::Overflow)?;
			let fee = T::VersionFee::get();
			Self::charge(&who, fee)?;
			Self::index_version(model, version, &v);
			Versions::<T>::insert(model, version, v);
			info.latest_version = version;
			Models::<T>::insert(model, info);
			Self::deposit_event(Event::VersionPublished { model, version, weights_hash, fee });
			Ok(())
		}

		/// Marks a version deprecated (owner only). It stays queryable.
		#[pallet::call_index(3)]
		pub fn deprecate_version(origin: OriginFor<T>, model: ModelId, version: ModelVersion) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let info = Models::<T>::get(model).ok_or(Error::<T>::UnknownModel)?;
			ensure!(info.owner == who, Error::<T>::NotOwner);
			Versions::<T>::try_mutate(model, version, |v| -> DispatchResult {
				let v = v.as_mut().ok_or(Error::<T>::UnknownVersion)?;
				ensure!(!v.deprecated, Error::<T>::AlreadyDeprecated);
				v.deprecated = true;
				Ok(())
			})?;
			Self::deposit_event(Event::VersionDeprecated { model, version });
			Ok(())
		}

		/// Sets the model's price (owner only).
		#[pallet::call_index(4)]
		pub fn set_pricing(origin: OriginFor<T>, model: ModelId, pricing: Pricing<BalanceOf<T>>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Models::<T>::try_mutate(model, |m| -> DispatchResult {
				let m = m.as_mut().ok_or(Error::<T>::UnknownModel)?;
				ensure!(m.owner == who, Error::<T>::NotOwner);
				if m.pricing != pricing {
					Self::keep_previous_terms(model, m)?;
					m.pricing = pricing;
				}
				Ok(())
			})?;
			Self::deposit_event(Event::PricingSet { model, pricing });
			Ok(())
		}

		/// Sets the model's revenue split (owner only): exactly 100 %, each share at least
		/// [`MinSplit`].
		#[pallet::call_index(5)]
		pub fn set_revenue_split(origin: OriginFor<T>, model: ModelId, split: RevenueSplit) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(split.is_complete(), Error::<T>::SplitNotComplete);
			ensure!(split.respects(&MinSplit::<T>::get()), Error::<T>::SplitBelowMinimum);
			Models::<T>::try_mutate(model, |m| -> DispatchResult {
				let m = m.as_mut().ok_or(Error::<T>::UnknownModel)?;
				ensure!(m.owner == who, Error::<T>::NotOwner);
				if m.split != split {
					Self::keep_previous_terms(model, m)?;
					m.split = split;
				}
				Ok(())
			})?;
			Self::deposit_event(Event::SplitSet { model, split });
			Ok(())
		}

		/// Hands the model to another account (owner only).
		#[pallet::call_index(6)]
		pub fn transfer_ownership(origin: OriginFor<T>, model: ModelId, new_owner: T::AccountId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Models::<T>::try_mutate(model, |m| -> DispatchResult {
				let m = m.as_mut().ok_or(Error::<T>::UnknownModel)?;
				ensure!(m.owner == who, Error::<T>::NotOwner);
				m.owner = new_owner.clone();
				Ok(())
			})?;
			ModelsByOwner::<T>::remove(&who, model);
			ModelsByOwner::<T>::insert(&new_owner, model, ());
			Self::deposit_event(Event::OwnershipTransferred { model, from: who, to: new_owner });
			Ok(())
		}

		/// Sets the minimum share of each party in revenue splits set from now on (governance).
		#[pallet::call_index(7)]
		pub fn set_min_split(origin: OriginFor<T>, min: RevenueSplit) -> DispatchResult {
			T::GovernanceOrigin::ensure_origin(origin)?;
			let total: u64 = [min.owner, min.data, min.worker, min.treasury]
				.iter()
				.map(|p| p.deconstruct() as u64)
				.sum();
			ensure!(total <= Perbill::one().deconstruct() as u64, Error::<T>::MinSplitTooHigh);
			// New models get the default split: it must stay within the minimum.
			ensure!(T::DefaultSplit::get().respects(&min), Error::<T>::MinSplitTooHigh);
			MinSplit::<T>::put(min);
			Self::deposit_event(Event::MinSplitSet { min });
			Ok(())
		}
	}

	impl<T: Config> Pallet<T> {
		/// Validates a version's fields and lineage.
		fn new_version(
			weights_hash: H256,
			uri: Vec<u8>,
			lineage: LineageOf<T>,
			training_config_hash: H256,
			lineage_required: bool,
		) -> Result<VersionInfo<T>, DispatchError> {
			ensure!(!ByWeightsHash::<T>::contains_key(weights_hash), Error::<T>::DuplicateWeights);
			let uri = uri.try_into().map_err(|_| Error::<T>::TooLong)?;
			ensure!(!lineage_required || !lineage.is_empty(), Error::<T>::EmptyLineage);
			let mut total: u64 = 0;
			for (i, e) in lineage.iter().enumerate() {
				ensure!(T::Snapshots::snapshot_exists(e.datanet, e.version), Error::<T>::UnknownSnapshot);
				ensure!(
					!lineage[..i].iter().any(|o| o.datanet == e.datanet && o.version == e.version),
					Error::<T>::DuplicateLineage
				);
				total += e.weight.deconstruct() as u64;
			}
			ensure!(
				lineage.is_empty() || total == Perbill::one().deconstruct() as u64,
				Error::<T>::BadLineageWeights
			);
			let lineage = lineage.try_into().map_err(|_| Error::<T>::TooLong)?;
			Ok(VersionInfo {
				weights_hash,
				uri,
				lineage,
				training_config_hash,
				deprecated: false,
				published_at: frame_system::Pallet::<T>::block_number(),
			})
		}

		/// Keeps `m`'s current price and split valid for [`Config::TermsGrace`] blocks, for
		/// vouchers signed under them, next to earlier ones still in their grace; refuses a change
		/// when [`MAX_PREVIOUS_TERMS`] are (no voucher a worker served may lose its terms).
		fn keep_previous_terms(model: ModelId, m: &ModelInfo<T>) -> DispatchResult {
			let now = frame_system::Pallet::<T>::block_number();
			let until = sp_runtime::Saturating::saturating_add(now, T::TermsGrace::get());
			PreviousTerms::<T>::try_mutate(model, |kept| {
				kept.retain(|(_, _, u)| *u >= now);
				kept.try_push((m.pricing, m.split, until)).map_err(|_| Error::<T>::TooManyTermsChanges.into())
			})
		}

		fn charge(who: &T::AccountId, fee: BalanceOf<T>) -> DispatchResult {
			if !fee.is_zero() {
				T::Currency::transfer(who, &T::FeeDestination::get(), fee, Preservation::Preserve)?;
			}
			Ok(())
		}

		fn index_version(model: ModelId, version: ModelVersion, v: &VersionInfo<T>) {
			ByWeightsHash::<T>::insert(v.weights_hash, (model, version));
			for e in v.lineage.iter() {
				ModelsByDatanet::<T>::insert(e.datanet, model, ());
			}
		}

		fn insert_model(
			owner: T::AccountId,
			name: Vec<u8>,
			license: Vec<u8>,
			kind: ModelKind<T>,
			version: VersionInfo<T>,
		) -> Result<(ModelId, BalanceOf<T>), DispatchError> {
			ensure!(!name.is_empty(), Error::<T>::EmptyName);
			let name = name.try_into().map_err(|_| Error::<T>::TooLong)?;
			let license = license.try_into().map_err(|_| Error::<T>::TooLong)?;
			let model = NextModelId::<T>::get();
			let next = model.checked_add(1).ok_or(Error::<T>::Overflow)?;
			let fee = T::RegistrationFee::get();
			Self::charge(&owner, fee)?;
			Self::index_version(model, 1, &version);
			Versions::<T>::insert(model, 1, version);
			ModelsByOwner::<T>::insert(&owner, model, ());
			Models::<T>::insert(
				model,
				ModelInfo {
					owner,
					name,
					license,
					kind,
					pricing: Pricing::default(),
					split: T::DefaultSplit::get(),
					latest_version: 1,
					created_at: frame_system::Pallet::<T>::block_number(),
				},
			);
			NextModelId::<T>::put(next);
			Ok((model, fee))
		}
	}
}

impl<T: Config> openledger_primitives::ModelRegistry for Pallet<T> {
	fn model_exists(id: ModelId) -> bool {
		Models::<T>::contains_key(id)
	}
}

impl<T: Config> Pallet<T> {
	/// A page of model ids from a listing index after `after` (exclusive), at most `limit`.
	fn page<I: Iterator<Item = ModelId>>(ids: I, limit: u32) -> Vec<ModelId> {
		ids.take(limit.min(MAX_PAGE) as usize).collect()
	}

	/// Models owned by `who`.
	pub fn models_of_owner(who: &T::AccountId, after: Option<ModelId>, limit: u32) -> Vec<ModelId> {
		match after {
			None => Self::page(ModelsByOwner::<T>::iter_key_prefix(who), limit),
			Some(a) => Self::page(
				ModelsByOwner::<T>::iter_key_prefix_from(who, ModelsByOwner::<T>::hashed_key_for(who, a)),
				limit,
			),
		}
	}

	/// Adapters of base model `base`.
	pub fn adapters_of_base(base: ModelId, after: Option<ModelId>, limit: u32) -> Vec<ModelId> {
		match after {
			None => Self::page(AdaptersByBase::<T>::iter_key_prefix(base), limit),
			Some(a) => Self::page(
				AdaptersByBase::<T>::iter_key_prefix_from(base, AdaptersByBase::<T>::hashed_key_for(base, a)),
				limit,
			),
		}
	}

	/// Models trained on `datanet`.
	pub fn models_of_datanet(datanet: DatanetId, after: Option<ModelId>, limit: u32) -> Vec<ModelId> {
		match after {
			None => Self::page(ModelsByDatanet::<T>::iter_key_prefix(datanet), limit),
			Some(a) => Self::page(
				ModelsByDatanet::<T>::iter_key_prefix_from(datanet, ModelsByDatanet::<T>::hashed_key_for(datanet, a)),
				limit,
			),
		}
	}

	/// A model with all its versions.
	pub fn model_with_versions(model: ModelId) -> Option<(ModelInfo<T>, Vec<(ModelVersion, VersionInfo<T>)>)> {
		let info = Models::<T>::get(model)?;
		let versions = (1..=info.latest_version).filter_map(|v| Versions::<T>::get(model, v).map(|x| (v, x))).collect();
		Some((info, versions))
	}

	/// Checks: versions are 1..=latest; every weights hash, owner, base and Datanet index entry
	/// matches the records; splits are complete.
	pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
		use frame_support::ensure;
		for (id, m) in Models::<T>::iter() {
			ensure!(m.split.is_complete(), "incomplete revenue split");
			ensure!(ModelsByOwner::<T>::contains_key(&m.owner, id), "owner index missing");
			ensure!(
				Versions::<T>::iter_prefix(id).count() as u32 == m.latest_version,
				"versions are not 1..=latest"
			);
			if let ModelKind::Adapter(spec) = &m.kind {
				ensure!(AdaptersByBase::<T>::contains_key(spec.base, id), "base index missing");
				ensure!(
					matches!(Models::<T>::get(spec.base).map(|b| b.kind), Some(ModelKind::Base { .. })),
					"adapter on a non-base model"
				);
			}
			for (v, info) in Versions::<T>::iter_prefix(id) {
				ensure!(ByWeightsHash::<T>::get(info.weights_hash) == Some((id, v)), "weights index mismatch");
				for e in info.lineage.iter() {
					ensure!(ModelsByDatanet::<T>::contains_key(e.datanet, id), "datanet index missing");
				}
			}
		}
		for (owner, id, ()) in ModelsByOwner::<T>::iter() {
			ensure!(Models::<T>::get(id).map(|m| m.owner) == Some(owner), "stale owner index");
		}
		ensure!(
			ByWeightsHash::<T>::iter().count() == Versions::<T>::iter().count(),
			"stale weights index"
		);
		Ok(())
	}
}
