//! # OPEN staking for inference workers
//!
//! Accounts bond OPEN to become inference **workers**, and other holders **delegate** to them.
//! This is not NPoS validator staking: it secures the attribution economy (receipts signed by
//! workers), not block production.
//!
//! ## Overview
//!
//! - [`Pallet::bond_worker`]: at least [`Config::MinWorkerBond`], a receipt **signing key**
//!   (sr25519 public key, separate from the stash), an endpoint URL, the registered models it
//!   serves and a commission. [`Pallet::update_worker`] changes those; [`Pallet::bond_extra`]
//!   adds stake.
//! - [`Pallet::delegate`] / [`Pallet::undelegate`]: stake behind a worker (at least
//!   [`Config::MinDelegation`], at most [`Config::MaxDelegators`] per worker).
//! - **Unbonding** ([`Pallet::unbond`], [`Pallet::undelegate`]) moves stake into chunks that stay
//!   held, and slashable, for [`UnbondingPeriod`] blocks (set by governance); [`Pallet::rebond`] takes it back;
//!   [`Pallet::withdraw_unbonded`] releases what has matured.
//! - **Slashing** ([`Pallet::slash`] by [`Config::SlashOrigin`], or [`Pallet::do_slash`] from
//!   the attribution pallet): the same fraction of the worker's self-bond, of every delegation to
//!   it and of every unbonding chunk bonded to it goes to [`Config::SlashDestination`] (the
//!   treasury). A slashed worker is never eligible again.
//! - **Rewards** ([`Pallet::accrue_reward`], called by the attribution pallet as each receipt's
//!   worker share vests): the worker takes its commission, then the rest goes to the worker's
//!   **reward pool**, shared by the stake bonded *at that moment* (a reward-per-stake
//!   accumulator, as pallet-nomination-pools does): stake that joins later earns nothing of
//!   it, stake that leaves keeps what it earned. Every stake change settles the position first;
//!   [`Pallet::claim_staking_rewards`] settles and pays out.
//!
//! A worker is **eligible** (may serve and submit receipts) while `Active` with a self-bond of at
//! least the minimum. All stake is a `fungible` hold under [`HoldReason::Staking`]; `try_state`
//! checks that every account's hold equals its stake on record.
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
use frame_support::traits::fungible::{Inspect, Mutate, MutateHold};

/// Balance type of the pallet's currency.
pub type BalanceOf<T> =
	<<T as Config>::Currency as Inspect<<T as frame_system::Config>::AccountId>>::Balance;

/// Fixed-point scale of [`RewardPerStake`].
/// 10²⁷: a position's rounding loss is under one unit per `10²⁷ / stake` of its share.
pub const REWARD_SCALE: u128 = 1_000_000_000_000_000_000_000_000_000;

/// Pays staking rewards out of wherever the runtime holds them (the attribution pot).
pub trait RewardPayer<AccountId, Balance> {
	/// Pays `amount` to `to`.
	fn pay(to: &AccountId, amount: Balance) -> sp_runtime::DispatchResult;
}

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use frame_support::{
		pallet_prelude::*,
		traits::{
			fungible::InspectHold,
			tokens::{Fortitude, Precision, Restriction},
		},
	};
	use frame_system::pallet_prelude::*;
	use openledger_primitives::ModelRegistry;
	use sp_runtime::{
		traits::{SaturatedConversion, Saturating, Zero},
		Perbill,
	};

	const STORAGE_VERSION: StorageVersion = StorageVersion::new(1);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config: frame_system::Config {
		/// The overarching event type.
		type RuntimeEvent: From<Event<Self>> + IsType<<Self as frame_system::Config>::RuntimeEvent>;
		/// The staked currency (OPEN).
		type Currency: Mutate<Self::AccountId>
			+ MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;
		/// The overarching hold reason.
		type RuntimeHoldReason: From<HoldReason>;
		/// Which models exist.
		type Models: ModelRegistry;
		/// Least self-bond of an eligible worker.
		#[pallet::constant]
		type MinWorkerBond: Get<BalanceOf<Self>>;
		/// Least delegation.
		#[pallet::constant]
		type MinDelegation: Get<BalanceOf<Self>>;
		/// Blocks unbonding stake stays held, until governance sets [`UnbondingPeriod`].
		#[pallet::constant]
		type DefaultUnbondingPeriod: Get<BlockNumberFor<Self>>;
		/// The shortest unbonding period governance may set: stake must stay slashable for as
		/// long as a receipt it backs can be challenged (the attribution challenge window).
		#[pallet::constant]
		type MinUnbondingPeriod: Get<BlockNumberFor<Self>>;
		/// May set the unbonding period.
		type GovernanceOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// May slash workers directly (the attribution pallet slashes through
		/// [`Pallet::do_slash`]).
		type SlashOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// Receives slashed stake (the treasury). Must exist.
		type SlashDestination: Get<Self::AccountId>;
		/// Longest endpoint URL.
		#[pallet::constant]
		type MaxEndpointLen: Get<u32>;
		/// Most models one worker serves.
		#[pallet::constant]
		type MaxModelsPerWorker: Get<u32>;
		/// Most delegators of one worker (bounds slashing and reward payouts).
		#[pallet::constant]
		type MaxDelegators: Get<u32>;
		/// Most unbonding chunks of one account.
		#[pallet::constant]
		type MaxUnbondingChunks: Get<u32>;
		/// Blocks before a commission increase takes effect (decreases apply at once): time for
		/// delegators to leave first.
		#[pallet::constant]
		type CommissionChangeDelay: Get<BlockNumberFor<Self>>;
		/// Pays out claimed rewards (the OPEN is held by the attribution pallet's pot until then).
		type RewardPayer: RewardPayer<Self::AccountId, BalanceOf<Self>>;
		/// Weight information for extrinsics in this pallet.
		type WeightInfo: WeightInfo;
		/// Creates models for the benchmarks.
		#[cfg(feature = "runtime-benchmarks")]
		type BenchmarkHelper: BenchmarkHelper<Self>;
	}

	/// Sets up what the benchmarks need from other pallets.
	#[cfg(feature = "runtime-benchmarks")]
	pub trait BenchmarkHelper<T: Config> {
		/// Registers `n` distinct models and returns their ids.
		fn models(n: u32) -> Vec<ModelId>;
		/// Makes `amount` more payable by [`Config::RewardPayer`].
		fn fund_rewards(amount: BalanceOf<T>);
	}

	/// Reasons for holding OPEN.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// Self-bond, delegations and unbonding stake.
		#[codec(index = 0)]
		Staking,
	}

	#[pallet::type_value]
	pub fn UnbondingPeriodDefault<T: Config>() -> BlockNumberFor<T> {
		T::DefaultUnbondingPeriod::get()
	}

	/// Blocks unbonding stake stays held; chunks keep the period they started with.
	#[pallet::storage]
	pub type UnbondingPeriod<T: Config> =
		StorageValue<_, BlockNumberFor<T>, ValueQuery, UnbondingPeriodDefault<T>>;

	/// Workers by stash account.
	#[pallet::storage]
	pub type Workers<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, WorkerInfo<T>>;

	/// Accounts ever slashed as workers, with the block: never workers again, even after their
	/// record is gone (unbonded and withdrawn).
	#[pallet::storage]
	pub type SlashedWorkers<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, BlockNumberFor<T>>;

	/// Worker by signing key (a key belongs to one worker).
	#[pallet::storage]
	pub type SigningKeys<T: Config> = StorageMap<_, Blake2_128Concat, SigningKey, T::AccountId>;

	/// Active delegations: (worker, delegator) → amount.
	#[pallet::storage]
	pub type Delegations<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Blake2_128Concat, T::AccountId, BalanceOf<T>>;

	/// Accounts with unbonding stake bonded to a worker they delegated to: (worker, account).
	/// They stay slashable, and keep their delegator slot, until that stake is withdrawn (or
	/// bonded again), so leaving just before a slash escapes nothing.
	#[pallet::storage]
	pub type Unbonders<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Blake2_128Concat, T::AccountId, ()>;

	/// Open challenges of each worker's receipts: how many, and the earliest settlement block
	/// among them (kept until none is open). While any is open, stake that backed those receipts
	/// (unbonding since that block or later) cannot be withdrawn — it stays slashable until the
	/// verdict — and nobody can delegate to the worker (new stake would pay for a receipt it
	/// never backed). The attribution pallet bounds how long a challenge stays open.
	#[pallet::storage]
	pub type OpenChallenges<T: Config> =
		StorageMap<_, Blake2_128Concat, T::AccountId, (u32, BlockNumberFor<T>), OptionQuery>;

	/// Each worker's reward per unit of stake, ever (scaled by [`REWARD_SCALE`]); only grows.
	#[pallet::storage]
	pub type RewardPerStake<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, u128, ValueQuery>;

	/// A position's share of its worker's pool already accounted for: `stake × RewardPerStake`
	/// (scaled down) when it last changed. Positions: (worker, worker) for the self-bond,
	/// (worker, delegator) for a delegation.
	#[pallet::storage]
	pub type RewardDebt<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Blake2_128Concat, T::AccountId, u128, ValueQuery>;

	/// What each worker's pool holds for its positions, not yet settled to them.
	#[pallet::storage]
	pub type PoolBalance<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, BalanceOf<T>, ValueQuery>;

	/// Settled staking rewards (and commissions) of each account, payable by
	/// [`Pallet::claim_staking_rewards`].
	#[pallet::storage]
	pub type StakingRewards<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, BalanceOf<T>, ValueQuery>;

	/// Unbonding chunks of each account.
	#[pallet::storage]
	pub type Unbonding<T: Config> = StorageMap<
		_,
		Blake2_128Concat,
		T::AccountId,
		BoundedVec<UnbondChunk<T>, T::MaxUnbondingChunks>,
		ValueQuery,
	>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// An account bonded as a worker.
		WorkerBonded { worker: T::AccountId, amount: BalanceOf<T>, signing_key: SigningKey },
		/// A worker changed its key, endpoint, models or commission.
		WorkerUpdated { worker: T::AccountId },
		/// A worker raised its commission; it applies from block `at`.
		CommissionChangeScheduled { worker: T::AccountId, commission: Perbill, at: BlockNumberFor<T> },
		/// Stake was added (self-bond when `worker == who`, else a delegation).
		Bonded { who: T::AccountId, worker: T::AccountId, amount: BalanceOf<T> },
		/// Stake started unbonding; it can be withdrawn at `unlock_at`.
		Unbonding { who: T::AccountId, worker: T::AccountId, amount: BalanceOf<T>, unlock_at: BlockNumberFor<T> },
		/// Unbonding stake was bonded again.
		Rebonded { who: T::AccountId, worker: T::AccountId, amount: BalanceOf<T> },
		/// Matured unbonding stake was released.
		Withdrawn { who: T::AccountId, amount: BalanceOf<T> },
		/// A worker (and pro rata its delegators) was slashed; `amount` went to the treasury.
		Slashed { worker: T::AccountId, fraction: Perbill, amount: BalanceOf<T> },
		/// Governance set the unbonding period.
		UnbondingPeriodSet { blocks: BlockNumberFor<T> },
		/// A reward entered a worker's pool: `commission` to the worker, `shared` by the stake
		/// bonded now.
		RewardAccrued { worker: T::AccountId, total: BalanceOf<T>, commission: BalanceOf<T>, shared: BalanceOf<T> },
		/// Staking rewards were paid out.
		StakingRewardsClaimed { who: T::AccountId, amount: BalanceOf<T> },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// The account is already a worker.
		AlreadyWorker,
		/// No worker with this account.
		UnknownWorker,
		/// Below the minimum worker bond.
		BondTooLow,
		/// Below the minimum delegation.
		DelegationTooLow,
		/// The signing key belongs to another worker.
		SigningKeyInUse,
		/// A served model is not registered.
		UnknownModel,
		/// The worker is slashed or idle and takes no delegations.
		NotEligible,
		/// The worker has the most delegators allowed.
		TooManyDelegators,
		/// A worker cannot delegate to itself.
		SelfDelegation,
		/// No such delegation, or less than asked.
		NotEnoughStake,
		/// Too many unbonding chunks: withdraw matured ones first.
		TooManyChunks,
		/// Nothing to rebond for this worker.
		NothingToRebond,
		/// Nothing has matured yet.
		NothingToWithdraw,
		/// A slashed worker cannot do this.
		WorkerSlashed,
		/// Shorter than [`Config::MinUnbondingPeriod`].
		UnbondingTooShort,
		/// No staking rewards to claim.
		NothingToClaim,
		/// A receipt of the worker is challenged: its stake stays until the verdict, and it
		/// takes no new delegations.
		ChallengeOpen,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn integrity_test() {
			assert!(!T::MinWorkerBond::get().is_zero(), "MinWorkerBond must be positive");
			assert!(
				T::DefaultUnbondingPeriod::get() >= T::MinUnbondingPeriod::get(),
				"DefaultUnbondingPeriod must be at least MinUnbondingPeriod"
			);
			assert!(T::MaxUnbondingChunks::get() > 0, "MaxUnbondingChunks must be positive");
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call(weight(<T as Config>::WeightInfo))]
	impl<T: Config> Pallet<T> {
		/// Bonds `amount` and registers the caller as a worker.
		#[pallet::call_index(0)]
		pub fn bond_worker(
			origin: OriginFor<T>,
			amount: BalanceOf<T>,
			signing_key: SigningKey,
			endpoint: BoundedVec<u8, T::MaxEndpointLen>,
			models: BoundedVec<ModelId, T::MaxModelsPerWorker>,
			commission: Perbill,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(!Workers::<T>::contains_key(&who), Error::<T>::AlreadyWorker);
			ensure!(!SlashedWorkers::<T>::contains_key(&who), Error::<T>::WorkerSlashed);
			ensure!(amount >= T::MinWorkerBond::get(), Error::<T>::BondTooLow);
			ensure!(!SigningKeys::<T>::contains_key(signing_key), Error::<T>::SigningKeyInUse);
			Self::check_models(&models)?;
			T::Currency::hold(&HoldReason::Staking.into(), &who, amount)?;
			Self::stake_changed(&who, &who, Zero::zero(), amount);
			SigningKeys::<T>::insert(signing_key, &who);
			Workers::<T>::insert(
				&who,
				WorkerInfo {
					signing_key,
					endpoint,
					models,
					self_bond: amount,
					delegated: Zero::zero(),
					delegators: 0,
					commission,
					pending_commission: None,
					status: WorkerStatus::Active,
					registered_at: frame_system::Pallet::<T>::block_number(),
				},
			);
			Self::deposit_event(Event::WorkerBonded { worker: who, amount, signing_key });
			Ok(())
		}

		/// Changes the caller's signing key, endpoint, served models or commission (`None` keeps).
		/// A lower commission applies at once; a higher one after
		/// [`Config::CommissionChangeDelay`] blocks (until then the current one stays).
		#[pallet::call_index(1)]
		pub fn update_worker(
			origin: OriginFor<T>,
			signing_key: Option<SigningKey>,
			endpoint: Option<BoundedVec<u8, T::MaxEndpointLen>>,
			models: Option<BoundedVec<ModelId, T::MaxModelsPerWorker>>,
			commission: Option<Perbill>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut w = Workers::<T>::get(&who).ok_or(Error::<T>::UnknownWorker)?;
			let now = frame_system::Pallet::<T>::block_number();
			w.apply_due_commission(now);
			if let Some(key) = signing_key {
				if key != w.signing_key {
					ensure!(!SigningKeys::<T>::contains_key(key), Error::<T>::SigningKeyInUse);
					SigningKeys::<T>::remove(w.signing_key);
					SigningKeys::<T>::insert(key, &who);
					w.signing_key = key;
				}
			}
			if let Some(e) = endpoint {
				w.endpoint = e;
			}
			if let Some(m) = models {
				Self::check_models(&m)?;
				w.models = m;
			}
			let mut scheduled = None;
			if let Some(c) = commission {
				if c <= w.commission {
					w.commission = c;
					w.pending_commission = None;
				} else {
					let at = now.saturating_add(T::CommissionChangeDelay::get());
					w.pending_commission = Some((c, at));
					scheduled = Some((c, at));
				}
			}
			Workers::<T>::insert(&who, w);
			if let Some((commission, at)) = scheduled {
				Self::deposit_event(Event::CommissionChangeScheduled { worker: who.clone(), commission, at });
			}
			Self::deposit_event(Event::WorkerUpdated { worker: who });
			Ok(())
		}

		/// Adds `amount` to the caller's self-bond (an idle worker becomes active again once at
		/// the minimum).
		#[pallet::call_index(2)]
		pub fn bond_extra(origin: OriginFor<T>, amount: BalanceOf<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut w = Workers::<T>::get(&who).ok_or(Error::<T>::UnknownWorker)?;
			ensure!(w.status != WorkerStatus::Slashed, Error::<T>::WorkerSlashed);
			T::Currency::hold(&HoldReason::Staking.into(), &who, amount)?;
			Self::stake_changed(&who, &who, w.self_bond, w.self_bond.saturating_add(amount));
			w.self_bond = w.self_bond.saturating_add(amount);
			if w.status == WorkerStatus::Idle && w.self_bond >= T::MinWorkerBond::get() {
				w.status = WorkerStatus::Active;
			}
			Workers::<T>::insert(&who, w);
			Self::deposit_event(Event::Bonded { who: who.clone(), worker: who, amount });
			Ok(())
		}

		/// Starts unbonding `amount` of the caller's self-bond. What remains must be zero (the
		/// worker goes idle) or at least the minimum.
		#[pallet::call_index(3)]
		pub fn unbond(origin: OriginFor<T>, amount: BalanceOf<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut w = Workers::<T>::get(&who).ok_or(Error::<T>::UnknownWorker)?;
			ensure!(!amount.is_zero() && amount <= w.self_bond, Error::<T>::NotEnoughStake);
			let left = w.self_bond - amount;
			ensure!(left.is_zero() || left >= T::MinWorkerBond::get(), Error::<T>::BondTooLow);
			let unlock_at = Self::push_chunk(&who, &who, amount)?;
			Self::stake_changed(&who, &who, w.self_bond, left);
			w.self_bond = left;
			if left.is_zero() && w.status == WorkerStatus::Active {
				w.status = WorkerStatus::Idle;
			}
			Workers::<T>::insert(&who, w);
			Self::deposit_event(Event::Unbonding { who: who.clone(), worker: who, amount, unlock_at });
			Ok(())
		}

		/// Delegates `amount` to an eligible worker.
		#[pallet::call_index(4)]
		pub fn delegate(origin: OriginFor<T>, worker: T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			ensure!(who != worker, Error::<T>::SelfDelegation);
			let mut w = Workers::<T>::get(&worker).ok_or(Error::<T>::UnknownWorker)?;
			ensure!(Self::is_eligible_info(&w), Error::<T>::NotEligible);
			ensure!(!OpenChallenges::<T>::contains_key(&worker), Error::<T>::ChallengeOpen);
			let current = Delegations::<T>::get(&worker, &who);
			let new = current.unwrap_or_default().saturating_add(amount);
			ensure!(new >= T::MinDelegation::get(), Error::<T>::DelegationTooLow);
			// An account still unbonding from this worker keeps its slot.
			if current.is_none() && !Unbonders::<T>::contains_key(&worker, &who) {
				ensure!(w.delegators < T::MaxDelegators::get(), Error::<T>::TooManyDelegators);
				w.delegators += 1;
			}
			T::Currency::hold(&HoldReason::Staking.into(), &who, amount)?;
			Self::stake_changed(&worker, &who, current.unwrap_or_default(), new);
			Delegations::<T>::insert(&worker, &who, new);
			w.delegated = w.delegated.saturating_add(amount);
			Workers::<T>::insert(&worker, w);
			Self::deposit_event(Event::Bonded { who, worker, amount });
			Ok(())
		}

		/// Starts unbonding `amount` of the caller's delegation to `worker`. What remains must be
		/// zero or at least the minimum delegation.
		#[pallet::call_index(5)]
		pub fn undelegate(origin: OriginFor<T>, worker: T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut w = Workers::<T>::get(&worker).ok_or(Error::<T>::UnknownWorker)?;
			let current = Delegations::<T>::get(&worker, &who).ok_or(Error::<T>::NotEnoughStake)?;
			ensure!(!amount.is_zero() && amount <= current, Error::<T>::NotEnoughStake);
			let left = current - amount;
			ensure!(left.is_zero() || left >= T::MinDelegation::get(), Error::<T>::DelegationTooLow);
			let unlock_at = Self::push_chunk(&who, &worker, amount)?;
			Self::stake_changed(&worker, &who, current, left);
			// Slashable, and holding its slot, until withdrawn.
			Unbonders::<T>::insert(&worker, &who, ());
			if left.is_zero() {
				Delegations::<T>::remove(&worker, &who);
			} else {
				Delegations::<T>::insert(&worker, &who, left);
			}
			w.delegated = w.delegated.saturating_sub(amount);
			Workers::<T>::insert(&worker, w);
			Self::deposit_event(Event::Unbonding { who, worker, amount, unlock_at });
			Ok(())
		}

		/// Bonds back up to `amount` of the caller's unbonding stake for `worker` (the caller
		/// itself for its self-bond), newest chunks first.
		#[pallet::call_index(6)]
		pub fn rebond(origin: OriginFor<T>, worker: T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let mut w = Workers::<T>::get(&worker).ok_or(Error::<T>::UnknownWorker)?;
			ensure!(w.status != WorkerStatus::Slashed, Error::<T>::WorkerSlashed);
			let mut chunks = Unbonding::<T>::get(&who);
			let mut left = amount;
			for i in (0..chunks.len()).rev() {
				if left.is_zero() {
					break;
				}
				if chunks[i].worker != worker {
					continue;
				}
				let take = left.min(chunks[i].amount);
				chunks[i].amount -= take;
				left -= take;
				if chunks[i].amount.is_zero() {
					chunks.remove(i);
				}
			}
			let rebonded = amount - left;
			ensure!(!rebonded.is_zero(), Error::<T>::NothingToRebond);
			if worker == who {
				Self::stake_changed(&who, &who, w.self_bond, w.self_bond.saturating_add(rebonded));
				w.self_bond = w.self_bond.saturating_add(rebonded);
				if w.status == WorkerStatus::Idle && w.self_bond >= T::MinWorkerBond::get() {
					w.status = WorkerStatus::Active;
				}
			} else {
				// It held unbonding stake for this worker, so it holds its slot already.
				let current = Delegations::<T>::get(&worker, &who).unwrap_or_default();
				let new = current.saturating_add(rebonded);
				ensure!(new >= T::MinDelegation::get(), Error::<T>::DelegationTooLow);
				Self::stake_changed(&worker, &who, current, new);
				Delegations::<T>::insert(&worker, &who, new);
				w.delegated = w.delegated.saturating_add(rebonded);
				if !chunks.iter().any(|c| c.worker == worker) {
					Unbonders::<T>::remove(&worker, &who);
				}
			}
			Unbonding::<T>::insert(&who, chunks);
			Workers::<T>::insert(&worker, w);
			Self::deposit_event(Event::Rebonded { who, worker, amount: rebonded });
			Ok(())
		}

		/// Releases every unbonding chunk of the caller that has matured.
		#[pallet::call_index(7)]
		pub fn withdraw_unbonded(origin: OriginFor<T>) -> DispatchResult {
			let who = ensure_signed(origin)?;
			let now = frame_system::Pallet::<T>::block_number();
			let mut chunks = Unbonding::<T>::get(&who);
			let mut amount: BalanceOf<T> = Zero::zero();
			let mut matured: Vec<T::AccountId> = Vec::new();
			let mut frozen = false;
			chunks.retain(|c| {
				if c.unlock_at > now {
					return true;
				}
				// Stake that backed a challenged receipt of its worker waits for the verdict.
				if OpenChallenges::<T>::get(&c.worker).is_some_and(|(_, since)| c.since >= since) {
					frozen = true;
					return true;
				}
				amount = amount.saturating_add(c.amount);
				matured.push(c.worker.clone());
				false
			});
			ensure!(!matured.is_empty(), if frozen { Error::<T>::ChallengeOpen } else { Error::<T>::NothingToWithdraw });
			// Workers it no longer has unbonding stake for: it leaves their slots (unless it still
			// delegates to them).
			matured.sort();
			matured.dedup();
			for worker in matured.iter().filter(|w| **w != who && !chunks.iter().any(|c| c.worker == **w)) {
				Unbonders::<T>::remove(worker, &who);
				if !Delegations::<T>::contains_key(worker, &who) {
					Workers::<T>::mutate(worker, |w| {
						if let Some(w) = w {
							w.delegators = w.delegators.saturating_sub(1);
						}
					});
				}
			}
			T::Currency::release(&HoldReason::Staking.into(), &who, amount, Precision::Exact)?;
			if chunks.is_empty() {
				Unbonding::<T>::remove(&who);
			} else {
				Unbonding::<T>::insert(&who, chunks);
			}
			// A fully unbonded, withdrawn worker with no delegators leaves the registry.
			if let Some(w) = Workers::<T>::get(&who) {
				if w.self_bond.is_zero() && w.delegators == 0 && !Unbonding::<T>::contains_key(&who) {
					SigningKeys::<T>::remove(w.signing_key);
					Workers::<T>::remove(&who);
					// Every position has left and been settled: rounding dust left in the pool
					// is the worker's.
					let dust = PoolBalance::<T>::take(&who);
					if !dust.is_zero() {
						StakingRewards::<T>::mutate(&who, |r| *r = r.saturating_add(dust));
					}
					RewardPerStake::<T>::remove(&who);
				}
			}
			Self::deposit_event(Event::Withdrawn { who, amount });
			Ok(())
		}

		/// Slashes `fraction` of a worker's stake and, pro rata, of its delegators' (governance).
		/// Refunds the weight of delegators it did not have.
		#[pallet::call_index(8)]
		#[pallet::weight(<T as Config>::WeightInfo::slash(T::MaxDelegators::get()))]
		pub fn slash(origin: OriginFor<T>, worker: T::AccountId, fraction: Perbill) -> DispatchResultWithPostInfo {
			T::SlashOrigin::ensure_origin(origin)?;
			let (delegators, _, _) = Self::do_slash(&worker, fraction, None)?;
			Ok(Some(<T as Config>::WeightInfo::slash(delegators)).into())
		}

		/// Settles the caller's position in `worker`'s reward pool (its self-bond when it is the
		/// worker, else its delegation) and pays out all its settled staking rewards, free of fees
		/// when it pays at least the existential deposit.
		#[pallet::call_index(10)]
		pub fn claim_staking_rewards(origin: OriginFor<T>, worker: T::AccountId) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			let stake = Self::position_stake(&worker, &who);
			if !stake.is_zero() {
				Self::stake_changed(&worker, &who, stake, stake);
			}
			let amount = StakingRewards::<T>::take(&who);
			ensure!(!amount.is_zero(), Error::<T>::NothingToClaim);
			T::RewardPayer::pay(&who, amount)?;
			Self::deposit_event(Event::StakingRewardsClaimed { who, amount });
			// Free when it pays at least the existential deposit (a delegator's rewards are small;
			// a fee could exceed them). Smaller amounts are charged, so that one vesting into a
			// pool of many tiny delegations cannot buy as many free calls: they keep accruing
			// in the pool and can be claimed for free once they reach it.
			Ok(if amount >= T::Currency::minimum_balance() { Pays::No } else { Pays::Yes }.into())
		}

		/// Sets the unbonding period for stake that starts unbonding from now on (governance).
		#[pallet::call_index(9)]
		pub fn set_unbonding_period(origin: OriginFor<T>, blocks: BlockNumberFor<T>) -> DispatchResult {
			T::GovernanceOrigin::ensure_origin(origin)?;
			ensure!(blocks >= T::MinUnbondingPeriod::get(), Error::<T>::UnbondingTooShort);
			UnbondingPeriod::<T>::put(blocks);
			Self::deposit_event(Event::UnbondingPeriodSet { blocks });
			Ok(())
		}
	}

	impl<T: Config> Pallet<T> {
		fn check_models(models: &[ModelId]) -> Result<(), DispatchError> {
			for m in models {
				ensure!(T::Models::model_exists(*m), Error::<T>::UnknownModel);
			}
			Ok(())
		}

		fn push_chunk(who: &T::AccountId, worker: &T::AccountId, amount: BalanceOf<T>) -> Result<BlockNumberFor<T>, DispatchError> {
			let now = frame_system::Pallet::<T>::block_number();
			let unlock_at = now.saturating_add(UnbondingPeriod::<T>::get());
			Unbonding::<T>::try_mutate(who, |chunks| {
				chunks
					.try_push(UnbondChunk { worker: worker.clone(), amount, unlock_at, since: now })
					.map_err(|_| Error::<T>::TooManyChunks)
			})?;
			Ok(unlock_at)
		}

		fn is_eligible_info(w: &WorkerInfo<T>) -> bool {
			w.status == WorkerStatus::Active && w.self_bond >= T::MinWorkerBond::get()
		}

		/// Whether `worker` may serve and submit receipts.
		pub fn is_eligible(worker: &T::AccountId) -> bool {
			Workers::<T>::get(worker).is_some_and(|w| Self::is_eligible_info(&w))
		}

		/// Whether `worker` is eligible and serves `model`.
		pub fn serves(worker: &T::AccountId, model: ModelId) -> bool {
			Workers::<T>::get(worker).is_some_and(|w| Self::is_eligible_info(&w) && w.models.contains(&model))
		}

		/// Takes `fraction` of `amount` held by `who` to the slash destination.
		fn take(who: &T::AccountId, amount: BalanceOf<T>, fraction: Perbill) -> Result<BalanceOf<T>, DispatchError> {
			let cut = fraction.mul_floor(amount);
			if cut.is_zero() {
				return Ok(cut);
			}
			T::Currency::transfer_on_hold(
				&HoldReason::Staking.into(),
				who,
				&T::SlashDestination::get(),
				cut,
				Precision::Exact,
				Restriction::Free,
				Fortitude::Force,
			)
		}

		/// Slashes `fraction` of the worker's self-bond, of each delegation to it and of each
		/// unbonding chunk bonded to it — with `backing_since`, only chunks that started
		/// unbonding at or after that block (the stake that backed a receipt settled then); marks
		/// it slashed. Returns the number of delegators, the amount slashed from the worker's own
		/// self-bond and the amount slashed in all (everything sent to
		/// [`Config::SlashDestination`]).
		pub fn do_slash(
			worker: &T::AccountId,
			fraction: Perbill,
			backing_since: Option<BlockNumberFor<T>>,
		) -> Result<(u32, BalanceOf<T>, BalanceOf<T>), DispatchError> {
			let mut w = Workers::<T>::get(worker).ok_or(Error::<T>::UnknownWorker)?;
			let mut total: BalanceOf<T> = Zero::zero();
			let cut = Self::take(worker, w.self_bond, fraction)?;
			Self::stake_changed(worker, worker, w.self_bond, w.self_bond - cut);
			w.self_bond -= cut;
			total = total.saturating_add(cut);
			let own = cut;
			let mut delegators = Vec::new();
			for (delegator, amount) in Delegations::<T>::iter_prefix(worker) {
				delegators.push((delegator, amount));
			}
			let mut delegated_cut: BalanceOf<T> = Zero::zero();
			for (delegator, amount) in &delegators {
				let cut = Self::take(delegator, *amount, fraction)?;
				Self::stake_changed(worker, delegator, *amount, *amount - cut);
				Delegations::<T>::insert(worker, delegator, *amount - cut);
				delegated_cut = delegated_cut.saturating_add(cut);
			}
			w.delegated = w.delegated.saturating_sub(delegated_cut);
			total = total.saturating_add(delegated_cut);
			// Unbonding stake bonded to this worker: the worker's own, and that of every account
			// that delegated to it and has not withdrawn (whether or not it still delegates).
			let owners = core::iter::once(worker.clone()).chain(Unbonders::<T>::iter_key_prefix(worker));
			for owner in owners {
				let mut chunks = Unbonding::<T>::get(&owner);
				let mut changed = false;
				for c in chunks.iter_mut().filter(|c| c.worker == *worker && backing_since.is_none_or(|b| c.since >= b)) {
					let cut = Self::take(&owner, c.amount, fraction)?;
					c.amount -= cut;
					total = total.saturating_add(cut);
					changed = true;
				}
				if changed {
					Unbonding::<T>::insert(&owner, chunks);
				}
			}
			w.status = WorkerStatus::Slashed;
			SlashedWorkers::<T>::insert(worker, frame_system::Pallet::<T>::block_number());
			let n = w.delegators;
			Workers::<T>::insert(worker, w);
			Self::deposit_event(Event::Slashed { worker: worker.clone(), fraction, amount: total });
			Ok((n, own, total))
		}

		/// A receipt of `worker` settled at `settled_at` was challenged: the stake that backed it
		/// stays until the verdict.
		pub fn challenge_opened(worker: &T::AccountId, settled_at: BlockNumberFor<T>) {
			OpenChallenges::<T>::mutate(worker, |open| {
				*open = Some(match *open {
					Some((n, since)) => (n.saturating_add(1), since.min(settled_at)),
					None => (1, settled_at),
				});
			});
		}

		/// A challenge of `worker`'s receipt was judged.
		pub fn challenge_closed(worker: &T::AccountId) {
			OpenChallenges::<T>::mutate_exists(worker, |open| {
				*open = open.and_then(|(n, since)| n.checked_sub(1).filter(|n| *n > 0).map(|n| (n, since)));
			});
		}

		/// `stake × acc`, scaled down, rounded down (what a position has earned in all).
		fn pool_share(stake: BalanceOf<T>, acc: u128) -> u128 {
			let product = sp_core::U256::from(stake.saturated_into::<u128>()) * sp_core::U256::from(acc);
			(product / sp_core::U256::from(REWARD_SCALE)).try_into().unwrap_or(u128::MAX)
		}

		/// `stake × acc`, scaled down, rounded **up**: a position's debt. Earned (rounded down)
		/// minus debt (rounded up) never exceeds `stake × Δacc`, so what a pool's positions can
		/// claim never exceeds what entered the pool.
		fn pool_debt(stake: BalanceOf<T>, acc: u128) -> u128 {
			let product = sp_core::U256::from(stake.saturated_into::<u128>()) * sp_core::U256::from(acc);
			let scale = sp_core::U256::from(REWARD_SCALE);
			((product + scale - 1) / scale).try_into().unwrap_or(u128::MAX)
		}

		/// Settles the position of `who` in `worker`'s pool at its stake `before` (what it earned
		/// since it last changed goes to [`StakingRewards`]), then records its new stake `after`.
		fn stake_changed(worker: &T::AccountId, who: &T::AccountId, before: BalanceOf<T>, after: BalanceOf<T>) {
			let acc = RewardPerStake::<T>::get(worker);
			if acc == 0 {
				// Nothing was ever shared: no debt to keep either.
				return;
			}
			let earned = Self::pool_share(before, acc).saturating_sub(RewardDebt::<T>::get(worker, who));
			if earned > 0 {
				let pool = PoolBalance::<T>::get(worker);
				// Earned rounded down and debt rounded up keep the sum within the pool; the cap is
				// a guard.
				let earned: BalanceOf<T> = earned.saturated_into::<BalanceOf<T>>().min(pool);
				PoolBalance::<T>::insert(worker, pool - earned);
				StakingRewards::<T>::mutate(who, |r| *r = r.saturating_add(earned));
			}
			if after.is_zero() {
				RewardDebt::<T>::remove(worker, who);
			} else {
				RewardDebt::<T>::insert(worker, who, Self::pool_debt(after, acc));
			}
		}

		/// A reward for `worker`'s service (its share of a vested receipt): its commission (at
		/// the rate in force now) is settled to it, the rest enters its pool and is shared by the
		/// stake bonded now. A worker whose record is gone, or with no stake, gets it whole.
		/// The OPEN itself stays where the caller holds it until claimed.
		pub fn accrue_reward(worker: &T::AccountId, amount: BalanceOf<T>) {
			let credit = |who: &T::AccountId, a: BalanceOf<T>| {
				if !a.is_zero() {
					StakingRewards::<T>::mutate(who, |r| *r = r.saturating_add(a));
				}
			};
			let Some(w) = Workers::<T>::get(worker) else {
				credit(worker, amount);
				return;
			};
			let commission = w.commission_at(frame_system::Pallet::<T>::block_number()).mul_floor(amount);
			let shared = amount - commission;
			let total = w.self_bond.saturating_add(w.delegated);
			credit(worker, commission);
			if total.is_zero() {
				credit(worker, shared);
			} else if !shared.is_zero() {
				let step = sp_core::U256::from(shared.saturated_into::<u128>()) * sp_core::U256::from(REWARD_SCALE) /
					sp_core::U256::from(total.saturated_into::<u128>());
				let step: u128 = step.try_into().unwrap_or(u128::MAX);
				RewardPerStake::<T>::mutate(worker, |acc| *acc = acc.saturating_add(step));
				PoolBalance::<T>::mutate(worker, |p| *p = p.saturating_add(shared));
			}
			Self::deposit_event(Event::RewardAccrued { worker: worker.clone(), total: amount, commission, shared });
		}

		/// The active stake of `who`'s position in `worker`'s pool: its self-bond when it is the
		/// worker, else its delegation (zero when it has none).
		fn position_stake(worker: &T::AccountId, who: &T::AccountId) -> BalanceOf<T> {
			if who == worker {
				Workers::<T>::get(worker).map(|w| w.self_bond).unwrap_or_default()
			} else {
				Delegations::<T>::get(worker, who).unwrap_or_default()
			}
		}

		/// What a position could claim now (settled rewards not included).
		pub fn pending_reward(worker: &T::AccountId, who: &T::AccountId) -> BalanceOf<T> {
			Self::pool_share(Self::position_stake(worker, who), RewardPerStake::<T>::get(worker))
				.saturating_sub(RewardDebt::<T>::get(worker, who))
				.saturated_into()
		}

		/// All staking rewards owed, settled or still in pools (what [`Config::RewardPayer`] must
		/// be able to pay).
		pub fn rewards_owed() -> BalanceOf<T> {
			StakingRewards::<T>::iter_values()
				.chain(PoolBalance::<T>::iter_values())
				.fold(Zero::zero(), |a: BalanceOf<T>, b| a.saturating_add(b))
		}

		/// Checks: every account's staking hold equals its self-bond, delegations and unbonding
		/// chunks; worker totals match their delegations; signing keys point at their workers.
		pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
			use alloc::collections::btree_map::BTreeMap;
			let mut expected: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
			let mut add = |who: &T::AccountId, amount: BalanceOf<T>| {
				let e = expected.entry(who.clone()).or_insert_with(Zero::zero);
				*e = e.saturating_add(amount);
			};
			for (worker, w) in Workers::<T>::iter() {
				add(&worker, w.self_bond);
				ensure!(SigningKeys::<T>::get(w.signing_key) == Some(worker.clone()), "signing key index mismatch");
				let (mut sum, mut n) = (BalanceOf::<T>::zero(), 0u32);
				for (delegator, amount) in Delegations::<T>::iter_prefix(&worker) {
					add(&delegator, amount);
					sum = sum.saturating_add(amount);
					if !Unbonders::<T>::contains_key(&worker, &delegator) {
						n += 1;
					}
				}
				n += Unbonders::<T>::iter_key_prefix(&worker).count() as u32;
				ensure!(sum == w.delegated, "delegated total mismatch");
				ensure!(n == w.delegators, "delegator count (delegating or unbonding) mismatch");
			}
			for (who, chunks) in Unbonding::<T>::iter() {
				for c in chunks.iter() {
					add(&who, c.amount);
					ensure!(
						c.worker == who || Unbonders::<T>::contains_key(&c.worker, &who),
						"unbonding delegated stake not indexed for slashing"
					);
				}
			}
			for (worker, who) in Unbonders::<T>::iter_keys() {
				ensure!(
					Unbonding::<T>::get(&who).iter().any(|c| c.worker == worker),
					"an unbonder index entry without unbonding stake"
				);
			}
			ensure!(SigningKeys::<T>::iter().count() == Workers::<T>::iter().count(), "stale signing keys");
			// Reward pools: what a pool's positions could claim never exceeds what it holds; debts
			// belong to live positions; pools belong to workers.
			for (worker, pool) in PoolBalance::<T>::iter() {
				ensure!(Workers::<T>::contains_key(&worker), "a reward pool without its worker");
				let mut claimable: BalanceOf<T> = Self::pending_reward(&worker, &worker);
				for (delegator, _) in Delegations::<T>::iter_prefix(&worker) {
					claimable = claimable.saturating_add(Self::pending_reward(&worker, &delegator));
				}
				ensure!(claimable <= pool, "a pool owes its positions more than it holds");
			}
			for (worker, who, _) in RewardDebt::<T>::iter() {
				ensure!(!Self::position_stake(&worker, &who).is_zero(), "a reward debt without its position");
			}
			let reason: T::RuntimeHoldReason = HoldReason::Staking.into();
			for (who, amount) in expected {
				ensure!(T::Currency::balance_on_hold(&reason, &who) == amount, "staking hold differs from record");
			}
			Ok(())
		}
	}
}
