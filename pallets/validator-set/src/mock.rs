//! A mock runtime: System and the validator set, managed by root.

use crate as pallet_validator_set;
use frame_support::{derive_impl, traits::ConstU32};
use frame_system::EnsureRoot;
use sp_runtime::BuildStorage;

type Block = frame_system::mocking::MockBlock<Test>;

frame_support::construct_runtime!(
	pub enum Test {
		System: frame_system,
		ValidatorSet: pallet_validator_set,
	}
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
	type Block = Block;
	type DbWeight = frame_support::weights::constants::RocksDbWeight;
}

pub const MAX: u32 = 4;
pub const MIN: u32 = 2;

thread_local! {
	/// Accounts with session keys: all but 8 and 9.
	pub static KEYLESS: std::cell::RefCell<Vec<u64>> = std::cell::RefCell::new(vec![8, 9]);
}

pub struct HasKeys;
impl frame_support::traits::Contains<u64> for HasKeys {
	fn contains(who: &u64) -> bool {
		!KEYLESS.with(|k| k.borrow().contains(who))
	}
}

/// Drops the session keys of `who` (as `session.purgeKeys` would).
pub fn purge_keys(who: u64) {
	KEYLESS.with(|k| k.borrow_mut().push(who));
}

#[cfg(feature = "runtime-benchmarks")]
pub struct BenchmarkHelper;
#[cfg(feature = "runtime-benchmarks")]
impl crate::BenchmarkHelper<u64> for BenchmarkHelper {
	fn register_keys(who: &u64) {
		KEYLESS.with(|k| k.borrow_mut().retain(|a| a != who));
	}
}

impl pallet_validator_set::Config for Test {
	type RuntimeEvent = RuntimeEvent;
	type ManagerOrigin = EnsureRoot<u64>;
	type MaxValidators = ConstU32<MAX>;
	type MinValidators = ConstU32<MIN>;
	type HasKeys = HasKeys;
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = BenchmarkHelper;
	type WeightInfo = ();
}

/// Validators 1, 2 and 3 at genesis.
pub fn new_test_ext() -> sp_io::TestExternalities {
	let mut t = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	pallet_validator_set::GenesisConfig::<Test> { validators: vec![1, 2, 3] }.assimilate_storage(&mut t).unwrap();
	let mut ext = sp_io::TestExternalities::new(t);
	ext.execute_with(|| System::set_block_number(1));
	ext
}
