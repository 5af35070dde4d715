//! # Datanets pallet
//!
//! A **Datanet** is a living, community-built dataset whose every piece keeps its provenance: who
//! supplied it, whether curators accepted it, and which frozen version (snapshot) a model was
//! trained on — so that rewards can flow back to the contributor long after.
//!
//! ## Overview
//!
//! - [`Pallet::create_datanet`]: an owner opens a Datanet with a name, a metadata URI, a license
//!   tag, a curation mode ([`CurationMode::Open`] or [`CurationMode::Curated`]) and the deposit
//!   each contribution must hold ([`DepositPolicy`]: base + per byte of the on-chain record, at
//!   least the chain's minimums). The owner holds [`Config::DatanetDeposit`] for the record.
//! - The owner updates metadata ([`Pallet::update_metadata`]), adds and removes curators, and may
//!   [`Pallet::archive`] the Datanet (no new contributions, ever).
//! - [`Pallet::contribute`]: anyone submits a content hash (blake2-256 of the canonical bytes),
//!   its size and token count, an off-chain URI and an optional license / metadata. The same hash
//!   twice in one Datanet is refused: the first contributor keeps it. Open Datanets accept at
//!   once; curated ones start pending.
//! - [`Pallet::accept`] / [`Pallet::reject`] by a curator (or the owner) with a reason code.
//! - [`Pallet::withdraw`]: a contributor takes back a contribution that no snapshot contains yet.
//! - [`Pallet::snapshot`]: the owner or a curator freezes the accepted list into version
//!   `latest + 1` with a binary Merkle root (see [`merkle`]). A contribution is referenced by
//!   models as `(datanet, version, leaf index)` and proven with a Merkle path.
//!
//! ## Deposits
//!
//! All deposits are `fungible` holds under [`HoldReason`]; nothing is reserved or locked by
//! other means. A contribution's deposit is held while it is pending or accepted:
//! - **accepted** contributions keep it (their record stays on chain for good);
//! - **withdrawn** ones get it back in full;
//! - **rejected** ones get it back less [`Config::RejectionForfeit`], which goes to
//!   [`Config::ForfeitDestination`] (the treasury). Why: rejection cost curators work, so junk
//!   must not be free to submit; sending the forfeit to the curator or owner instead would reward
//!   rejecting, so it goes to the commons.
//!
//! `try_state` checks that every account's hold equals the deposits on record for it.
//!
//! ## Terms
//! - *Leaf*: an accepted contribution at its index in the Datanet's accepted list.
//! - *Frozen leaves*: the first `frozen_leaves` leaves, contained in the latest snapshot; they never
//!   move or disappear.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;
pub use types::*;
pub use impls::MAX_PAGE;
pub use weights::WeightInfo;

mod impls;
pub mod merkle;
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
/// The stored Datanet type.
pub type DatanetOf<T> = DatanetInfo<
	<T as frame_system::Config>::AccountId,
	BalanceOf<T>,
	frame_system::pallet_prelude::BlockNumberFor<T>,
	<T as Config>::MaxNameLen,
	<T as Config>::MaxUriLen,
	<T as Config>::MaxLicenseLen,
>;
/// The stored contribution type.
pub type ContributionOf<T> = ContributionInfo<
	<T as frame_system::Config>::AccountId,
	BalanceOf<T>,
	frame_system::pallet_prelude::BlockNumberFor<T>,
	<T as Config>::MaxUriLen,
	<T as Config>::MaxLicenseLen,
	<T as Config>::MaxMetadataLen,
>;
/// The stored snapshot type.
pub type SnapshotOf<T> = SnapshotInfo<frame_system::pallet_prelude::BlockNumberFor<T>>;

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use codec::Encode;
	use frame_support::{
		dispatch::{DispatchErrorWithPostInfo, WithPostDispatchInfo},
		pallet_prelude::*,
		traits::{
			tokens::{Fortitude, Precision, Restriction},
			DefensiveOption,
		},
	};
	use frame_system::pallet_prelude::*;
	use sp_core::H256;
	use sp_runtime::{
		traits::{Saturating, Zero},
		Perbill,
	};

	/// The in-code storage version.
	const STORAGE_VERSION: StorageVersion = StorageVersion::new(1);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config: frame_system::Config {
		/// The overarching event type.
		type RuntimeEvent: From<Event<Self>> + IsType<<Self as frame_system::Config>::RuntimeEvent>;

		/// The currency deposits are held in (OPEN).
		type Currency: Mutate<Self::AccountId>
			+ MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;

		/// The overarching hold reason.
		type RuntimeHoldReason: From<HoldReason>;

		/// Held from the owner for each Datanet record.
		#[pallet::constant]
		type DatanetDeposit: Get<BalanceOf<Self>>;

		/// The least a Datanet may ask as base deposit per contribution.
		#[pallet::constant]
		type MinContributionDepositBase: Get<BalanceOf<Self>>;

		/// The least a Datanet may ask as deposit per byte of a contribution record.
		#[pallet::constant]
		type MinContributionDepositPerByte: Get<BalanceOf<Self>>;

		/// Share of a rejected contribution's deposit that is forfeited.
		#[pallet::constant]
		type RejectionForfeit: Get<Perbill>;

		/// Receives forfeited deposits (the treasury). Must exist (hold at least the existential
		/// deposit).
		type ForfeitDestination: Get<Self::AccountId>;

		/// Longest Datanet name, in bytes.
		#[pallet::constant]
		type MaxNameLen: Get<u32>;

		/// Longest URI (Datanet metadata, contribution content), in bytes.
		#[pallet::constant]
		type MaxUriLen: Get<u32>;

		/// Longest license tag, in bytes.
		#[pallet::constant]
		type MaxLicenseLen: Get<u32>;

		/// Longest contribution metadata, in bytes.
		#[pallet::constant]
		type MaxMetadataLen: Get<u32>;

		/// Most curators of one Datanet.
		#[pallet::constant]
		type MaxCurators: Get<u32>;

		/// Most accepted contributions of one Datanet (bounds the snapshot's Merkle computation).
		#[pallet::constant]
		type MaxLeaves: Get<u32>;

		/// Most pending contributions of one Datanet.
		#[pallet::constant]
		type MaxPending: Get<u32>;

		/// Weight information for extrinsics in this pallet.
		type WeightInfo: WeightInfo;
	}

	/// Reasons for holding OPEN.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// Deposit for a Datanet record.
		#[codec(index = 0)]
		DatanetDeposit,
		/// Deposit for a contribution.
		#[codec(index = 1)]
		ContributionDeposit,
	}

	/// The next Datanet id.
	#[pallet::storage]
	pub type NextDatanetId<T> = StorageValue<_, DatanetId, ValueQuery>;

	/// Datanets by id.
	#[pallet::storage]
	pub type Datanets<T: Config> = StorageMap<_, Blake2_128Concat, DatanetId, DatanetOf<T>>;

	/// Curators of each Datanet.
	#[pallet::storage]
	pub type Curators<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, DatanetId, Blake2_128Concat, T::AccountId, ()>;

	/// The next contribution id.
	#[pallet::storage]
	pub type NextContributionId<T> = StorageValue<_, ContributionId, ValueQuery>;

	/// Contributions (pending or accepted) by id.
	#[pallet::storage]
	pub type Contributions<T: Config> =
		StorageMap<_, Blake2_128Concat, ContributionId, ContributionOf<T>>;

	/// Content hash → contribution, per Datanet: a hash appears at most once in a Datanet.
	#[pallet::storage]
	pub type ContentIndex<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, DatanetId, Blake2_128Concat, H256, ContributionId>;

	/// The contributions of each Datanet (for paged listing).
	#[pallet::storage]
	pub type DatanetContributions<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, DatanetId, Twox64Concat, ContributionId, ()>;

	/// The contributions of each account (for paged listing).
	#[pallet::storage]
	pub type ContributorContributions<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, T::AccountId, Twox64Concat, ContributionId, ()>;

	/// The accepted list of each Datanet: leaf index → leaf.
	#[pallet::storage]
	pub type Leaves<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, DatanetId, Twox64Concat, LeafIndex, Leaf>;

	/// Snapshots of each Datanet by version (1, 2, ...).
	#[pallet::storage]
	pub type Snapshots<T: Config> =
		StorageDoubleMap<_, Blake2_128Concat, DatanetId, Twox64Concat, SnapshotVersion, SnapshotOf<T>>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// A Datanet was created.
		DatanetCreated { datanet: DatanetId, owner: T::AccountId, curation: CurationMode, deposit: BalanceOf<T> },
		/// A Datanet's name, metadata URI or license changed.
		MetadataUpdated { datanet: DatanetId },
		/// A curator was added.
		CuratorAdded { datanet: DatanetId, curator: T::AccountId },
		/// A curator was removed.
		CuratorRemoved { datanet: DatanetId, curator: T::AccountId },
		/// A Datanet was archived.
		DatanetArchived { datanet: DatanetId },
		/// A contribution was submitted (and is pending, or accepted if the Datanet is open).
		Contributed {
			datanet: DatanetId,
			contribution: ContributionId,
			contributor: T::AccountId,
			content_hash: H256,
			deposit: BalanceOf<T>,
		},
		/// A contribution entered the accepted list at `leaf`.
		Accepted { datanet: DatanetId, contribution: ContributionId, leaf: LeafIndex },
		/// A contribution was rejected; `forfeited` went to the forfeit destination and the rest
		/// of the deposit was released.
		Rejected {
			datanet: DatanetId,
			contribution: ContributionId,
			reason: ReasonCode,
			forfeited: BalanceOf<T>,
			released: BalanceOf<T>,
		},
		/// A contribution was withdrawn by its contributor and its deposit released.
		Withdrawn { datanet: DatanetId, contribution: ContributionId, released: BalanceOf<T> },
		/// A withdrawal moved the last accepted leaf into the freed index.
		LeafMoved { datanet: DatanetId, contribution: ContributionId, from: LeafIndex, to: LeafIndex },
		/// A snapshot was taken.
		SnapshotTaken { datanet: DatanetId, version: SnapshotVersion, root: H256, leaf_count: LeafIndex },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// No Datanet with this id.
		UnknownDatanet,
		/// No contribution with this id.
		UnknownContribution,
		/// Only the Datanet's owner may do this.
		NotOwner,
		/// Only a curator (or the owner) of the Datanet may do this.
		NotCurator,
		/// Only the contributor may do this.
		NotContributor,
		/// The Datanet is archived.
		Archived,
		/// A name, URI, license or metadata field is longer than allowed.
		TooLong,
		/// The name must not be empty.
		EmptyName,
		/// A content URI must not be empty.
		EmptyUri,
		/// Content of zero bytes or zero tokens.
		EmptyContent,
		/// The deposit policy asks less than the chain's minimums.
		DepositBelowMinimum,
		/// This content hash is already in the Datanet.
		DuplicateContent,
		/// The account is already a curator.
		AlreadyCurator,
		/// The account is not a curator.
		UnknownCurator,
		/// The Datanet has the most curators allowed.
		TooManyCurators,
		/// The Datanet has the most accepted contributions allowed.
		TooManyLeaves,
		/// The Datanet has the most pending contributions allowed.
		TooManyPending,
		/// The contribution is not pending.
		NotPending,
		/// The contribution is in a snapshot and can no longer be withdrawn.
		InSnapshot,
		/// The Datanet has no accepted contributions to snapshot.
		NothingToSnapshot,
		/// Nothing was accepted or withdrawn since the latest snapshot.
		NoChangeSinceSnapshot,
		/// An id counter overflowed.
		Overflow,
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		fn integrity_test() {
			assert!(T::MaxLeaves::get() > 0, "MaxLeaves must be positive");
			assert!(T::MaxNameLen::get() > 0, "MaxNameLen must be positive");
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call(weight(<T as Config>::WeightInfo))]
	impl<T: Config> Pallet<T> {
		/// Creates a Datanet owned by the caller, holding [`Config::DatanetDeposit`].
		///
		/// ## Complexity
		/// O(1).
		#[pallet::call_index(0)]
		pub fn create_datanet(
			origin: OriginFor<T>,
			name: Vec<u8>,
			metadata_uri: Vec<u8>,
			license: Vec<u8>,
			curation: CurationMode,
			deposit: DepositPolicy<BalanceOf<T>>,
		) -> DispatchResult {
			let owner = ensure_signed(origin)?;
			ensure!(!name.is_empty(), Error::<T>::EmptyName);
			let name: BoundedVec<_, _> = name.try_into().map_err(|_| Error::<T>::TooLong)?;
			let metadata_uri: BoundedVec<_, _> =
				metadata_uri.try_into().map_err(|_| Error::<T>::TooLong)?;
			let license: BoundedVec<_, _> = license.try_into().map_err(|_| Error::<T>::TooLong)?;
			ensure!(
				deposit.base >= T::MinContributionDepositBase::get() &&
					deposit.per_byte >= T::MinContributionDepositPerByte::get(),
				Error::<T>::DepositBelowMinimum
			);
			let id = NextDatanetId::<T>::get();
			let next = id.checked_add(1).ok_or(Error::<T>::Overflow)?;
			let owner_deposit = T::DatanetDeposit::get();
			T::Currency::hold(&HoldReason::DatanetDeposit.into(), &owner, owner_deposit)?;

			Datanets::<T>::insert(
				id,
				DatanetInfo {
					owner: owner.clone(),
					name,
					metadata_uri,
					license,
					curation,
					deposit,
					owner_deposit,
					status: DatanetStatus::Active,
					curator_count: 0,
					pending_count: 0,
					leaf_count: 0,
					accepted_bytes: 0,
					accepted_tokens: 0,
					latest_snapshot: 0,
					frozen_leaves: 0,
					created_at: frame_system::Pallet::<T>::block_number(),
				},
			);
			NextDatanetId::<T>::put(next);
			Self::deposit_event(Event::DatanetCreated { datanet: id, owner, curation, deposit: owner_deposit });
			Ok(())
		}

		/// Changes any of name, metadata URI and license (owner only). `None` keeps a field.
		#[pallet::call_index(1)]
		pub fn update_metadata(
			origin: OriginFor<T>,
			datanet: DatanetId,
			name: Option<Vec<u8>>,
			metadata_uri: Option<Vec<u8>>,
			license: Option<Vec<u8>>,
		) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Datanets::<T>::try_mutate(datanet, |d| -> DispatchResult {
				let d = d.as_mut().ok_or(Error::<T>::UnknownDatanet)?;
				ensure!(d.owner == who, Error::<T>::NotOwner);
				if let Some(name) = name {
					ensure!(!name.is_empty(), Error::<T>::EmptyName);
					d.name = name.try_into().map_err(|_| Error::<T>::TooLong)?;
				}
				if let Some(uri) = metadata_uri {
					d.metadata_uri = uri.try_into().map_err(|_| Error::<T>::TooLong)?;
				}
				if let Some(license) = license {
					d.license = license.try_into().map_err(|_| Error::<T>::TooLong)?;
				}
				Ok(())
			})?;
			Self::deposit_event(Event::MetadataUpdated { datanet });
			Ok(())
		}

		/// Adds a curator (owner only).
		#[pallet::call_index(2)]
		pub fn add_curator(origin: OriginFor<T>, datanet: DatanetId, curator: T::AccountId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Datanets::<T>::try_mutate(datanet, |d| -> DispatchResult {
				let d = d.as_mut().ok_or(Error::<T>::UnknownDatanet)?;
				ensure!(d.owner == who, Error::<T>::NotOwner);
				ensure!(!Curators::<T>::contains_key(datanet, &curator), Error::<T>::AlreadyCurator);
				ensure!(d.curator_count < T::MaxCurators::get(), Error::<T>::TooManyCurators);
				d.curator_count += 1;
				Curators::<T>::insert(datanet, &curator, ());
				Ok(())
			})?;
			Self::deposit_event(Event::CuratorAdded { datanet, curator });
			Ok(())
		}

		/// Removes a curator (owner only).
		#[pallet::call_index(3)]
		pub fn remove_curator(origin: OriginFor<T>, datanet: DatanetId, curator: T::AccountId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Datanets::<T>::try_mutate(datanet, |d| -> DispatchResult {
				let d = d.as_mut().ok_or(Error::<T>::UnknownDatanet)?;
				ensure!(d.owner == who, Error::<T>::NotOwner);
				ensure!(Curators::<T>::take(datanet, &curator).is_some(), Error::<T>::UnknownCurator);
				d.curator_count = d.curator_count.saturating_sub(1);
				Ok(())
			})?;
			Self::deposit_event(Event::CuratorRemoved { datanet, curator });
			Ok(())
		}

		/// Archives the Datanet for good (owner only): no new contributions.
		#[pallet::call_index(4)]
		pub fn archive(origin: OriginFor<T>, datanet: DatanetId) -> DispatchResult {
			let who = ensure_signed(origin)?;
			Datanets::<T>::try_mutate(datanet, |d| -> DispatchResult {
				let d = d.as_mut().ok_or(Error::<T>::UnknownDatanet)?;
				ensure!(d.owner == who, Error::<T>::NotOwner);
				ensure!(d.status == DatanetStatus::Active, Error::<T>::Archived);
				d.status = DatanetStatus::Archived;
				Ok(())
			})?;
			Self::deposit_event(Event::DatanetArchived { datanet });
			Ok(())
		}

		/// Submits a contribution, holding the Datanet's deposit for it.
		///
		/// ## Complexity
		/// O(1); the weight covers the longest URI, license and metadata.
		#[pallet::call_index(5)]
		pub fn contribute(
			origin: OriginFor<T>,
			datanet: DatanetId,
			content_hash: H256,
			size_bytes: u64,
			token_count: u64,
			uri: Vec<u8>,
			license: Option<Vec<u8>>,
			metadata: Option<Vec<u8>>,
		) -> DispatchResultWithPostInfo {
			let contributor = ensure_signed(origin)?;
			// Refused before any write: charged for the reads done, not the whole call.
			let mut d = Datanets::<T>::get(datanet).ok_or_else(|| refused::<T>(Error::<T>::UnknownDatanet, 1))?;
			ensure!(d.status == DatanetStatus::Active, refused::<T>(Error::<T>::Archived, 1));
			ensure!(size_bytes > 0 && token_count > 0, refused::<T>(Error::<T>::EmptyContent, 1));
			ensure!(!uri.is_empty(), refused::<T>(Error::<T>::EmptyUri, 1));
			let too_long = |_| refused::<T>(Error::<T>::TooLong, 1);
			let uri: BoundedVec<_, _> = uri.try_into().map_err(too_long)?;
			let license = license.map(|l| l.try_into().map_err(too_long)).transpose()?;
			let metadata = metadata.map(|m| m.try_into().map_err(too_long)).transpose()?;
			ensure!(!ContentIndex::<T>::contains_key(datanet, content_hash), refused::<T>(Error::<T>::DuplicateContent, 2));
			match d.curation {
				CurationMode::Open => ensure!(d.leaf_count < T::MaxLeaves::get(), refused::<T>(Error::<T>::TooManyLeaves, 2)),
				CurationMode::Curated =>
					ensure!(d.pending_count < T::MaxPending::get(), refused::<T>(Error::<T>::TooManyPending, 2)),
			}
			let id = NextContributionId::<T>::get();
			let next = id.checked_add(1).ok_or_else(|| refused::<T>(Error::<T>::Overflow, 3))?;

			let mut info = ContributionInfo {
				datanet,
				contributor: contributor.clone(),
				content_hash,
				size_bytes,
				token_count,
				uri,
				license,
				metadata,
				status: ContributionStatus::Pending,
				deposit: Zero::zero(),
				submitted_at: frame_system::Pallet::<T>::block_number(),
			};
			// Sized as the record will be stored once accepted (its largest shape).
			info.status = ContributionStatus::Accepted { leaf: 0 };
			let record_bytes: BalanceOf<T> = (info.encoded_size() as u32).into();
			info.status = ContributionStatus::Pending;
			let deposit = d.deposit.base.saturating_add(d.deposit.per_byte.saturating_mul(record_bytes));
			T::Currency::hold(&HoldReason::ContributionDeposit.into(), &contributor, deposit)?;
			info.deposit = deposit;

			NextContributionId::<T>::put(next);
			ContentIndex::<T>::insert(datanet, content_hash, id);
			DatanetContributions::<T>::insert(datanet, id, ());
			ContributorContributions::<T>::insert(&contributor, id, ());
			Self::deposit_event(Event::Contributed { datanet, contribution: id, contributor, content_hash, deposit });
			match d.curation {
				CurationMode::Open => {
					info.status = ContributionStatus::Accepted { leaf: Self::push_leaf(&mut d, id, &info) };
				},
				CurationMode::Curated => d.pending_count += 1,
			}
			Contributions::<T>::insert(id, info);
			Datanets::<T>::insert(datanet, d);
			Ok(().into())
		}

		/// Accepts a pending contribution into the accepted list (curator or owner).
		#[pallet::call_index(6)]
		pub fn accept(origin: OriginFor<T>, contribution: ContributionId) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			let mut c = Contributions::<T>::get(contribution).ok_or_else(|| refused::<T>(Error::<T>::UnknownContribution, 1))?;
			let mut d = Datanets::<T>::get(c.datanet).ok_or_else(|| refused::<T>(Error::<T>::UnknownDatanet, 2))?;
			Self::ensure_curator(c.datanet, &d, &who).map_err(|e| e.with_weight(T::DbWeight::get().reads(3)))?;
			ensure!(c.status == ContributionStatus::Pending, refused::<T>(Error::<T>::NotPending, 3));
			ensure!(d.leaf_count < T::MaxLeaves::get(), refused::<T>(Error::<T>::TooManyLeaves, 3));
			d.pending_count = d.pending_count.saturating_sub(1);
			let datanet = c.datanet;
			let leaf = Self::push_leaf(&mut d, contribution, &c);
			c.status = ContributionStatus::Accepted { leaf };
			Contributions::<T>::insert(contribution, c);
			Datanets::<T>::insert(datanet, d);
			Ok(().into())
		}

		/// Rejects a pending contribution (curator or owner) with a reason code. Forfeits
		/// [`Config::RejectionForfeit`] of its deposit and releases the rest.
		#[pallet::call_index(7)]
		pub fn reject(origin: OriginFor<T>, contribution: ContributionId, reason: ReasonCode) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			let c = Contributions::<T>::get(contribution).ok_or_else(|| refused::<T>(Error::<T>::UnknownContribution, 1))?;
			let mut d = Datanets::<T>::get(c.datanet).ok_or_else(|| refused::<T>(Error::<T>::UnknownDatanet, 2))?;
			Self::ensure_curator(c.datanet, &d, &who).map_err(|e| e.with_weight(T::DbWeight::get().reads(3)))?;
			ensure!(c.status == ContributionStatus::Pending, refused::<T>(Error::<T>::NotPending, 3));
			let forfeit = T::RejectionForfeit::get().mul_floor(c.deposit);
			let forfeited = if forfeit.is_zero() {
				Zero::zero()
			} else {
				T::Currency::transfer_on_hold(
					&HoldReason::ContributionDeposit.into(),
					&c.contributor,
					&T::ForfeitDestination::get(),
					forfeit,
					Precision::Exact,
					Restriction::Free,
					Fortitude::Force,
				)?
			};
			let released = T::Currency::release(
				&HoldReason::ContributionDeposit.into(),
				&c.contributor,
				c.deposit.saturating_sub(forfeited),
				Precision::Exact,
			)?;
			d.pending_count = d.pending_count.saturating_sub(1);
			Self::remove_contribution(contribution, &c);
			Self::deposit_event(Event::Rejected { datanet: c.datanet, contribution, reason, forfeited, released });
			Datanets::<T>::insert(c.datanet, d);
			Ok(().into())
		}

		/// Withdraws the caller's contribution that no snapshot contains yet, releasing its
		/// deposit in full. If it was accepted, the last unfrozen leaf takes its index.
		#[pallet::call_index(8)]
		pub fn withdraw(origin: OriginFor<T>, contribution: ContributionId) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			let c = Contributions::<T>::get(contribution).ok_or_else(|| refused::<T>(Error::<T>::UnknownContribution, 1))?;
			ensure!(c.contributor == who, refused::<T>(Error::<T>::NotContributor, 1));
			let mut d = Datanets::<T>::get(c.datanet).ok_or_else(|| refused::<T>(Error::<T>::UnknownDatanet, 2))?;
			match c.status {
				ContributionStatus::Pending => d.pending_count = d.pending_count.saturating_sub(1),
				ContributionStatus::Accepted { leaf } => {
					ensure!(leaf >= d.frozen_leaves, refused::<T>(Error::<T>::InSnapshot, 2));
					let last = d.leaf_count.saturating_sub(1);
					if leaf != last {
						let moved = Leaves::<T>::get(c.datanet, last)
							.defensive_ok_or(Error::<T>::UnknownContribution)?;
						Leaves::<T>::insert(c.datanet, leaf, moved);
						Contributions::<T>::mutate(moved.contribution, |m| {
							if let Some(m) = m {
								m.status = ContributionStatus::Accepted { leaf };
							}
						});
						Self::deposit_event(Event::LeafMoved {
							datanet: c.datanet,
							contribution: moved.contribution,
							from: last,
							to: leaf,
						});
					}
					Leaves::<T>::remove(c.datanet, last);
					d.leaf_count = last;
					d.accepted_bytes = d.accepted_bytes.saturating_sub(c.size_bytes);
					d.accepted_tokens = d.accepted_tokens.saturating_sub(c.token_count);
				},
			}
			let released = T::Currency::release(
				&HoldReason::ContributionDeposit.into(),
				&who,
				c.deposit,
				Precision::Exact,
			)?;
			Self::remove_contribution(contribution, &c);
			Self::deposit_event(Event::Withdrawn { datanet: c.datanet, contribution, released });
			Datanets::<T>::insert(c.datanet, d);
			Ok(().into())
		}

		/// Freezes the accepted list into a new snapshot version (owner or curator).
		///
		/// ## Complexity
		/// O(n) in the number of accepted contributions `n` (≤ [`Config::MaxLeaves`]): reads every
		/// leaf and hashes the Merkle tree.
		#[pallet::call_index(9)]
		#[pallet::weight(<T as Config>::WeightInfo::snapshot(T::MaxLeaves::get()))]
		pub fn snapshot(origin: OriginFor<T>, datanet: DatanetId) -> DispatchResultWithPostInfo {
			let who = ensure_signed(origin)?;
			// An early error is charged for the leaves it read (none before the checks), not
			// for the largest Datanet.
			let leaf_count = Self::do_snapshot(datanet, &who)
				.map_err(|(e, read)| e.with_weight(<T as Config>::WeightInfo::snapshot(read)))?;
			Ok(Some(<T as Config>::WeightInfo::snapshot(leaf_count)).into())
		}
	}

	/// `e`, refused after `reads` storage reads and before any write: charged for those reads
	/// (the declared weight covers the whole call; its writes never happened).
	pub(crate) fn refused<T: Config>(e: Error<T>, reads: u64) -> DispatchErrorWithPostInfo {
		DispatchError::from(e).with_weight(T::DbWeight::get().reads(reads))
	}

	impl<T: Config> Pallet<T> {
		/// [`Pallet::snapshot`]: the new version's leaf count, or the error with the number of
		/// leaves read before it.
		fn do_snapshot(datanet: DatanetId, who: &T::AccountId) -> Result<u32, (DispatchError, u32)> {
			let early = |e: Error<T>| (DispatchError::from(e), 0);
			let mut d = Datanets::<T>::get(datanet).ok_or(early(Error::<T>::UnknownDatanet))?;
			Self::ensure_curator(datanet, &d, who).map_err(|e| (e, 0))?;
			ensure!(d.leaf_count > 0, early(Error::<T>::NothingToSnapshot));
			let latest = match d.latest_snapshot {
				0 => None,
				v => Snapshots::<T>::get(datanet, v),
			};
			let leaves: Vec<Leaf> = (0..d.leaf_count)
				.map(|i| Leaves::<T>::get(datanet, i).defensive_ok_or(Error::<T>::UnknownContribution))
				.collect::<Result<_, _>>()
				.map_err(|e| (e.into(), d.leaf_count))?;
			let root = merkle::root(leaves.iter().copied());
			if let Some(latest) = latest {
				ensure!(latest.root != root, (Error::<T>::NoChangeSinceSnapshot.into(), d.leaf_count));
			}
			let version = d.latest_snapshot.checked_add(1).ok_or((Error::<T>::Overflow.into(), d.leaf_count))?;
			Snapshots::<T>::insert(
				datanet,
				version,
				SnapshotInfo {
					root,
					leaf_count: d.leaf_count,
					total_bytes: d.accepted_bytes,
					total_tokens: d.accepted_tokens,
					taken_at: frame_system::Pallet::<T>::block_number(),
				},
			);
			d.latest_snapshot = version;
			d.frozen_leaves = d.leaf_count;
			let leaf_count = d.leaf_count;
			Datanets::<T>::insert(datanet, d);
			Self::deposit_event(Event::SnapshotTaken { datanet, version, root, leaf_count });
			Ok(leaf_count)
		}

		fn ensure_curator(datanet: DatanetId, d: &DatanetOf<T>, who: &T::AccountId) -> DispatchResult {
			ensure!(d.owner == *who || Curators::<T>::contains_key(datanet, who), Error::<T>::NotCurator);
			Ok(())
		}

		/// Appends a leaf to the accepted list; the caller checked `MaxLeaves`.
		fn push_leaf(d: &mut DatanetOf<T>, contribution: ContributionId, c: &ContributionOf<T>) -> LeafIndex {
			let (datanet, leaf) = (c.datanet, d.leaf_count);
			Leaves::<T>::insert(datanet, leaf, Leaf { contribution, content_hash: c.content_hash });
			d.leaf_count += 1;
			d.accepted_bytes = d.accepted_bytes.saturating_add(c.size_bytes);
			d.accepted_tokens = d.accepted_tokens.saturating_add(c.token_count);
			Self::deposit_event(Event::Accepted { datanet, contribution, leaf });
			leaf
		}

		fn remove_contribution(id: ContributionId, c: &ContributionOf<T>) {
			Contributions::<T>::remove(id);
			ContentIndex::<T>::remove(c.datanet, c.content_hash);
			DatanetContributions::<T>::remove(c.datanet, id);
			ContributorContributions::<T>::remove(&c.contributor, id);
		}
	}
}
