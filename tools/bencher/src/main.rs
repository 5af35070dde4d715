//! `openledger-bencher`: `frame-omni-bencher`'s `v1 benchmark pallet` without RocksDB.
//!
//! Runs the FRAME benchmarks compiled into a runtime Wasm (`--runtime <wasm>`) and renders the
//! results through a Handlebars template into a `weights.rs`. Used by `scripts/benchmark.sh`.

use clap::Parser;
use frame_benchmarking_cli::PalletCmd;
use sp_runtime::traits::BlakeTwo256;

/// Benchmark a pallet in a runtime Wasm.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
	#[command(flatten)]
	cmd: PalletCmd,
}

fn main() -> sc_cli::Result<()> {
	let Cli { cmd } = Cli::parse();
	if let Some(spec) = &cmd.shared_params.chain {
		return Err(format!("chain specs are not supported (`--chain {spec}`): pass --runtime <wasm>").into());
	}
	// The OpenLedger runtime needs no host functions beyond Substrate's own.
	cmd.run_with_spec::<BlakeTwo256, ()>(None)
}
