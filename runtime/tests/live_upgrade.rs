//! This runtime's upgrade over a live chain's state, with the checks of `try-runtime
//! on-runtime-upgrade live`, without its separate CLI. It runs the upgrade natively, from the same
//! Rust code the Wasm is built from (try-runtime runs the Wasm itself).
//!
//! `scripts/try-upgrade.sh ws://…` saves the chain's storage at its finalized block
//! (`tests/e2e/snapshot.mjs`) and runs this test over it; under plain `cargo test` it runs over
//! the development genesis with attribution at storage version 1. The test loads the state into
//! externalities and runs `Executive::try_runtime_upgrade` with all checks: each migration's
//! `pre_upgrade`, the upgrade itself (this code's `Migrations`, then every pallet's
//! `on_runtime_upgrade`), each migration's `post_upgrade`, a decode of every storage value of
//! every pallet in the new layout, and every pallet's `try_state`; then the runtime-wide OPEN
//! equalities (`invariants::check`), and idempotency: the upgrade run a second time changes no
//! storage (each migration is guarded by its storage version). It fails on the first check that
//! does not hold, and prints the upgrade's weight against the block's.
#![cfg(feature = "try-runtime")]

use frame_support::traits::GetStorageVersion;
use frame_try_runtime::UpgradeCheckSelect;
use openledger_runtime::{invariants, Attribution, Executive, Runtime, VERSION};
use sp_core::bytes::from_hex;

fn hex(v: &serde_json::Value) -> Vec<u8> {
	from_hex(v.as_str().expect("a hex string")).expect("valid hex")
}

/// The state to upgrade: the snapshot in `OPENLEDGER_STATE` (`scripts/try-upgrade.sh`), else the
/// development genesis with attribution at storage version 1 (as on a spec 106 chain), so that
/// `cargo test` runs the same checks over a state it builds itself.
fn state() -> sp_io::TestExternalities {
	let Ok(path) = std::env::var("OPENLEDGER_STATE") else {
		println!("no OPENLEDGER_STATE: the development genesis, attribution at storage version 1");
		let config = openledger_runtime::genesis_config_presets::preset_config(sp_genesis_builder::DEV_RUNTIME_PRESET)
			.expect("the development preset");
		let mut ext = sp_io::TestExternalities::new(sp_runtime::BuildStorage::build_storage(&config).expect("genesis"));
		ext.execute_with(|| frame_support::traits::StorageVersion::new(1).put::<Attribution>());
		return ext;
	};
	let snapshot: serde_json::Value =
		serde_json::from_slice(&std::fs::read(&path).expect("the snapshot file")).expect("a JSON snapshot");
	let pairs = snapshot["pairs"].as_array().expect("pairs");
	let mut ext = sp_io::TestExternalities::new_empty();
	for pair in pairs {
		let (k, v) = (hex(&pair[0]), hex(&pair[1]));
		assert!(!k.starts_with(b":child_storage:"), "child tries are not in the snapshot; none of our pallets uses one");
		ext.insert(k, v);
	}
	println!(
		"snapshot of block {} ({}), spec {} → this code's spec {}: {} keys",
		snapshot["number"],
		snapshot["at"].as_str().unwrap_or("?"),
		snapshot["specVersion"],
		VERSION.spec_version,
		pairs.len()
	);
	ext
}

#[test]
fn the_upgrade_holds_over_live_state() {
	state().execute_with(|| {
		let attribution_before = Attribution::on_chain_storage_version();
		let weight = Executive::try_runtime_upgrade(UpgradeCheckSelect::All)
			.unwrap_or_else(|e| panic!("the upgrade's checks failed over live state: {e:?}"));
		let block = <Runtime as frame_system::Config>::BlockWeights::get().max_block;
		println!(
			"upgrade weight {} ref_time ps, {} proof bytes; a block allows {} and {} ({}% of its time)",
			weight.ref_time(),
			weight.proof_size(),
			block.ref_time(),
			block.proof_size(),
			weight.ref_time().saturating_mul(100) / block.ref_time().max(1)
		);
		println!(
			"attribution storage version {:?} → {:?}",
			attribution_before,
			Attribution::on_chain_storage_version()
		);
		assert_eq!(Attribution::on_chain_storage_version(), Attribution::in_code_storage_version());
		invariants::check().unwrap_or_else(|e| panic!("a runtime-wide invariant fails after the upgrade: {e}"));
		// Idempotent: a second run (as after a restart mid-upgrade, or a migration left in the
		// list for one more release) must find nothing to do.
		let root = sp_io::storage::root(sp_core::storage::StateVersion::V1);
		Executive::try_runtime_upgrade(UpgradeCheckSelect::None).expect("a second run");
		assert_eq!(sp_io::storage::root(sp_core::storage::StateVersion::V1), root, "the upgrade is not idempotent");
		println!("idempotent: a second run left the state root at {}", sp_core::hexdisplay::HexDisplay::from(&root));
		assert!(weight.all_lte(block), "the upgrade does not fit in one block: {weight:?} > {block:?}");
	});
}
