//! Storage migrations of the attribution pallet.

/// Version 1 → 2: a span dispute records the bond held for it.
///
/// Until version 1 every dispute held the one constant `ChallengeBond`, and closing it released
/// that constant. From version 2 the bond of a span dispute is [`crate::Config::DisputeBond`], a
/// parameter governance may change at any time, so each dispute stores what it holds and pays
/// exactly that back (or to the worker). Every open dispute is re-encoded with the bond it was
/// opened with: `OldBond`, the constant of the runtime that opened it.
///
/// It runs in the upgrade block, one read and one write per open dispute, the weight it returns.
/// Open disputes are few in practice (each holds 100 OPEN and lives an hour), but not bounded by a
/// block: each deadline block queues at most `MaxDisputesPerBlock` (64) and a dispute lives the
/// response window (600 blocks) plus the deadline spill (64) plus however far `on_idle`'s deadline
/// enforcement lags, so at least 42,496 could be open — about 2.5 s of reads and writes, more than
/// a block's 2 s (the upgrade block is allowed to be overweight, but its import is slow).
/// `scripts/try-upgrade.sh` prints the weight over the live chain and fails when it exceeds a
/// block: a chain with that many open disputes needs this as a multi-block migration. Run through
/// [`MigrateV1ToV2`] (a `VersionedMigration`): it runs once, when the on-chain storage version is
/// 1, and sets it to 2.
pub mod v2 {
	use crate::{BalanceOf, Config, Dispute, DisputeKind, Disputes, Pallet, RequestId};
	use codec::{Decode, Encode, MaxEncodedLen};
	use core::marker::PhantomData;
	use frame_support::{
		migrations::VersionedMigration,
		pallet_prelude::*,
		storage_alias,
		traits::{Get, UncheckedOnRuntimeUpgrade},
		weights::Weight,
	};
	use frame_system::pallet_prelude::BlockNumberFor;
	#[cfg(feature = "try-runtime")]
	use {alloc::vec::Vec, sp_runtime::TryRuntimeError};

	/// The storage of version 1.
	pub mod v1 {
		use super::*;

		/// A span dispute of version 1: no bond recorded.
		#[derive(Clone, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
		pub struct Dispute<AccountId, BlockNumber> {
			pub challenger: AccountId,
			pub deadline: BlockNumber,
		}

		#[storage_alias]
		pub type Disputes<T: Config> = StorageNMap<
			Pallet<T>,
			(
				NMapKey<Blake2_128Concat, <T as frame_system::Config>::AccountId>,
				NMapKey<Identity, RequestId>,
				NMapKey<Blake2_128Concat, DisputeKind>,
			),
			Dispute<<T as frame_system::Config>::AccountId, BlockNumberFor<T>>,
		>;
	}

	/// The migration without its version guard; use [`MigrateV1ToV2`].
	pub struct InnerMigrateV1ToV2<T, OldBond>(PhantomData<(T, OldBond)>);

	impl<T: Config, OldBond: Get<BalanceOf<T>>> UncheckedOnRuntimeUpgrade for InnerMigrateV1ToV2<T, OldBond> {
		fn on_runtime_upgrade() -> Weight {
			let bond = OldBond::get();
			let mut migrated = 0u64;
			Disputes::<T>::translate::<v1::Dispute<T::AccountId, BlockNumberFor<T>>, _>(|_, old| {
				migrated += 1;
				Some(Dispute { challenger: old.challenger, deadline: old.deadline, bond })
			});
			log::info!(target: "runtime::attribution", "migration v2: {migrated} span disputes now record their bond");
			// One more read: the key after the last.
			T::DbWeight::get().reads_writes(migrated + 1, migrated)
		}

		/// Records every open dispute as version 1 stores it (undecodable ones fail here).
		#[cfg(feature = "try-runtime")]
		fn pre_upgrade() -> Result<Vec<u8>, TryRuntimeError> {
			let stored = v1::Disputes::<T>::iter_keys().count();
			let disputes: Vec<_> = v1::Disputes::<T>::iter().map(|(k, d)| (k, d.challenger, d.deadline)).collect();
			ensure!(disputes.len() == stored, "a version 1 dispute does not decode");
			Ok(disputes.encode())
		}

		/// Every dispute is still there and decodes in the new layout with its challenger and
		/// deadline; the pallet's invariants hold — among them, each challenger's hold equals the
		/// bonds its disputes now record, which fails if `OldBond` is not what they held.
		#[cfg(feature = "try-runtime")]
		fn post_upgrade(state: Vec<u8>) -> Result<(), TryRuntimeError> {
			type Before<T> = Vec<(
				(<T as frame_system::Config>::AccountId, RequestId, DisputeKind),
				<T as frame_system::Config>::AccountId,
				BlockNumberFor<T>,
			)>;
			let disputes =
				Before::<T>::decode(&mut &state[..]).map_err(|_| TryRuntimeError::Other("pre_upgrade state does not decode"))?;
			ensure!(Disputes::<T>::iter_keys().count() == disputes.len(), "disputes lost or added by the migration");
			for (key, challenger, deadline) in disputes {
				let d = Disputes::<T>::get(&key).ok_or("a dispute did not decode after the migration")?;
				ensure!(d.challenger == challenger && d.deadline == deadline, "a dispute changed its challenger or deadline");
			}
			Pallet::<T>::do_try_state()
		}
	}

	/// Version 1 → 2, run once (see the module's documentation).
	pub type MigrateV1ToV2<T, OldBond> = VersionedMigration<
		1,
		2,
		InnerMigrateV1ToV2<T, OldBond>,
		Pallet<T>,
		<T as frame_system::Config>::DbWeight,
	>;
}
