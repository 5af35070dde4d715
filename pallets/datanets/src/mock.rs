//! A mock runtime: System, Balances (with holds) and Datanets.

use crate as pallet_datanets;
use frame_support::{derive_impl, parameter_types, traits::ConstU32};
use sp_runtime::{BuildStorage, Perbill};

type Block = frame_system::mocking::MockBlock<Test>;
pub type Balance = u64;
pub type AccountId = u64;

frame_support::construct_runtime!(
	pub enum Test {
		System: frame_system,
		Balances: pallet_balances,
		Datanets: pallet_datanets,
	}
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
	type Block = Block;
	type AccountData = pallet_balances::AccountData<Balance>;
	type DbWeight = frame_support::weights::constants::RocksDbWeight;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
	type Balance = Balance;
	type AccountStore = System;
	type RuntimeHoldReason = RuntimeHoldReason;
	type ExistentialDeposit = frame_support::traits::ConstU64<1>;
}

pub const TREASURY: AccountId = 999;
pub const DATANET_DEPOSIT: Balance = 100;
pub const MIN_BASE: Balance = 10;
pub const MIN_PER_BYTE: Balance = 1;

parameter_types! {
	pub const Treasury: AccountId = TREASURY;
	pub const Forfeit: Perbill = Perbill::from_percent(20);
}

impl pallet_datanets::Config for Test {
	type RuntimeEvent = RuntimeEvent;
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type DatanetDeposit = frame_support::traits::ConstU64<DATANET_DEPOSIT>;
	type MinContributionDepositBase = frame_support::traits::ConstU64<MIN_BASE>;
	type MinContributionDepositPerByte = frame_support::traits::ConstU64<MIN_PER_BYTE>;
	type RejectionForfeit = Forfeit;
	type ForfeitDestination = Treasury;
	type MaxNameLen = ConstU32<32>;
	type MaxUriLen = ConstU32<64>;
	type MaxLicenseLen = ConstU32<16>;
	type MaxMetadataLen = ConstU32<64>;
	type MaxCurators = ConstU32<3>;
	type MaxLeaves = ConstU32<16>;
	type MaxPending = ConstU32<8>;
	type WeightInfo = ();
}

pub const ALICE: AccountId = 1;
pub const BOB: AccountId = 2;
pub const CHARLIE: AccountId = 3;
pub const DAVE: AccountId = 4;
pub const POOR: AccountId = 5;
pub const START_BALANCE: Balance = 1_000_000;

pub fn new_test_ext() -> sp_io::TestExternalities {
	let mut t = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	pallet_balances::GenesisConfig::<Test> {
		balances: vec![
			(ALICE, START_BALANCE),
			(BOB, START_BALANCE),
			(CHARLIE, START_BALANCE),
			(DAVE, START_BALANCE),
			(POOR, 50),
			(TREASURY, 1),
		],
		..Default::default()
	}
	.assimilate_storage(&mut t)
	.unwrap();
	let mut ext = sp_io::TestExternalities::new(t);
	ext.execute_with(|| System::set_block_number(1));
	ext
}
