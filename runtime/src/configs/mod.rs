//! Configuration of every pallet in the runtime (`impl X::Config for Runtime`).
//!
//! Split per domain once it grows; the OpenLedger pallets get a file each.

pub mod attribution;
mod datanets;
pub mod governance;
mod models;
mod staking;
pub mod validators;
pub use attribution::ATTRIBUTION_POT_ID;
pub use datanets::{MIN_CONTRIBUTION_DEPOSIT_BASE, MIN_CONTRIBUTION_DEPOSIT_PER_BYTE};

use frame_support::{
	derive_impl, parameter_types,
	traits::{
		fungible::{Balanced, Credit},
		ConstBool, ConstU128, ConstU32, ConstU64, ConstU8, Get, Imbalance, OnUnbalanced,
		VariantCountOf,
	},
	weights::{
		constants::{ParityDbWeight, WEIGHT_REF_TIME_PER_SECOND},
		ConstantMultiplier, Weight,
	},
	PalletId,
};
use frame_system::limits::{BlockLength, BlockWeights};
use pallet_transaction_payment::{FungibleAdapter, Multiplier, TargetedFeeAdjustment};
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_runtime::{
	traits::{AccountIdConversion, Bounded},
	FixedPointNumber, Perbill, Perquintill,
};
use sp_version::RuntimeVersion;

use super::{
	currency::{MICRO_OPEN, SS58_PREFIX},
	AccountId, Aura, Balance, Balances, Block, BlockNumber, Hash, Nonce, OriginCaller, PalletInfo,
	Runtime, RuntimeCall, RuntimeEvent, RuntimeFreezeReason, RuntimeHoldReason, RuntimeOrigin,
	RuntimeTask, System, BLOCK_HASH_COUNT, EXISTENTIAL_DEPOSIT, SLOT_DURATION, VERSION,
};

const NORMAL_DISPATCH_RATIO: Perbill = Perbill::from_percent(75);

/// Fee per picosecond of `ref_time` weight: a 125 µs base extrinsic costs 0.00625 OPEN.
pub const WEIGHT_FEE: Balance = 50_000_000;
/// Fee per byte of an extrinsic: 0.000001 OPEN.
pub const TRANSACTION_BYTE_FEE: Balance = MICRO_OPEN;

/// Account of the OpenLedger treasury. Receives every transaction fee (and, later, the treasury
/// share of inference fees and slashed stake).
pub const TREASURY_PALLET_ID: PalletId = PalletId(*b"ol/trsry");
/// Account of the ecosystem reserve: OPEN set aside at genesis for data and model rewards.
pub const ECOSYSTEM_PALLET_ID: PalletId = PalletId(*b"ol/ecosy");

parameter_types! {
	pub const BlockHashCount: BlockNumber = BLOCK_HASH_COUNT;
	pub const Version: RuntimeVersion = VERSION;

	/// 2 seconds of compute in a 6 second block.
	pub RuntimeBlockWeights: BlockWeights = BlockWeights::with_sensible_defaults(
		Weight::from_parts(2u64 * WEIGHT_REF_TIME_PER_SECOND, u64::MAX),
		NORMAL_DISPATCH_RATIO,
	);
	pub RuntimeBlockLength: BlockLength = BlockLength::max_with_normal_ratio(5 * 1024 * 1024, NORMAL_DISPATCH_RATIO);
	pub const SS58Prefix: u16 = SS58_PREFIX;
	pub TreasuryAccount: AccountId = TREASURY_PALLET_ID.into_account_truncating();
	pub EcosystemAccount: AccountId = ECOSYSTEM_PALLET_ID.into_account_truncating();
	/// The attribution pot (fees settled, not yet claimed); endowed with the existential deposit.
	pub AttributionPot: AccountId = ATTRIBUTION_POT_ID.into_account_truncating();
}

#[derive_impl(frame_system::config_preludes::SolochainDefaultConfig)]
impl frame_system::Config for Runtime {
	type Block = Block;
	type BlockWeights = RuntimeBlockWeights;
	type BlockLength = RuntimeBlockLength;
	type AccountId = AccountId;
	type Nonce = Nonce;
	type Hash = Hash;
	type BlockHashCount = BlockHashCount;
	/// The node stores its state in ParityDB.
	type DbWeight = ParityDbWeight;
	type Version = Version;
	type AccountData = pallet_balances::AccountData<Balance>;
	type SS58Prefix = SS58Prefix;
	type MaxConsumers = ConstU32<16>;
}

/// The most validators (Aura and GRANDPA authorities).
pub const MAX_AUTHORITIES: u32 = 32;

impl pallet_aura::Config for Runtime {
	type AuthorityId = AuraId;
	type DisabledValidators = ();
	type MaxAuthorities = ConstU32<MAX_AUTHORITIES>;
	type AllowMultipleBlocksPerSlot = ConstBool<false>;
	type SlotDuration = pallet_aura::MinimumPeriodTimesTwo<Runtime>;
}

parameter_types! {
	/// An equivocation report stays valid in the pool for as long as its session is kept.
	pub ReportLongevity: u64 = validators::KEPT_SESSIONS as u64 * <validators::SessionPeriod as Get<BlockNumber>>::get() as u64;
}

impl pallet_grandpa::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type WeightInfo = ();
	type MaxAuthorities = ConstU32<MAX_AUTHORITIES>;
	type MaxNominators = ConstU32<0>;
	/// One set id per session at most, for the sessions kept for proofs.
	type MaxSetIdSessionEntries = ConstU64<{ validators::KEPT_SESSIONS as u64 }>;
	type KeyOwnerProof = sp_session::MembershipProof;
	/// Equivocations are checked against the historical session record and reported to
	/// `pallet-offences`, which removes the offender from the validator set.
	type EquivocationReportSystem =
		pallet_grandpa::EquivocationReportSystem<Self, crate::Offences, crate::Historical, ReportLongevity>;
}

impl pallet_timestamp::Config for Runtime {
	/// Milliseconds since the unix epoch.
	type Moment = u64;
	type OnTimestampSet = Aura;
	type MinimumPeriod = ConstU64<{ SLOT_DURATION / 2 }>;
	type WeightInfo = ();
}

impl pallet_balances::Config for Runtime {
	type MaxLocks = ConstU32<50>;
	type MaxReserves = ConstU32<50>;
	type ReserveIdentifier = [u8; 8];
	type Balance = Balance;
	type RuntimeEvent = RuntimeEvent;
	type DustRemoval = ();
	type ExistentialDeposit = ConstU128<EXISTENTIAL_DEPOSIT>;
	type AccountStore = System;
	type WeightInfo = pallet_balances::weights::SubstrateWeight<Runtime>;
	type FreezeIdentifier = RuntimeFreezeReason;
	type MaxFreezes = VariantCountOf<RuntimeFreezeReason>;
	type RuntimeHoldReason = RuntimeHoldReason;
	type RuntimeFreezeReason = RuntimeFreezeReason;
	type DoneSlashHandler = ();
}

/// Sends transaction fees and tips to the treasury account instead of burning them, so that
/// paying fees never changes the total issuance of OPEN.
pub struct FeesToTreasury;
impl OnUnbalanced<Credit<AccountId, Balances>> for FeesToTreasury {
	fn on_nonzero_unbalanced(amount: Credit<AccountId, Balances>) {
		// The treasury is endowed at genesis, so it always exists and `resolve` cannot fail on
		// the existential deposit; were it ever to fail, the credit would be burned (issuance
		// drops by the same amount), which `invariants::check` still accepts.
		if let Err(credit) = Balances::resolve(&TreasuryAccount::get(), amount) {
			frame_support::defensive!("treasury could not take fees", credit.peek());
		}
	}
}

parameter_types! {
	/// Fees follow demand as on Polkadot (`TargetedFeeAdjustment`): blocks fuller than a quarter
	/// of their normal capacity raise the fee multiplier, emptier ones lower it, never below
	/// 1/10 of the base fee (and 1 at genesis).
	pub const TargetBlockFullness: Perquintill = Perquintill::from_percent(25);
	pub AdjustmentVariable: Multiplier = Multiplier::saturating_from_rational(75, 1_000_000);
	pub MinimumMultiplier: Multiplier = Multiplier::saturating_from_rational(1, 10u128);
	pub MaximumMultiplier: Multiplier = Bounded::max_value();
}

impl pallet_transaction_payment::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type OnChargeTransaction = FungibleAdapter<Balances, FeesToTreasury>;
	type OperationalFeeMultiplier = ConstU8<5>;
	type WeightToFee = ConstantMultiplier<Balance, ConstU128<WEIGHT_FEE>>;
	type LengthToFee = ConstantMultiplier<Balance, ConstU128<TRANSACTION_BYTE_FEE>>;
	type FeeMultiplierUpdate =
		TargetedFeeAdjustment<Self, TargetBlockFullness, AdjustmentVariable, MinimumMultiplier, MaximumMultiplier>;
	type WeightInfo = pallet_transaction_payment::weights::SubstrateWeight<Runtime>;
}

impl pallet_sudo::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeCall = RuntimeCall;
	type WeightInfo = pallet_sudo::weights::SubstrateWeight<Runtime>;
}

impl pallet_utility::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeCall = RuntimeCall;
	type PalletsOrigin = OriginCaller;
	type WeightInfo = pallet_utility::weights::SubstrateWeight<Runtime>;
}
