//! # OpenLedger primitives
//!
//! Types and constants shared by the runtime and every off-chain component (node RPC, inference
//! worker, CLI), so that an account, an amount of OPEN or a block number means the same thing on
//! both sides of the wire. `no_std` with the default `std` feature off.
//!
//! - [`AccountId`], [`Signature`], [`Balance`], [`BlockNumber`], [`Nonce`], [`Hash`]: the chain's
//!   basic types.
//! - [`currency`]: the OPEN token: symbol, 18 decimals, units and the genesis supply.
//! - [`time`]: block time and the block-count units derived from it.
//! - [`OpenLedgerApi`]: the runtime API that the node's `openledger_*` JSON-RPC methods call.
//! - [`receipt`]: payment vouchers and attribution receipts, signed off chain, checked on chain.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub mod evidence;
pub mod receipt;
#[cfg(feature = "std")]
pub mod tx;

use codec::{Decode, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_runtime::{
	traits::{IdentifyAccount, Verify},
	MultiSignature,
};

/// Signature of a transaction (and, later, of an attribution receipt).
pub type Signature = MultiSignature;
/// An account on chain: the public key of the signing scheme.
pub type AccountId = <<Signature as Verify>::Signer as IdentifyAccount>::AccountId;
/// An amount of OPEN in its smallest unit (10^-18 OPEN).
pub type Balance = u128;
/// A block number.
pub type BlockNumber = u32;
/// A transaction index of an account.
pub type Nonce = u32;
/// A hash of some data used by the chain.
pub type Hash = sp_core::H256;

/// Identifier of a Datanet (sequential from 0).
pub type DatanetId = u32;
/// Identifier of a contribution, unique across all Datanets (sequential from 0).
pub type ContributionId = u64;
/// Version number of a Datanet snapshot (1, 2, ...).
pub type SnapshotVersion = u32;
/// Position of an accepted contribution in its Datanet's accepted list (and so in a snapshot).
pub type LeafIndex = u32;
/// Identifier of a registered model (base or adapter, sequential from 0).
pub type ModelId = u32;
/// Version of a model (1, 2, ...).
pub type ModelVersion = u32;

/// What other pallets may ask about Datanet snapshots.
pub trait DatanetSnapshots {
	/// Whether snapshot `version` of `datanet` exists.
	fn snapshot_exists(datanet: DatanetId, version: SnapshotVersion) -> bool;
	/// Creates snapshot `version` of `datanet` (with an owner able to pay) for benchmarks.
	#[cfg(feature = "runtime-benchmarks")]
	fn benchmark_snapshot(datanet: DatanetId, version: SnapshotVersion);
}

/// How an inference fee is split. The four shares sum to exactly 100 %.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Encode, Decode, codec::DecodeWithMemTracking, TypeInfo, MaxEncodedLen)]
pub struct RevenueSplit {
	/// To the model's owner.
	pub owner: sp_runtime::Perbill,
	/// To the data: the attributed contributions' contributors (and the lineage's Datanets).
	pub data: sp_runtime::Perbill,
	/// To the worker that served the request (shared with its delegators).
	pub worker: sp_runtime::Perbill,
	/// To the treasury.
	pub treasury: sp_runtime::Perbill,
}

impl RevenueSplit {
	/// Whether the shares add up to exactly 100 %.
	pub fn is_complete(&self) -> bool {
		let parts = [self.owner, self.data, self.worker, self.treasury];
		parts.iter().map(|p| p.deconstruct() as u64).sum::<u64>() ==
			sp_runtime::Perbill::one().deconstruct() as u64
	}

	/// Whether every share is at least the matching minimum.
	pub fn respects(&self, min: &RevenueSplit) -> bool {
		self.owner >= min.owner &&
			self.data >= min.data &&
			self.worker >= min.worker &&
			self.treasury >= min.treasury
	}
}

/// What other pallets may ask about registered models.
pub trait ModelRegistry {
	/// Whether model `id` is registered.
	fn model_exists(id: ModelId) -> bool;
}

/// The OPEN token.
pub mod currency {
	use super::Balance;

	/// Ticker shown by wallets (`tokenSymbol` chain property).
	pub const TOKEN_SYMBOL: &str = "OPEN";
	/// Decimal places (`tokenDecimals` chain property).
	pub const TOKEN_DECIMALS: u8 = 18;
	/// One OPEN in the smallest unit.
	pub const OPEN: Balance = 1_000_000_000_000_000_000;
	/// 0.001 OPEN.
	pub const MILLI_OPEN: Balance = OPEN / 1_000;
	/// 0.000001 OPEN.
	pub const MICRO_OPEN: Balance = OPEN / 1_000_000;
	/// Total supply minted at genesis: 1,000,000,000 OPEN.
	pub const TOTAL_SUPPLY: Balance = 1_000_000_000 * OPEN;
	/// Smallest balance an account may hold (0.001 OPEN); below it the account is reaped.
	pub const EXISTENTIAL_DEPOSIT: Balance = MILLI_OPEN;
	/// SS58 address prefix (42: the generic Substrate prefix, understood by every wallet).
	pub const SS58_PREFIX: u16 = 42;
}

/// Block time and the units of time measured in blocks.
pub mod time {
	use super::BlockNumber;

	/// Target block time of the Aura networks (development nodes may seal faster).
	pub const MILLI_SECS_PER_BLOCK: u64 = 6_000;
	/// Aura slot duration. It cannot change once a chain has started.
	pub const SLOT_DURATION: u64 = MILLI_SECS_PER_BLOCK;
	/// Blocks per minute.
	pub const MINUTES: BlockNumber = 60_000 / (MILLI_SECS_PER_BLOCK as BlockNumber);
	/// Blocks per hour.
	pub const HOURS: BlockNumber = MINUTES * 60;
	/// Blocks per day.
	pub const DAYS: BlockNumber = HOURS * 24;
}

/// Facts about the native token as the runtime sees them, returned by [`OpenLedgerApi`].
#[derive(Clone, Debug, PartialEq, Eq, Encode, Decode, TypeInfo, MaxEncodedLen)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
#[cfg_attr(feature = "std", serde(rename_all = "camelCase"))]
pub struct TokenInfo {
	/// Ticker (`OPEN`) as UTF-8 bytes.
	pub symbol: [u8; 4],
	/// Decimal places.
	pub decimals: u8,
	/// OPEN in existence now, in the smallest unit.
	pub total_issuance: Balance,
	/// Existential deposit.
	pub existential_deposit: Balance,
}

sp_api::decl_runtime_apis! {
	/// OpenLedger's own runtime API. Later pallets add methods here (with `#[api_version]`) or
	/// declare their own API next to their pallet.
	pub trait OpenLedgerApi {
		/// The native token's symbol, decimals, issuance and existential deposit.
		fn token_info() -> TokenInfo;
	}
}

#[cfg(test)]
mod tests {
	use super::currency::*;

	#[test]
	fn supply_fits_and_units_agree() {
		assert_eq!(OPEN, 10u128.pow(TOKEN_DECIMALS as u32));
		assert_eq!(TOTAL_SUPPLY, 10u128.pow(27));
		assert!(TOTAL_SUPPLY.checked_mul(1_000).is_some(), "headroom for fee math");
		assert_eq!(TOKEN_SYMBOL.len(), 4);
	}
}
