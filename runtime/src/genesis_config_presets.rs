//! Genesis as named presets. The node only picks one (`--dev`, `--chain local`, or a spec file
//! generated from a preset; see `chain-spec/`).
//!
//! Every preset mints exactly [`TOTAL_SUPPLY`] (1,000,000,000 OPEN), split across named accounts:
//!
//! | account | share |
//! |---|---|
//! | treasury (`ol/trsry`) | 40 % (plus any rounding remainder, less the pot's endowment) |
//! | attribution pot (`ol/infer`) | the existential deposit |
//! | ecosystem reserve (`ol/ecosy`) — data and model rewards | 40 % |
//! | the preset's operator / development accounts, evenly | 20 % |

use crate::{
	configs::{AttributionPot, EcosystemAccount, TreasuryAccount},
	governance::GovernanceTiming,
	AccountId, Balance, BalancesConfig, OriginsConfig, RuntimeGenesisConfig, SessionConfig, SessionKeys,
	ValidatorSetConfig, TOTAL_SUPPLY,
};
use alloc::{vec, vec::Vec};
use frame_support::build_struct_json_patch;
use serde_json::Value;
use sp_consensus_aura::sr25519::AuthorityId as AuraId;
use sp_consensus_grandpa::AuthorityId as GrandpaId;
use sp_genesis_builder::{self, PresetId};
use sp_keyring::{Ed25519Keyring, Sr25519Keyring};

/// Name of the public testnet template preset.
pub const TESTNET_TEMPLATE_PRESET: &str = "testnet_template";

/// The genesis allocation of OPEN: `(account, amount)` pairs summing to exactly [`TOTAL_SUPPLY`].
pub fn genesis_allocations(operators: &[AccountId]) -> Vec<(AccountId, Balance)> {
	let treasury = TOTAL_SUPPLY / 100 * 40;
	let ecosystem = TOTAL_SUPPLY / 100 * 40;
	let operators_total = TOTAL_SUPPLY - treasury - ecosystem;
	let (each, remainder) = match operators.len() as u128 {
		0 => (0, operators_total),
		n => (operators_total / n, operators_total % n),
	};
	// The attribution pot must exist: it gets the existential deposit from the treasury's part.
	let pot = crate::EXISTENTIAL_DEPOSIT;
	let mut allocations = vec![
		(TreasuryAccount::get(), treasury + remainder - pot),
		(EcosystemAccount::get(), ecosystem),
		(AttributionPot::get(), pot),
	];
	allocations.extend(operators.iter().cloned().map(|who| (who, each)));
	allocations
}

/// A validator: its account, and the Aura and GRANDPA keys it starts with.
pub type Validator = (AccountId, AuraId, GrandpaId);

fn genesis(validators: Vec<Validator>, operators: Vec<AccountId>, sudo: Option<AccountId>, timing: GovernanceTiming) -> Value {
	// The session pallet hands the first validators' keys to Aura and GRANDPA: their own genesis
	// authorities stay empty.
	let keys = validators
		.iter()
		.map(|(who, aura, grandpa)| (who.clone(), who.clone(), SessionKeys { aura: aura.clone(), grandpa: grandpa.clone() }))
		.collect::<Vec<_>>();
	let set = validators.iter().map(|v| v.0.clone()).collect::<Vec<_>>();
	let mut patch = build_struct_json_patch!(RuntimeGenesisConfig {
		balances: BalancesConfig { balances: genesis_allocations(&operators) },
		validator_set: ValidatorSetConfig { validators: set },
		session: SessionConfig { keys },
		origins: OriginsConfig { timing },
	});
	// Sudo exists on development chains only: everywhere else, root is a referendum.
	if let Some(key) = sudo {
		patch["sudo"] = serde_json::json!({ "key": key });
	}
	patch
}

fn validator(k: Sr25519Keyring, e: Ed25519Keyring) -> Validator {
	(k.to_account_id(), k.public().into(), e.public().into())
}

/// The well-known development accounts (Alice … Ferdie and their stashes).
pub fn dev_accounts() -> Vec<AccountId> {
	Sr25519Keyring::iter()
		.filter(|v| v != &Sr25519Keyring::One && v != &Sr25519Keyring::Two)
		.map(|v| v.to_account_id())
		.collect()
}

/// `development`: one validator (Alice), Alice is sudo, dev accounts endowed, fast governance.
pub fn development_config_genesis() -> Value {
	genesis(
		vec![validator(Sr25519Keyring::Alice, Ed25519Keyring::Alice)],
		dev_accounts(),
		Some(Sr25519Keyring::Alice.to_account_id()),
		GovernanceTiming::Fast,
	)
}

/// `local_testnet`: Alice and Bob validate (both must run for GRANDPA to finalize); no sudo:
/// root is a referendum, with fast periods; dev accounts endowed.
pub fn local_config_genesis() -> Value {
	genesis(
		vec![
			validator(Sr25519Keyring::Alice, Ed25519Keyring::Alice),
			validator(Sr25519Keyring::Bob, Ed25519Keyring::Bob),
		],
		dev_accounts(),
		None,
		GovernanceTiming::Fast,
	)
}

/// `testnet_template`: the shape of a public testnet: no sudo, real governance periods. Its
/// validator and operator keys are the well-known development keys and MUST be replaced before
/// launch (see `chain-spec/README.md`).
pub fn testnet_template_genesis() -> Value {
	genesis(
		vec![
			validator(Sr25519Keyring::Alice, Ed25519Keyring::Alice),
			validator(Sr25519Keyring::Bob, Ed25519Keyring::Bob),
			validator(Sr25519Keyring::Charlie, Ed25519Keyring::Charlie),
		],
		vec![Sr25519Keyring::Alice.to_account_id()],
		None,
		GovernanceTiming::Real,
	)
}

/// The JSON of the preset named `id`, if there is one.
pub fn get_preset(id: &PresetId) -> Option<Vec<u8>> {
	let patch = match id.as_ref() {
		sp_genesis_builder::DEV_RUNTIME_PRESET => development_config_genesis(),
		sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET => local_config_genesis(),
		TESTNET_TEMPLATE_PRESET => testnet_template_genesis(),
		_ => return None,
	};
	Some(
		serde_json::to_string(&patch)
			.expect("serialization of a serde_json::Value cannot fail; qed")
			.into_bytes(),
	)
}

/// The whole genesis config of preset `id`: its patch merged into the default config, as the
/// node does (for native tests and checks).
#[cfg(feature = "std")]
pub fn preset_config(id: &str) -> Option<RuntimeGenesisConfig> {
	fn merge(base: &mut Value, patch: Value) {
		match (base, patch) {
			(Value::Object(b), Value::Object(p)) =>
				for (k, v) in p {
					merge(b.entry(k).or_insert(Value::Null), v);
				},
			(b, p) => *b = p,
		}
	}
	let patch: Value = serde_json::from_slice(&get_preset(&id.into())?).ok()?;
	let mut config = serde_json::to_value(RuntimeGenesisConfig::default()).ok()?;
	merge(&mut config, patch);
	serde_json::from_value(config).ok()
}

/// The presets this runtime offers.
pub fn preset_names() -> Vec<PresetId> {
	vec![
		PresetId::from(sp_genesis_builder::DEV_RUNTIME_PRESET),
		PresetId::from(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET),
		PresetId::from(TESTNET_TEMPLATE_PRESET),
	]
}
