//! OPEN staking for inference workers.

use super::TreasuryAccount;
use crate::{currency::OPEN, time::DAYS, Balances, BlockNumber, Models, Runtime, RuntimeEvent, RuntimeHoldReason};
use frame_support::{parameter_types, traits::ConstU32};
use frame_system::EnsureRoot;

parameter_types! {
	/// Least self-bond of an eligible worker: 1,000 OPEN.
	pub const MinWorkerBond: crate::Balance = 1_000 * OPEN;
	/// Least delegation: 10 OPEN.
	pub const MinDelegation: crate::Balance = 10 * OPEN;
	/// Unbonding takes 7 days until governance changes it (longer than any challenge window).
	pub const DefaultUnbondingPeriod: BlockNumber = 7 * DAYS;
}

impl pallet_open_staking::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Models = Models;
	type MinWorkerBond = MinWorkerBond;
	type MinDelegation = MinDelegation;
	type DefaultUnbondingPeriod = DefaultUnbondingPeriod;
	/// Stake stays slashable for at least a challenge window.
	type MinUnbondingPeriod = super::attribution::ChallengeWindow;
	/// Root (sudo on the dev and test networks) until on-chain governance exists.
	type GovernanceOrigin = EnsureRoot<crate::AccountId>;
	type SlashDestination = TreasuryAccount;
	type MaxEndpointLen = ConstU32<256>;
	type MaxModelsPerWorker = ConstU32<64>;
	type MaxDelegators = ConstU32<256>;
	type MaxUnbondingChunks = ConstU32<16>;
	type WeightInfo = pallet_open_staking::weights::SubstrateWeight<Runtime>;
}
