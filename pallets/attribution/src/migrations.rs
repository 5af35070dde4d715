//! Storage migrations of the attribution pallet.

/// Version 1 → 2: a span dispute records the bond held for it.
///
/// Until version 1 every dispute held the one constant `ChallengeBond`, and closing it released
/// that constant. From version 2 the bond of a span dispute is [`crate::Config::DisputeBond`], a
/// parameter governance may change at any time, so each dispute stores what it holds and pays
/// exactly that back (or to the worker). Every open dispute is re-encoded with the bond it was
/// opened with: `OldBond`, the constant of the runtime that opened it.
///
/// The migration is bounded: disputes live at most the response window (plus the deadline
/// spill) and each deadline block queues at most `MaxDisputesPerBlock` of them, so it touches at
/// most `MaxDisputesPerBlock × (ResponseWindow + spill)` entries, each one read and one write,
/// which is the weight it returns. Run through [`MigrateV1ToV2`] (a `VersionedMigration`): it runs
/// once, when the on-chain storage version is 1, and sets it to 2.
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
	use {alloc::vec::Vec, frame_support::traits::fungible::InspectHold, sp_runtime::TryRuntimeError};

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
			T::DbWeight::get().reads_writes(migrated, migrated)
		}

		/// Records the open disputes and what their challengers hold, to compare after.
		#[cfg(feature = "try-runtime")]
		fn pre_upgrade() -> Result<Vec<u8>, TryRuntimeError> {
			let disputes: Vec<_> = v1::Disputes::<T>::iter().map(|(k, d)| (k, d.challenger, d.deadline)).collect();
			let mut held: Vec<(T::AccountId, BalanceOf<T>)> = Vec::new();
			for (_, challenger, _) in &disputes {
				if !held.iter().any(|(who, _)| who == challenger) {
					let h = T::Currency::balance_on_hold(&crate::HoldReason::ChallengeBond.into(), challenger);
					held.push((challenger.clone(), h));
				}
			}
			Ok((disputes, held).encode())
		}

		/// Every dispute is still there, decodes in the new layout with the old bond, its
		/// challenger and deadline unchanged; no hold moved; the pallet's invariants hold.
		#[cfg(feature = "try-runtime")]
		fn post_upgrade(state: Vec<u8>) -> Result<(), TryRuntimeError> {
			type Before<T> = (
				Vec<(
					(<T as frame_system::Config>::AccountId, RequestId, DisputeKind),
					<T as frame_system::Config>::AccountId,
					BlockNumberFor<T>,
				)>,
				Vec<(<T as frame_system::Config>::AccountId, BalanceOf<T>)>,
			);
			let (disputes, held) =
				Before::<T>::decode(&mut &state[..]).map_err(|_| TryRuntimeError::Other("pre_upgrade state does not decode"))?;
			ensure!(Disputes::<T>::iter_keys().count() == disputes.len(), "disputes lost or added by the migration");
			for (key, challenger, deadline) in disputes {
				let d = Disputes::<T>::get(&key).ok_or("a dispute did not decode after the migration")?;
				ensure!(d.challenger == challenger && d.deadline == deadline, "a dispute changed its challenger or deadline");
				ensure!(d.bond == OldBond::get(), "a migrated dispute does not record the old bond");
			}
			for (who, h) in held {
				ensure!(
					T::Currency::balance_on_hold(&crate::HoldReason::ChallengeBond.into(), &who) == h,
					"a challenger's bond hold changed during the migration"
				);
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
