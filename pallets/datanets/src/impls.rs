//! Queries (for the runtime API) and invariant checks.

use super::*;
use alloc::collections::btree_map::BTreeMap;
use frame_support::{ensure, traits::fungible::InspectHold};
use sp_runtime::traits::{Saturating, Zero};

/// Most items one page of a listing query returns.
pub const MAX_PAGE: u32 = 1_000;

impl<T: Config> Pallet<T> {
	/// One page of a Datanet's contributions (pending and accepted), after contribution `after`
	/// (exclusive; `None`: from the start), at most `limit` (capped at [`MAX_PAGE`]).
	/// The order is fixed but not numeric; pass the last id of a page to get the next.
	pub fn contributions_of_datanet(
		datanet: DatanetId,
		after: Option<ContributionId>,
		limit: u32,
	) -> Vec<(ContributionId, ContributionOf<T>)> {
		let ids = match after {
			None => DatanetContributions::<T>::iter_key_prefix(datanet),
			Some(a) => DatanetContributions::<T>::iter_key_prefix_from(
				datanet,
				DatanetContributions::<T>::hashed_key_for(datanet, a),
			),
		};
		Self::page(ids, limit)
	}

	/// One page of an account's contributions, like [`Self::contributions_of_datanet`].
	pub fn contributions_of_account(
		who: &T::AccountId,
		after: Option<ContributionId>,
		limit: u32,
	) -> Vec<(ContributionId, ContributionOf<T>)> {
		let ids = match after {
			None => ContributorContributions::<T>::iter_key_prefix(who),
			Some(a) => ContributorContributions::<T>::iter_key_prefix_from(
				who,
				ContributorContributions::<T>::hashed_key_for(who, a),
			),
		};
		Self::page(ids, limit)
	}

	fn page(
		ids: impl Iterator<Item = ContributionId>,
		limit: u32,
	) -> Vec<(ContributionId, ContributionOf<T>)> {
		ids.take(limit.min(MAX_PAGE) as usize)
			.filter_map(|id| Contributions::<T>::get(id).map(|c| (id, c)))
			.collect()
	}

	/// The leaves of snapshot `version`, in order.
	pub fn snapshot_leaves(datanet: DatanetId, version: SnapshotVersion) -> Option<Vec<Leaf>> {
		let s = Snapshots::<T>::get(datanet, version)?;
		(0..s.leaf_count).map(|i| Leaves::<T>::get(datanet, i)).collect()
	}

	/// Merkle proof of leaf `index` of snapshot `version`. Leaves of any snapshot never move:
	/// only leaves beyond the latest snapshot can be withdrawn.
	pub fn snapshot_proof(
		datanet: DatanetId,
		version: SnapshotVersion,
		index: LeafIndex,
	) -> Option<SnapshotProof> {
		let leaves = Self::snapshot_leaves(datanet, version)?;
		merkle::proof(&leaves, index)
	}

	/// The contribution at `(datanet, version, index)`, if that reference is valid.
	pub fn contribution_at(
		datanet: DatanetId,
		version: SnapshotVersion,
		index: LeafIndex,
	) -> Option<(ContributionId, ContributionOf<T>)> {
		let s = Snapshots::<T>::get(datanet, version)?;
		if index >= s.leaf_count {
			return None;
		}
		let leaf = Leaves::<T>::get(datanet, index)?;
		Contributions::<T>::get(leaf.contribution).map(|c| (leaf.contribution, c))
	}

	/// Checks the pallet's invariants:
	/// - every account's holds equal the deposits on record for it;
	/// - each Datanet's counters match its curators, pending contributions and leaves;
	/// - every leaf points at an accepted contribution that points back at it;
	/// - the content index and listings match the contributions;
	/// - snapshots are numbered 1..=latest and never exceed the leaves.
	pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
		let mut expected_datanet: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		let mut expected_contribution: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
		let mut pending: BTreeMap<DatanetId, u32> = BTreeMap::new();

		for (id, c) in Contributions::<T>::iter() {
			let e = expected_contribution.entry(c.contributor.clone()).or_insert_with(Zero::zero);
			*e = e.saturating_add(c.deposit);
			ensure!(ContentIndex::<T>::get(c.datanet, c.content_hash) == Some(id), "content index mismatch");
			ensure!(DatanetContributions::<T>::contains_key(c.datanet, id), "datanet listing mismatch");
			ensure!(ContributorContributions::<T>::contains_key(&c.contributor, id), "account listing mismatch");
			match c.status {
				ContributionStatus::Pending => *pending.entry(c.datanet).or_default() += 1,
				ContributionStatus::Accepted { leaf } => ensure!(
					Leaves::<T>::get(c.datanet, leaf).map(|l| l.contribution) == Some(id),
					"accepted contribution's leaf does not point back"
				),
			}
		}
		ensure!(
			ContentIndex::<T>::iter().count() == Contributions::<T>::iter().count(),
			"stale content index entries"
		);

		for (id, d) in Datanets::<T>::iter() {
			let e = expected_datanet.entry(d.owner.clone()).or_insert_with(Zero::zero);
			*e = e.saturating_add(d.owner_deposit);
			ensure!(
				Curators::<T>::iter_prefix(id).count() as u32 == d.curator_count,
				"curator count mismatch"
			);
			ensure!(pending.get(&id).copied().unwrap_or(0) == d.pending_count, "pending count mismatch");
			ensure!(Leaves::<T>::iter_prefix(id).count() as u32 == d.leaf_count, "leaf count mismatch");
			ensure!(d.frozen_leaves <= d.leaf_count, "more frozen leaves than leaves");
			for (i, leaf) in Leaves::<T>::iter_prefix(id) {
				ensure!(i < d.leaf_count, "leaf beyond the count");
				let c = Contributions::<T>::get(leaf.contribution).ok_or("leaf of unknown contribution")?;
				ensure!(c.status == ContributionStatus::Accepted { leaf: i }, "leaf/contribution mismatch");
				ensure!(c.content_hash == leaf.content_hash, "leaf content hash mismatch");
			}
			ensure!(
				Snapshots::<T>::iter_prefix(id).count() as u32 == d.latest_snapshot,
				"snapshot versions are not 1..=latest"
			);
			if d.latest_snapshot > 0 {
				let s = Snapshots::<T>::get(id, d.latest_snapshot).ok_or("latest snapshot missing")?;
				ensure!(s.leaf_count == d.frozen_leaves, "frozen leaves differ from latest snapshot");
			}
		}
		ensure!(NextDatanetId::<T>::get() as usize >= Datanets::<T>::iter().count(), "datanet ids");

		let datanet_reason: T::RuntimeHoldReason = HoldReason::DatanetDeposit.into();
		let contribution_reason: T::RuntimeHoldReason = HoldReason::ContributionDeposit.into();
		for (who, amount) in expected_datanet {
			ensure!(
				T::Currency::balance_on_hold(&datanet_reason, &who) == amount,
				"datanet deposit hold differs from record"
			);
		}
		for (who, amount) in expected_contribution {
			ensure!(
				T::Currency::balance_on_hold(&contribution_reason, &who) == amount,
				"contribution deposit hold differs from record"
			);
		}
		Ok(())
	}
}

impl<T: Config> openledger_primitives::DatanetSnapshots for Pallet<T> {
	fn snapshot_exists(datanet: DatanetId, version: SnapshotVersion) -> bool {
		Snapshots::<T>::contains_key(datanet, version)
	}

	#[cfg(feature = "runtime-benchmarks")]
	fn benchmark_snapshot(datanet: DatanetId, version: SnapshotVersion) {
		Snapshots::<T>::insert(
			datanet,
			version,
			SnapshotInfo {
				root: Default::default(),
				leaf_count: 1,
				total_bytes: 1,
				total_tokens: 1,
				taken_at: frame_system::Pallet::<T>::block_number(),
			},
		);
	}
}
