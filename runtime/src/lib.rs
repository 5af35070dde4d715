//! # OpenLedger runtime
//!
//! The FRAME runtime of the OpenLedger attribution chain.
//!
//! - **OPEN** is the native token (`pallet_balances`): 18 decimals, 1,000,000,000 OPEN minted at
//!   genesis across named accounts (see [`genesis_config_presets`]). All fees are paid in OPEN and
//!   go to the treasury account, so the issuance only changes by explicit mint or burn.
//! - Consensus: Aura block production and GRANDPA finality; development nodes can also seal
//!   blocks on demand (the node's `--sealing` option).
//! - Pallet indices are fixed with `pallet_index` and never renumbered; custom pallets start at 20.
//!
//! Units of money and time live once, in [`openledger_primitives`].
#![cfg_attr(not(feature = "std"), no_std)]
// `construct_runtime`'s expansion is large.
#![recursion_limit = "256"]

#[cfg(feature = "std")]
include!(concat!(env!("OUT_DIR"), "/wasm_binary.rs"));

pub mod apis;
#[cfg(feature = "runtime-benchmarks")]
mod benchmarks;
pub mod configs;
pub mod genesis_config_presets;
pub mod governance;
pub mod invariants;

#[cfg(test)]
mod tests;

extern crate alloc;
use alloc::vec::Vec;
use sp_runtime::{generic, impl_opaque_keys, traits::BlakeTwo256, MultiAddress};
#[cfg(feature = "std")]
use sp_version::NativeVersion;
use sp_version::RuntimeVersion;

pub use frame_system::Call as SystemCall;
pub use openledger_primitives::{
	currency::{self, EXISTENTIAL_DEPOSIT, OPEN, TOTAL_SUPPLY},
	time::{self, DAYS, HOURS, MILLI_SECS_PER_BLOCK, MINUTES, SLOT_DURATION},
	AccountId, Balance, BlockNumber, Hash, Nonce, Signature,
};
pub use pallet_balances::Call as BalancesCall;
pub use pallet_timestamp::Call as TimestampCall;
#[cfg(any(feature = "std", test))]
pub use sp_runtime::BuildStorage;

/// Opaque types for the node, which need not know the runtime's extrinsic format.
pub mod opaque {
	use super::*;
	use sp_runtime::traits::Hash as HashT;

	pub use sp_runtime::OpaqueExtrinsic as UncheckedExtrinsic;

	/// Opaque block header type.
	pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
	/// Opaque block type.
	pub type Block = generic::Block<Header, UncheckedExtrinsic>;
	/// Opaque block identifier type.
	pub type BlockId = generic::BlockId<Block>;
	/// Opaque block hash type.
	pub type Hash = <BlakeTwo256 as HashT>::Output;
}

impl_opaque_keys! {
	pub struct SessionKeys {
		pub aura: Aura,
		pub grandpa: Grandpa,
	}
}

#[sp_version::runtime_version]
pub const VERSION: RuntimeVersion = RuntimeVersion {
	spec_name: alloc::borrow::Cow::Borrowed("openledger"),
	impl_name: alloc::borrow::Cow::Borrowed("openledger-node"),
	authoring_version: 1,
	// Bump on every runtime change that is deployed to a live network.
	spec_version: 107,
	impl_version: 1,
	apis: apis::RUNTIME_API_VERSIONS,
	transaction_version: 1,
	system_version: 1,
};

/// Block hashes kept for mortal transactions.
pub const BLOCK_HASH_COUNT: BlockNumber = 2400;

/// The version information used to identify this runtime when compiled natively.
#[cfg(feature = "std")]
pub fn native_version() -> NativeVersion {
	NativeVersion { runtime_version: VERSION, can_author_with: Default::default() }
}

/// The address format for describing accounts.
pub type Address = MultiAddress<AccountId, ()>;
/// Block header type as expected by this runtime.
pub type Header = generic::Header<BlockNumber, BlakeTwo256>;
/// Block type as expected by this runtime.
pub type Block = generic::Block<Header, UncheckedExtrinsic>;
/// A Block signed with a Justification.
pub type SignedBlock = generic::SignedBlock<Block>;
/// BlockId type as expected by this runtime.
pub type BlockId = generic::BlockId<Block>;

/// The transaction extensions: the standard set that polkadot-js knows without custom types.
pub type TxExtension = (
	frame_system::CheckNonZeroSender<Runtime>,
	frame_system::CheckSpecVersion<Runtime>,
	frame_system::CheckTxVersion<Runtime>,
	frame_system::CheckGenesis<Runtime>,
	frame_system::CheckEra<Runtime>,
	frame_system::CheckNonce<Runtime>,
	frame_system::CheckWeight<Runtime>,
	pallet_transaction_payment::ChargeTransactionPayment<Runtime>,
	frame_metadata_hash_extension::CheckMetadataHash<Runtime>,
	frame_system::WeightReclaim<Runtime>,
);

/// Unchecked extrinsic type as expected by this runtime.
pub type UncheckedExtrinsic =
	generic::UncheckedExtrinsic<Address, RuntimeCall, Signature, TxExtension>;

/// The payload being signed in transactions.
pub type SignedPayload = generic::SignedPayload<RuntimeCall, TxExtension>;

/// Storage migrations run at a runtime upgrade, each guarded by its pallet's storage version (so
/// it runs once), in this order, before any block's extrinsics. Check them against a live chain's
/// state with `scripts/try-upgrade.sh` (README, "Upgrading the runtime").
type Migrations = (
	// Spec 107: span disputes record their bond (storage version 1 → 2 of attribution).
	pallet_attribution::migrations::v2::MigrateV1ToV2<Runtime, configs::attribution::DisputeBondBeforeV2>,
);

/// Executive: dispatches to the pallets.
pub type Executive = frame_executive::Executive<
	Runtime,
	Block,
	frame_system::ChainContext<Runtime>,
	Runtime,
	AllPalletsWithSystem,
	Migrations,
>;

#[frame_support::runtime]
mod runtime {
	#[runtime::runtime]
	#[runtime::derive(
		RuntimeCall,
		RuntimeEvent,
		RuntimeError,
		RuntimeOrigin,
		RuntimeFreezeReason,
		RuntimeHoldReason,
		RuntimeSlashReason,
		RuntimeLockId,
		RuntimeTask,
		RuntimeViewFunction
	)]
	pub struct Runtime;

	#[runtime::pallet_index(0)]
	pub type System = frame_system;

	#[runtime::pallet_index(1)]
	pub type Timestamp = pallet_timestamp;

	#[runtime::pallet_index(4)]
	pub type Balances = pallet_balances;

	#[runtime::pallet_index(5)]
	pub type TransactionPayment = pallet_transaction_payment;

	#[runtime::pallet_index(6)]
	pub type Sudo = pallet_sudo;

	#[runtime::pallet_index(7)]
	pub type Utility = pallet_utility;

	// Governance (OpenGov).
	#[runtime::pallet_index(8)]
	pub type Preimage = pallet_preimage;

	#[runtime::pallet_index(9)]
	pub type Scheduler = pallet_scheduler;

	#[runtime::pallet_index(10)]
	pub type Referenda = pallet_referenda;

	#[runtime::pallet_index(11)]
	pub type ConvictionVoting = pallet_conviction_voting;

	#[runtime::pallet_index(12)]
	pub type Origins = crate::governance::pallet_origins;

	#[runtime::pallet_index(13)]
	pub type Treasury = pallet_treasury;

	#[runtime::pallet_index(14)]
	pub type Parameters = pallet_parameters;

	// Validators. Declared before Aura and GRANDPA: the session pallet hands them their
	// authorities (at genesis too), so it runs first in every block.
	#[runtime::pallet_index(15)]
	pub type Authorship = pallet_authorship;

	#[runtime::pallet_index(16)]
	pub type ValidatorSet = pallet_validator_set;

	#[runtime::pallet_index(17)]
	pub type Session = pallet_session;

	#[runtime::pallet_index(18)]
	pub type Historical = pallet_session::historical;

	#[runtime::pallet_index(19)]
	pub type Offences = pallet_offences;

	#[runtime::pallet_index(2)]
	pub type Aura = pallet_aura;

	#[runtime::pallet_index(3)]
	pub type Grandpa = pallet_grandpa;

	// 20..: OpenLedger pallets.
	#[runtime::pallet_index(20)]
	pub type Datanets = pallet_datanets;

	#[runtime::pallet_index(21)]
	pub type Models = pallet_models;

	#[runtime::pallet_index(22)]
	pub type OpenStaking = pallet_open_staking;

	#[runtime::pallet_index(23)]
	pub type Attribution = pallet_attribution;
}
