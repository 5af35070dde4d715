//! Pallets whose benchmarks the runtime exposes (run with `scripts/benchmark.sh`).

frame_benchmarking::define_benchmarks!(
	[frame_benchmarking, BaselineBench::<Runtime>]
	[frame_system, SystemBench::<Runtime>]
	[frame_system_extensions, SystemExtensionsBench::<Runtime>]
	[pallet_balances, Balances]
	[pallet_timestamp, Timestamp]
	[pallet_sudo, Sudo]
	[pallet_utility, Utility]
	[pallet_datanets, Datanets]
	[pallet_models, Models]
	[pallet_open_staking, OpenStaking]
	[pallet_attribution, Attribution]
	[pallet_validator_set, ValidatorSet]
);
