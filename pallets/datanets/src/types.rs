//! Types stored by the pallet and taken by its calls.

use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use frame_support::{traits::Get, BoundedVec};
use sp_runtime::RuntimeDebug;
use scale_info::TypeInfo;
use sp_core::H256;

pub use openledger_primitives::{ContributionId, DatanetId, LeafIndex, SnapshotVersion};
/// A curator's reason code for rejecting a contribution (meaning set by the Datanet's policy).
pub type ReasonCode = u16;

/// Who decides whether a contribution enters the Datanet.
#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub enum CurationMode {
	/// Every contribution is accepted when submitted.
	Open,
	/// Contributions start `Pending` until a curator (or the owner) accepts or rejects them.
	Curated,
}

/// What a contributor holds as deposit for one contribution: `base + per_byte * record bytes`,
/// where record bytes is the SCALE size of the contribution record as stored once accepted.
#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug, Default)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct DepositPolicy<Balance> {
	/// Held per contribution.
	pub base: Balance,
	/// Held per byte of the on-chain record.
	pub per_byte: Balance,
}

/// Lifecycle of a Datanet.
#[derive(Clone, Copy, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub enum DatanetStatus {
	/// Takes contributions.
	Active,
	/// Takes no new contributions; pending ones can still be curated or withdrawn and snapshots
	/// can still be taken. Permanent.
	Archived,
}

/// A Datanet as stored.
#[derive(Clone, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
#[scale_info(skip_type_params(NameLen, UriLen, LicenseLen))]
pub struct DatanetInfo<AccountId, Balance, BlockNumber, NameLen: Get<u32>, UriLen: Get<u32>, LicenseLen: Get<u32>> {
	/// Creator; may update metadata, manage curators, curate, snapshot and archive.
	pub owner: AccountId,
	/// Human-readable name.
	pub name: BoundedVec<u8, NameLen>,
	/// URI of the description / metadata document.
	pub metadata_uri: BoundedVec<u8, UriLen>,
	/// License tag (e.g. an SPDX identifier) that contributions are made under by default.
	pub license: BoundedVec<u8, LicenseLen>,
	/// Open or curated.
	pub curation: CurationMode,
	/// Deposit each contribution holds.
	pub deposit: DepositPolicy<Balance>,
	/// Deposit held from the owner for this record.
	pub owner_deposit: Balance,
	/// Active or archived.
	pub status: DatanetStatus,
	/// Number of curators.
	pub curator_count: u32,
	/// Contributions waiting for a curator.
	pub pending_count: u32,
	/// Accepted contributions (the length of the accepted list).
	pub leaf_count: LeafIndex,
	/// Sum of the accepted contributions' sizes in bytes.
	pub accepted_bytes: u64,
	/// Sum of the accepted contributions' token counts.
	pub accepted_tokens: u64,
	/// Latest snapshot version (0: none yet).
	pub latest_snapshot: SnapshotVersion,
	/// Leaves frozen by the latest snapshot; leaves below this index can no longer move.
	pub frozen_leaves: LeafIndex,
	/// Block of creation.
	pub created_at: BlockNumber,
}

/// Where a contribution stands.
#[derive(Clone, Copy, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub enum ContributionStatus {
	/// Waiting for a curator.
	Pending,
	/// In the Datanet's accepted list at this index.
	Accepted { leaf: LeafIndex },
}

/// A contribution as stored. Rejected and withdrawn contributions are removed (their events
/// remain), which frees their content hash.
#[derive(Clone, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
#[scale_info(skip_type_params(UriLen, LicenseLen, MetadataLen))]
pub struct ContributionInfo<AccountId, Balance, BlockNumber, UriLen: Get<u32>, LicenseLen: Get<u32>, MetadataLen: Get<u32>> {
	/// The Datanet it belongs to.
	pub datanet: DatanetId,
	/// Who supplied it (and earns from it).
	pub contributor: AccountId,
	/// blake2-256 of the canonical content bytes.
	pub content_hash: H256,
	/// Size of the content in bytes.
	pub size_bytes: u64,
	/// Number of tokens of the content (the contributor's count; re-checked off chain).
	pub token_count: u64,
	/// Where the content can be fetched (content store URI).
	pub uri: BoundedVec<u8, UriLen>,
	/// License, if it differs from the Datanet's.
	pub license: Option<BoundedVec<u8, LicenseLen>>,
	/// Free-form metadata (e.g. JSON).
	pub metadata: Option<BoundedVec<u8, MetadataLen>>,
	/// Pending or accepted.
	pub status: ContributionStatus,
	/// Deposit held from the contributor.
	pub deposit: Balance,
	/// Block of submission.
	pub submitted_at: BlockNumber,
}

/// One leaf of a snapshot's Merkle tree: the accepted contribution at that index.
///
/// The leaf's bytes are its SCALE encoding: `contribution` as 8 bytes little-endian followed by
/// the 32 bytes of `content_hash` (40 bytes).
#[derive(Clone, Copy, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct Leaf {
	/// The contribution.
	pub contribution: ContributionId,
	/// Its content hash.
	pub content_hash: H256,
}

/// A frozen version of a Datanet.
#[derive(Clone, Copy, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct SnapshotInfo<BlockNumber> {
	/// Binary Merkle root over leaves `0..leaf_count` (see [`crate::merkle`]).
	pub root: H256,
	/// Number of leaves (accepted contributions) in this version.
	pub leaf_count: LeafIndex,
	/// Sum of the contributions' sizes in bytes.
	pub total_bytes: u64,
	/// Sum of the contributions' token counts.
	pub total_tokens: u64,
	/// Block at which it was taken.
	pub taken_at: BlockNumber,
}

/// A Merkle proof that a leaf is at `leaf_index` of a snapshot.
#[derive(Clone, Encode, Decode, TypeInfo, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct SnapshotProof {
	/// Snapshot root.
	pub root: H256,
	/// Sibling hashes from the leaf up (neither the leaf hash nor the root).
	pub proof: alloc::vec::Vec<H256>,
	/// Leaves in the snapshot.
	pub number_of_leaves: u32,
	/// Index of the proven leaf.
	pub leaf_index: u32,
	/// The leaf.
	pub leaf: Leaf,
}
