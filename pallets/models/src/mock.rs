//! A mock runtime: System, Balances and the model registry over a fake set of snapshots.

use crate as pallet_models;
use crate::RevenueSplit;
use frame_support::{derive_impl, parameter_types, traits::ConstU32};
use frame_system::EnsureRoot;
use openledger_primitives::{DatanetId, SnapshotVersion};
use sp_runtime::{BuildStorage, Perbill};
use std::cell::RefCell;

type Block = frame_system::mocking::MockBlock<Test>;
pub type Balance = u64;
pub type AccountId = u64;

frame_support::construct_runtime!(
	pub enum Test {
		System: frame_system,
		Balances: pallet_balances,
		Registry: pallet_models,
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
	type ExistentialDeposit = frame_support::traits::ConstU64<1>;
}

thread_local! {
	/// The snapshots that "exist" in this mock.
	pub static SNAPSHOTS: RefCell<Vec<(DatanetId, SnapshotVersion)>> = RefCell::new(vec![(0, 1), (0, 2), (1, 1)]);
}

pub struct MockSnapshots;
impl openledger_primitives::DatanetSnapshots for MockSnapshots {
	fn snapshot_exists(datanet: DatanetId, version: SnapshotVersion) -> bool {
		SNAPSHOTS.with(|s| s.borrow().contains(&(datanet, version)))
	}
	#[cfg(feature = "runtime-benchmarks")]
	fn benchmark_snapshot(datanet: DatanetId, version: SnapshotVersion) {
		SNAPSHOTS.with(|s| s.borrow_mut().push((datanet, version)));
	}
}

pub const TREASURY: AccountId = 999;
pub const REGISTRATION_FEE: Balance = 50;
pub const VERSION_FEE: Balance = 5;

parameter_types! {
	pub const Treasury: AccountId = TREASURY;
	pub const DefaultSplit: RevenueSplit = RevenueSplit {
		owner: Perbill::from_percent(40),
		data: Perbill::from_percent(30),
		worker: Perbill::from_percent(20),
		treasury: Perbill::from_percent(10),
	};
	/// Data and treasury shares are floored from genesis.
	pub const InitialMinSplit: RevenueSplit = RevenueSplit {
		owner: Perbill::zero(),
		data: Perbill::from_percent(10),
		worker: Perbill::zero(),
		treasury: Perbill::from_percent(1),
	};
}

impl pallet_models::Config for Test {
	type RuntimeEvent = RuntimeEvent;
	type Currency = Balances;
	type Snapshots = MockSnapshots;
	type RegistrationFee = frame_support::traits::ConstU64<REGISTRATION_FEE>;
	type VersionFee = frame_support::traits::ConstU64<VERSION_FEE>;
	type FeeDestination = Treasury;
	type DefaultSplit = DefaultSplit;
	type InitialMinSplit = InitialMinSplit;
	type GovernanceOrigin = EnsureRoot<AccountId>;
	type MaxNameLen = ConstU32<32>;
	type MaxUriLen = ConstU32<64>;
	type TermsGrace = frame_support::traits::ConstU64<20>;
	type MaxLineage = ConstU32<4>;
	type MaxTargetModules = ConstU32<4>;
	type MaxModuleNameLen = ConstU32<16>;
	type WeightInfo = ();
}

pub const ALICE: AccountId = 1;
pub const BOB: AccountId = 2;
pub const POOR: AccountId = 3;

pub fn new_test_ext() -> sp_io::TestExternalities {
	let mut t = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	pallet_balances::GenesisConfig::<Test> {
		balances: vec![(ALICE, 10_000), (BOB, 10_000), (POOR, 20), (TREASURY, 1)],
		..Default::default()
	}
	.assimilate_storage(&mut t)
	.unwrap();
	let mut ext = sp_io::TestExternalities::new(t);
	ext.execute_with(|| System::set_block_number(1));
	ext
}
