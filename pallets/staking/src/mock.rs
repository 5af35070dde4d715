//! A mock runtime: System, Balances (with holds) and OPEN staking over a fake model registry.

use crate as pallet_open_staking;
use frame_support::{derive_impl, parameter_types, traits::ConstU32};
use frame_system::EnsureRoot;
use openledger_primitives::ModelId;
use sp_runtime::BuildStorage;

type Block = frame_system::mocking::MockBlock<Test>;
pub type Balance = u64;
pub type AccountId = u64;

frame_support::construct_runtime!(
	pub enum Test {
		System: frame_system,
		Balances: pallet_balances,
		Staking: pallet_open_staking,
	}
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
	type Block = Block;
	type AccountData = pallet_balances::AccountData<Balance>;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
	type Balance = Balance;
	type AccountStore = System;
	type RuntimeHoldReason = RuntimeHoldReason;
	type ExistentialDeposit = frame_support::traits::ConstU64<1>;
}

/// Models 0..10 exist.
pub struct MockModels;
impl openledger_primitives::ModelRegistry for MockModels {
	fn model_exists(id: ModelId) -> bool {
		id < 10
	}
}

pub const TREASURY: AccountId = 999;
pub const MIN_BOND: Balance = 1_000;
pub const MIN_DELEGATION: Balance = 100;
pub const UNBONDING: u64 = 10;

parameter_types! {
	pub const Treasury: AccountId = TREASURY;
}

impl pallet_open_staking::Config for Test {
	type RuntimeEvent = RuntimeEvent;
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type Models = MockModels;
	type MinWorkerBond = frame_support::traits::ConstU64<MIN_BOND>;
	type MinDelegation = frame_support::traits::ConstU64<MIN_DELEGATION>;
	type DefaultUnbondingPeriod = frame_support::traits::ConstU64<UNBONDING>;
	type MinUnbondingPeriod = frame_support::traits::ConstU64<3>;
	type GovernanceOrigin = EnsureRoot<AccountId>;
	type SlashOrigin = EnsureRoot<AccountId>;
	type SlashDestination = Treasury;
	type MaxEndpointLen = ConstU32<64>;
	type MaxModelsPerWorker = ConstU32<4>;
	type MaxDelegators = ConstU32<3>;
	type MaxUnbondingChunks = ConstU32<3>;
	type CommissionChangeDelay = frame_support::traits::ConstU64<COMMISSION_DELAY>;
	type RewardPayer = FromPayer;
	type WeightInfo = ();
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = MockModels;
}

pub const COMMISSION_DELAY: u64 = 5;

/// Pays staking rewards from `PAYER` (the attribution pot in the runtime).
pub struct FromPayer;
impl crate::RewardPayer<AccountId, Balance> for FromPayer {
	fn pay(to: &AccountId, amount: Balance) -> sp_runtime::DispatchResult {
		use frame_support::traits::{fungible::Mutate, tokens::Preservation};
		<Balances as Mutate<AccountId>>::transfer(&PAYER, to, amount, Preservation::Preserve).map(|_| ())
	}
}

#[cfg(feature = "runtime-benchmarks")]
impl crate::BenchmarkHelper<Test> for MockModels {
	fn models(n: u32) -> Vec<ModelId> {
		(0..n.min(10)).collect()
	}
	fn fund_rewards(amount: Balance) {
		use frame_support::traits::fungible::Mutate;
		let _ = <Balances as Mutate<AccountId>>::mint_into(&PAYER, amount);
	}
}

pub const W: AccountId = 1; // worker
pub const D1: AccountId = 2;
pub const D2: AccountId = 3;
pub const D3: AccountId = 4;
pub const D4: AccountId = 5;
pub const PAYER: AccountId = 6;
pub const START: Balance = 100_000;

pub fn new_test_ext() -> sp_io::TestExternalities {
	let mut t = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	pallet_balances::GenesisConfig::<Test> {
		balances: vec![(W, START), (D1, START), (D2, START), (D3, START), (D4, START), (PAYER, START), (7, START), (TREASURY, 1)],
		..Default::default()
	}
	.assimilate_storage(&mut t)
	.unwrap();
	let mut ext = sp_io::TestExternalities::new(t);
	ext.execute_with(|| System::set_block_number(1));
	ext
}
