//! Runtime API of the Datanets pallet. The node's `datanets_*` JSON-RPC methods call it.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

use alloc::vec::Vec;
use codec::Codec;
pub use pallet_datanets::{
	ContributionId, ContributionInfo, DatanetId, DatanetInfo, Leaf, LeafIndex, SnapshotInfo,
	SnapshotProof, SnapshotVersion, MAX_PAGE,
};

sp_api::decl_runtime_apis! {
	/// Queries over Datanets, their contributions and snapshots. `Datanet` and `Contribution`
	/// are the runtime's stored types (`pallet_datanets::DatanetOf<Runtime>`, `ContributionOf`).
	#[api_version(2)]
	pub trait DatanetsApi<AccountId, Datanet, Contribution, BlockNumber>
	where
		AccountId: Codec,
		Datanet: Codec,
		Contribution: Codec,
		BlockNumber: Codec,
	{
		/// A Datanet by id.
		fn datanet(id: DatanetId) -> Option<Datanet>;
		/// A contribution by id.
		fn contribution(id: ContributionId) -> Option<Contribution>;
		/// One page (at most `limit`, capped at `MAX_PAGE`) of a Datanet's contributions after
		/// contribution `after` (exclusive).
		fn contributions_of_datanet(datanet: DatanetId, after: Option<ContributionId>, limit: u32) -> Vec<(ContributionId, Contribution)>;
		/// One page of an account's contributions.
		fn contributions_of_account(who: AccountId, after: Option<ContributionId>, limit: u32) -> Vec<(ContributionId, Contribution)>;
		/// A snapshot of a Datanet.
		fn snapshot(datanet: DatanetId, version: SnapshotVersion) -> Option<SnapshotInfo<BlockNumber>>;
		/// The leaves of a snapshot, in order (the node builds the tree once per snapshot and
		/// serves proofs from it).
		fn snapshot_leaves(datanet: DatanetId, version: SnapshotVersion) -> Option<Vec<Leaf>>;
	}
}
