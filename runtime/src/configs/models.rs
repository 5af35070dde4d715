//! Model registry: fees in OPEN to the treasury, default and minimum revenue splits.

use super::TreasuryAccount;
use crate::{currency::OPEN, Balances, Datanets, Runtime, RuntimeEvent};
use frame_support::{parameter_types, traits::ConstU32};
use super::governance::{dynamic_params, Clamp};
use frame_support::traits::ConstU128;
use pallet_models::RevenueSplit;
use sp_runtime::Perbill;

parameter_types! {
	/// Split of a newly registered model: owner 40 %, data 30 %, worker 20 %, treasury 10 %.
	pub const DefaultRevenueSplit: RevenueSplit = RevenueSplit {
		owner: Perbill::from_percent(40),
		data: Perbill::from_percent(30),
		worker: Perbill::from_percent(20),
		treasury: Perbill::from_percent(10),
	};
	/// From genesis, no model gives its data contributors less than 10 %, its workers less than
	/// 5 % or the treasury less than 1 % (governance may change it with `set_min_split`).
	pub const InitialMinRevenueSplit: RevenueSplit = RevenueSplit {
		owner: Perbill::zero(),
		data: Perbill::from_percent(10),
		worker: Perbill::from_percent(5),
		treasury: Perbill::from_percent(1),
	};
}

impl pallet_models::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type Currency = Balances;
	type Snapshots = Datanets;
	type RegistrationFee = Clamp<dynamic_params::models::RegistrationFee, ConstU128<0>, ConstU128<{ 100_000 * OPEN }>>;
	type VersionFee = Clamp<dynamic_params::models::VersionFee, ConstU128<0>, ConstU128<{ 100_000 * OPEN }>>;
	type FeeDestination = TreasuryAccount;
	type DefaultSplit = DefaultRevenueSplit;
	type InitialMinSplit = InitialMinRevenueSplit;
	/// Root or a referendum on the parameters track (`set_min_split`).
	type GovernanceOrigin = super::governance::ParametersOrigin;
	type MaxNameLen = ConstU32<64>;
	type MaxUriLen = ConstU32<256>;
	type TermsGrace = ConstU32<{ openledger_primitives::receipt::MAX_VOUCHER_LIFETIME_BLOCKS }>;
	type MaxLineage = ConstU32<16>;
	type MaxTargetModules = ConstU32<16>;
	type MaxModuleNameLen = ConstU32<32>;
	type WeightInfo = pallet_models::weights::SubstrateWeight<Runtime>;
}
