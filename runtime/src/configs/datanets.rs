//! Datanets: community datasets with provenance, deposits in OPEN.

use super::TreasuryAccount;
use crate::{
	currency::{MICRO_OPEN, MILLI_OPEN, OPEN},
	Balances, Runtime, RuntimeEvent, RuntimeHoldReason,
};
use frame_support::{parameter_types, traits::ConstU32};
use sp_runtime::Perbill;

/// The least a Datanet may ask per contribution: 0.01 OPEN ...
pub const MIN_CONTRIBUTION_DEPOSIT_BASE: crate::Balance = 10 * MILLI_OPEN;
/// ... plus 0.0001 OPEN per byte of the on-chain record.
pub const MIN_CONTRIBUTION_DEPOSIT_PER_BYTE: crate::Balance = 100 * MICRO_OPEN;

parameter_types! {
	pub const MinContributionDepositBase: crate::Balance = MIN_CONTRIBUTION_DEPOSIT_BASE;
	pub const MinContributionDepositPerByte: crate::Balance = MIN_CONTRIBUTION_DEPOSIT_PER_BYTE;
	/// A rejected contribution forfeits 20 % of its deposit to the treasury.
	pub const RejectionForfeit: Perbill = Perbill::from_percent(20);
}

impl pallet_datanets::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	/// 10 OPEN unless governance changes it, within [0.001, 1,000,000] OPEN.
	type DatanetDeposit = super::governance::Clamp<super::governance::dynamic_params::datanets::DatanetDeposit, frame_support::traits::ConstU128<MILLI_OPEN>, frame_support::traits::ConstU128<{ 1_000_000 * OPEN }>>;
	type MinContributionDepositBase = MinContributionDepositBase;
	type MinContributionDepositPerByte = MinContributionDepositPerByte;
	type RejectionForfeit = RejectionForfeit;
	type ForfeitDestination = TreasuryAccount;
	type MaxNameLen = ConstU32<64>;
	type MaxUriLen = ConstU32<256>;
	type MaxLicenseLen = ConstU32<64>;
	type MaxMetadataLen = ConstU32<1024>;
	type MaxCurators = ConstU32<32>;
	type MaxLeaves = ConstU32<20_000>;
	type MaxPending = ConstU32<20_000>;
	type WeightInfo = pallet_datanets::weights::SubstrateWeight<Runtime>;
}
