//! Chain specifications. The genesis itself lives in the runtime as named presets; the node only
//! picks one and adds the network's name, id and properties.

use openledger_primitives::currency::{SS58_PREFIX, TOKEN_DECIMALS, TOKEN_SYMBOL};
use openledger_runtime::{genesis_config_presets::TESTNET_TEMPLATE_PRESET, WASM_BINARY};
use sc_service::{ChainType, Properties};

/// The node's chain spec type.
pub type ChainSpec = sc_service::GenericChainSpec;

/// `tokenSymbol`, `tokenDecimals` and `ss58Format`, read by wallets and polkadot-js.
pub fn properties() -> Properties {
	let mut p = Properties::new();
	p.insert("tokenSymbol".into(), TOKEN_SYMBOL.into());
	p.insert("tokenDecimals".into(), TOKEN_DECIMALS.into());
	p.insert("ss58Format".into(), SS58_PREFIX.into());
	p
}

fn spec(name: &str, id: &str, chain_type: ChainType, preset: &str) -> Result<ChainSpec, String> {
	Ok(ChainSpec::builder(WASM_BINARY.ok_or("the runtime Wasm was not built")?, None)
		.with_name(name)
		.with_id(id)
		.with_protocol_id(&format!("openledger-{id}"))
		.with_chain_type(chain_type)
		.with_properties(properties())
		.with_genesis_config_preset_name(preset)
		.build())
}

/// One validator (Alice); the `--dev` chain.
pub fn development_chain_spec() -> Result<ChainSpec, String> {
	spec("OpenLedger Development", "dev", ChainType::Development, sp_genesis_builder::DEV_RUNTIME_PRESET)
}

/// Two validators (Alice, Bob) on one machine; `--chain local`.
pub fn local_chain_spec() -> Result<ChainSpec, String> {
	spec(
		"OpenLedger Local Testnet",
		"local_testnet",
		ChainType::Local,
		sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET,
	)
}

/// The shape of a public testnet; keys must be replaced before launch (`chain-spec/README.md`).
pub fn testnet_template_chain_spec() -> Result<ChainSpec, String> {
	spec("OpenLedger Testnet", "openledger_testnet", ChainType::Live, TESTNET_TEMPLATE_PRESET)
}
