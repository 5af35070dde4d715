//! # Validator set
//!
//! The chain's block authors (Aura) and finality voters (GRANDPA), changed by governance without a
//! code upgrade. It is the `SessionManager` of `pallet-session`:
//!
//! - `add_validator` / `remove_validator` (the [`Config::ManagerOrigin`]: root, or a referendum on
//!   the validators track) change the set. The set is handed to `pallet-session` at every session
//!   boundary, so a change takes effect one session later (keys are always queued a session ahead).
//! - Only an account with registered session keys (`session.setKeys`, after `author_rotateKeys` on
//!   its node; [`Config::HasKeys`]) can be added. `pallet-session` leaves out members without keys
//!   (e.g. after `session.purgeKeys`) until they register them again.
//! - Offences reported through `pallet-offences` (e.g. a GRANDPA equivocation) remove the offender
//!   from the set, as long as at least [`Config::MinValidators`] members with keys remain.
//!
//! Removals (by governance or offence) never leave fewer than [`Config::MinValidators`] members
//! with session keys, so Aura and GRANDPA always have authorities; the set never grows above
//! [`Config::MaxValidators`].
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;
pub mod weights;
pub use weights::WeightInfo;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use frame_support::{
	pallet_prelude::*,
	traits::{Contains, EnsureOrigin},
	weights::Weight,
};
use sp_runtime::Perbill;
use sp_staking::{
	offence::{OffenceDetails, OnOffenceHandler},
	SessionIndex,
};

/// Sets up what the benchmarks need from the runtime.
#[cfg(feature = "runtime-benchmarks")]
pub trait BenchmarkHelper<AccountId> {
	/// Gives `who` session keys of its own (so that `HasKeys` holds).
	fn register_keys(who: &AccountId);
}

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use frame_system::pallet_prelude::*;

	#[pallet::pallet]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config: frame_system::Config {
		type RuntimeEvent: From<Event<Self>> + IsType<<Self as frame_system::Config>::RuntimeEvent>;
		/// Who may add and remove validators.
		type ManagerOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// The most validators in the set.
		#[pallet::constant]
		type MaxValidators: Get<u32>;
		/// The fewest validators with session keys: removals (by governance or offence) stop there.
		#[pallet::constant]
		type MinValidators: Get<u32>;
		/// Whether an account has registered session keys (`pallet_session::NextKeys`).
		type HasKeys: Contains<Self::AccountId>;
		/// Registers session keys of an account, for benchmarks.
		#[cfg(feature = "runtime-benchmarks")]
		type BenchmarkHelper: BenchmarkHelper<Self::AccountId>;
		type WeightInfo: WeightInfo;
	}

	/// The validators, in the order they were added.
	#[pallet::storage]
	pub type Validators<T: Config> = StorageValue<_, BoundedVec<T::AccountId, T::MaxValidators>, ValueQuery>;

	#[pallet::genesis_config]
	#[derive(frame_support::DefaultNoBound)]
	pub struct GenesisConfig<T: Config> {
		pub validators: Vec<T::AccountId>,
	}

	#[pallet::genesis_build]
	impl<T: Config> BuildGenesisConfig for GenesisConfig<T> {
		fn build(&self) {
			let mut seen = Vec::with_capacity(self.validators.len());
			for v in &self.validators {
				assert!(!seen.contains(v), "a genesis validator is listed twice");
				seen.push(v.clone());
			}
			// An empty set is the default (no chain starts with it: sessions need validators).
			assert!(
				seen.is_empty() || seen.len() as u32 >= T::MinValidators::get(),
				"fewer genesis validators than MinValidators"
			);
			let set: BoundedVec<_, T::MaxValidators> =
				seen.try_into().expect("more genesis validators than MaxValidators");
			Validators::<T>::put(set);
		}
	}

	/// Why a validator left the set.
	#[derive(Clone, Copy, PartialEq, Eq, Encode, Decode, DecodeWithMemTracking, RuntimeDebug, TypeInfo, MaxEncodedLen)]
	pub enum RemovalReason {
		/// Governance removed it.
		Governance,
		/// It was reported for an offence (e.g. a GRANDPA equivocation).
		Offence,
	}

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// `who` joins the set from the session after next.
		ValidatorAdded { who: T::AccountId },
		/// `who` leaves the set from the session after next.
		ValidatorRemoved { who: T::AccountId, reason: RemovalReason },
		/// `who` was reported for an offence but stays: removing it would leave fewer than
		/// `MinValidators` members with session keys.
		OffenderKept { who: T::AccountId },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// Already in the set.
		AlreadyValidator,
		/// Not in the set.
		NotValidator,
		/// The set is full (`MaxValidators`).
		TooManyValidators,
		/// Removing would leave fewer than `MinValidators` members with session keys.
		TooFewValidators,
		/// The account has no session keys: `session.setKeys` first.
		NoSessionKeys,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn integrity_test() {
			assert!(T::MinValidators::get() >= 1, "MinValidators must be at least 1");
			assert!(T::MinValidators::get() <= T::MaxValidators::get(), "MinValidators exceeds MaxValidators");
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call]
	impl<T: Config> Pallet<T> {
		/// Adds `who`, which must have registered session keys, to the set (governance). It
		/// authors from the session after next.
		#[pallet::call_index(0)]
		#[pallet::weight(T::WeightInfo::add_validator())]
		pub fn add_validator(origin: OriginFor<T>, who: T::AccountId) -> DispatchResult {
			T::ManagerOrigin::ensure_origin(origin)?;
			ensure!(T::HasKeys::contains(&who), Error::<T>::NoSessionKeys);
			Validators::<T>::try_mutate(|set| {
				ensure!(!set.contains(&who), Error::<T>::AlreadyValidator);
				set.try_push(who.clone()).map_err(|_| Error::<T>::TooManyValidators)
			})?;
			Self::deposit_event(Event::ValidatorAdded { who });
			Ok(())
		}

		/// Removes `who` from the set (governance), from the session after next.
		#[pallet::call_index(1)]
		#[pallet::weight(T::WeightInfo::remove_validator())]
		pub fn remove_validator(origin: OriginFor<T>, who: T::AccountId) -> DispatchResult {
			T::ManagerOrigin::ensure_origin(origin)?;
			Self::do_remove(&who)?;
			Self::deposit_event(Event::ValidatorRemoved { who, reason: RemovalReason::Governance });
			Ok(())
		}
	}

	impl<T: Config> Pallet<T> {
		pub(crate) fn do_remove(who: &T::AccountId) -> DispatchResult {
			Validators::<T>::try_mutate(|set| {
				let at = set.iter().position(|v| v == who).ok_or(Error::<T>::NotValidator)?;
				let keyed_left = set.iter().filter(|v| *v != who && T::HasKeys::contains(v)).count() as u32;
				ensure!(keyed_left >= T::MinValidators::get(), Error::<T>::TooFewValidators);
				set.remove(at);
				Ok::<_, DispatchError>(())
			})?;
			Ok(())
		}

		/// The set has no duplicates and at least `MinValidators` members.
		pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
			let set = Validators::<T>::get();
			ensure!(set.len() as u32 >= T::MinValidators::get(), "fewer validators than MinValidators");
			for (i, v) in set.iter().enumerate() {
				ensure!(!set[i + 1..].contains(v), "a validator is in the set twice");
			}
			Ok(())
		}
	}
}

impl<T: Config> pallet_session::SessionManager<T::AccountId> for Pallet<T> {
	/// The whole set, every session: members that registered (or rotated) keys since the last
	/// session are picked up, and the historical record of each session holds its current keys
	/// (equivocation proofs are checked against it).
	fn new_session(_new_index: SessionIndex) -> Option<Vec<T::AccountId>> {
		Some(Validators::<T>::get().into_inner())
	}
	fn end_session(_end_index: SessionIndex) {}
	fn start_session(_start_index: SessionIndex) {}
}

/// Validators carry no further identification (no stake backs them) in the historical session
/// record that GRANDPA equivocation proofs are checked against.
impl<T: Config> pallet_session::historical::SessionManager<T::AccountId, ()> for Pallet<T> {
	fn new_session(new_index: SessionIndex) -> Option<Vec<(T::AccountId, ())>> {
		<Self as pallet_session::SessionManager<_>>::new_session(new_index)
			.map(|set| set.into_iter().map(|v| (v, ())).collect())
	}
	fn new_session_genesis(new_index: SessionIndex) -> Option<Vec<(T::AccountId, ())>> {
		<Self as pallet_session::SessionManager<_>>::new_session_genesis(new_index)
			.map(|set| set.into_iter().map(|v| (v, ())).collect())
	}
	fn start_session(_start_index: SessionIndex) {}
	fn end_session(_end_index: SessionIndex) {}
}

/// Offences (through `pallet-offences`) remove the offender from the set, down to `MinValidators`.
/// Validators hold no stake here, so nothing is slashed.
impl<T: Config> OnOffenceHandler<T::AccountId, (T::AccountId, ()), Weight> for Pallet<T> {
	fn on_offence(
		offenders: &[OffenceDetails<T::AccountId, (T::AccountId, ())>],
		_slash_fraction: &[Perbill],
		_session: SessionIndex,
	) -> Weight {
		let db = T::DbWeight::get();
		let mut weight = Weight::zero();
		for details in offenders {
			let who = &details.offender.0;
			// `HasKeys` of each member and the set: at most `MaxValidators + 2` reads, one write.
			weight = weight.saturating_add(db.reads_writes(T::MaxValidators::get() as u64 + 2, 1));
			if !Validators::<T>::get().contains(who) {
				continue;
			}
			match Self::do_remove(who) {
				Ok(()) => Self::deposit_event(Event::ValidatorRemoved { who: who.clone(), reason: RemovalReason::Offence }),
				Err(_) => Self::deposit_event(Event::OffenderKept { who: who.clone() }),
			}
		}
		weight
	}
}
