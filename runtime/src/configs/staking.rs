//! OPEN staking for inference workers.

use super::TreasuryAccount;
use crate::{currency::OPEN, time::DAYS, Balances, BlockNumber, Models, Runtime, RuntimeEvent, RuntimeHoldReason};
use frame_support::{parameter_types, traits::ConstU32};
use super::governance::{dynamic_params, Clamp};
use frame_support::traits::ConstU128;

parameter_types! {
	/// Unbonding takes 7 days until governance changes it (longer than any challenge window).
	pub const DefaultUnbondingPeriod: BlockNumber = 7 * DAYS;
	pub const MinUnbondingPeriod: BlockNumber = super::attribution::ChallengeWindow::get() + 10 * crate::time::MINUTES;
	pub const CommissionChangeDelay: BlockNumber = 2 * super::attribution::ChallengeWindow::get();
}

impl pallet_open_staking::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Models = Models;
	/// 1,000 OPEN unless governance changes it, within [1, 10,000,000] OPEN.
	type MinWorkerBond = Clamp<dynamic_params::staking::MinWorkerBond, ConstU128<OPEN>, ConstU128<{ 10_000_000 * OPEN }>>;
	/// 10 OPEN unless governance changes it, within [0.001 (the existential deposit), 1,000,000] OPEN.
	type MinDelegation = Clamp<dynamic_params::staking::MinDelegation, ConstU128<{ crate::EXISTENTIAL_DEPOSIT }>, ConstU128<{ 1_000_000 * OPEN }>>;
	type DefaultUnbondingPeriod = DefaultUnbondingPeriod;
	/// Stake stays slashable for longer than a challenge window: stake that starts unbonding
	/// when a receipt settles is still held when the last challenge of it can be filed.
	type MinUnbondingPeriod = MinUnbondingPeriod;
	/// Root or a referendum on the parameters track (`set_unbonding_period`).
	type GovernanceOrigin = super::governance::ParametersOrigin;
	/// Root only (a referendum on the root track): a direct slash can take any fraction of a
	/// worker's and its delegators' stake. Verdicts on challenges (disputes track) slash the
	/// fixed `ReceiptSlash` through the attribution pallet.
	type SlashOrigin = frame_system::EnsureRoot<crate::AccountId>;
	type SlashDestination = TreasuryAccount;
	type MaxEndpointLen = ConstU32<256>;
	type MaxModelsPerWorker = ConstU32<64>;
	type MaxDelegators = ConstU32<256>;
	type MaxUnbondingChunks = ConstU32<16>;
	/// A commission raise waits two challenge windows: the worker's shares of receipts settled
	/// before it was announced vest (a window later) at the old rate, and delegators can leave.
	type CommissionChangeDelay = CommissionChangeDelay;
	type RewardPayer = super::attribution::PotPaysStakingRewards;
	type WeightInfo = pallet_open_staking::weights::SubstrateWeight<Runtime>;
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = BenchmarkHelper;
}

/// Registers base models for the staking benchmarks (a worker serving the most models).
#[cfg(feature = "runtime-benchmarks")]
pub struct BenchmarkHelper;
#[cfg(feature = "runtime-benchmarks")]
impl pallet_open_staking::BenchmarkHelper<Runtime> for BenchmarkHelper {
	fn fund_rewards(amount: crate::Balance) {
		use frame_support::traits::fungible::{Inspect, Mutate, MutateHold};
		let pot = crate::configs::AttributionPot::get();
		let _ = Balances::mint_into(&pot, amount + Balances::minimum_balance());
		Balances::hold(&crate::RuntimeHoldReason::Attribution(pallet_attribution::HoldReason::Owed), &pot, amount)
			.expect("minted above");
	}
	fn models(n: u32) -> alloc::vec::Vec<pallet_open_staking::ModelId> {
		use crate::RuntimeOrigin;
		use alloc::vec;
		use frame_support::traits::fungible::Mutate;
		let owner = crate::AccountId::new([0xbb; 32]);
		let _ = Balances::set_balance(&owner, 1_000_000 * OPEN);
		(0..n)
			.map(|i| {
				let id = pallet_models::NextModelId::<Runtime>::get();
				let mut hash = [0xb1; 32];
				hash[..4].copy_from_slice(&i.to_le_bytes());
				Models::register_base(RuntimeOrigin::signed(owner.clone()), b"b".to_vec(), vec![], vec![], hash.into(), vec![], Default::default(), [0; 32].into())
					.expect("base model");
				id
			})
			.collect()
	}
}
