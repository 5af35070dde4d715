//! The money paths from the command line: OPEN amounts, vouchers, the model terms they name.
//!
//! Amounts are written in OPEN with up to 18 decimals (`2.5`, `0.000001`) or in the smallest
//! unit with a `planck` suffix (`1500planck`); they print the same way.

use crate::chain::Chain;
use anyhow::{bail, ensure, Context, Result};
use codec::Encode;
use jsonrpsee::rpc_params;
use openledger_primitives::{
	currency::{OPEN, TOKEN_DECIMALS},
	receipt::{self, Voucher},
	AccountId, Balance, BlockNumber,
};
use sp_core::{sr25519, Pair, H256};
use sp_runtime::MultiSignature;

/// An amount of OPEN: `2.5`, `0.000001`, `1000` (OPEN) or `1500planck` (smallest unit).
pub fn parse_open(s: &str) -> Result<Balance> {
	let s = s.trim().replace('_', "");
	if let Some(p) = s.strip_suffix("planck") {
		return p.trim().parse::<Balance>().with_context(|| format!("not an amount: {s}"));
	}
	let s = s.strip_suffix("OPEN").unwrap_or(&s).trim();
	let (whole, frac) = s.split_once('.').unwrap_or((s, ""));
	ensure!(
		!(whole.is_empty() && frac.is_empty()) && whole.chars().chain(frac.chars()).all(|c| c.is_ascii_digit()),
		"not an amount of OPEN: {s:?} (write 2.5, 0.001 or 1500planck)"
	);
	ensure!(frac.len() <= TOKEN_DECIMALS as usize, "OPEN has {TOKEN_DECIMALS} decimals: {s}");
	let whole: Balance = if whole.is_empty() { 0 } else { whole.parse().with_context(|| format!("too large: {s}"))? };
	let frac_units: Balance = if frac.is_empty() {
		0
	} else {
		frac.parse::<Balance>()? * 10u128.pow(TOKEN_DECIMALS as u32 - frac.len() as u32)
	};
	whole.checked_mul(OPEN).and_then(|w| w.checked_add(frac_units)).with_context(|| format!("too large: {s}"))
}

/// `amount` as OPEN with its significant decimals (`2.5`, `0.000001`, `0`).
pub fn fmt_open(amount: Balance) -> String {
	let (whole, frac) = (amount / OPEN, amount % OPEN);
	if frac == 0 {
		return whole.to_string();
	}
	let frac = format!("{frac:0width$}", width = TOKEN_DECIMALS as usize);
	format!("{whole}.{}", frac.trim_end_matches('0'))
}

/// What a voucher for a model must say, read from the chain (`models_getModel`): its latest
/// version that is not deprecated, the terms hash and the price.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quote {
	pub model: u32,
	pub version: u32,
	pub terms: H256,
	pub per_request: Balance,
	pub per_1k_tokens: Balance,
}

impl Quote {
	pub async fn of(chain: &Chain, model: u32) -> Result<Self> {
		let m: serde_json::Value = chain.rpc("models_getModel", rpc_params![model]).await?;
		let version = m["versions"]
			.as_array()
			.into_iter()
			.flatten()
			.filter(|v| v["deprecated"] == false)
			.filter_map(|v| v["version"].as_u64())
			.max()
			.with_context(|| format!("model {model} has no version that is not deprecated"))? as u32;
		let num = |k: &str| -> Result<Balance> { m[k].as_str().context("a price")?.parse().context("a price") };
		Ok(Self {
			model,
			version,
			terms: crate::hash_of(&m["terms"])?,
			per_request: num("pricePerRequest")?,
			per_1k_tokens: num("pricePer1kTokens")?,
		})
	}
}

/// What one voucher authorizes (besides the payer, who signs, and the chain's genesis).
#[derive(Clone, Debug)]
pub struct VoucherSpec {
	pub worker: AccountId,
	pub quote: Quote,
	pub max_fee: Balance,
	pub nonce: u64,
	pub expires_at: BlockNumber,
	pub request_hash: H256,
}

/// A signed voucher: what goes in `X-OpenLedger-Voucher`, and the request id it will have.
#[derive(Clone, Debug)]
pub struct SignedVoucher {
	pub voucher: Voucher<AccountId, Balance, BlockNumber>,
	pub signature: MultiSignature,
	/// Hex of SCALE `(Voucher, MultiSignature)`.
	pub header: String,
	/// The bytes signed: SCALE `(Vec<u8> domain, Voucher)`.
	pub payload: Vec<u8>,
	pub request_id: H256,
}

/// Signs `spec` as `payer` for the chain with genesis `genesis`.
pub fn sign_voucher(payer: &sr25519::Pair, genesis: H256, spec: &VoucherSpec) -> SignedVoucher {
	let voucher = Voucher {
		payer: crate::chain::account_of(payer),
		worker: spec.worker.clone(),
		model: spec.quote.model,
		model_version: spec.quote.version,
		max_fee: spec.max_fee,
		terms: spec.quote.terms,
		nonce: spec.nonce,
		expires_at: spec.expires_at,
		genesis,
		request_hash: spec.request_hash,
	};
	let payload = voucher.signing_payload();
	let signature = MultiSignature::Sr25519(payer.sign(&payload));
	let header = format!("0x{}", hex::encode((&voucher, &signature).encode()));
	SignedVoucher { request_id: voucher.request_id(), voucher, signature, header, payload }
}

/// The request hash of an OpenAI-style body for `path` (`/v1/completions`: its `prompt`;
/// `/v1/chat/completions`: its messages' roles and text content, as the worker reads them).
pub fn request_hash(path: &str, body: &serde_json::Value) -> Result<H256> {
	if path.ends_with("/chat/completions") {
		let msgs = body["messages"].as_array().context("`messages` must be a list")?;
		let mut pairs = Vec::with_capacity(msgs.len());
		for m in msgs {
			let role = m["role"].as_str().context("every message needs a `role`")?;
			let content = match &m["content"] {
				serde_json::Value::Null => String::new(),
				serde_json::Value::String(s) => s.clone(),
				serde_json::Value::Array(parts) => {
					let mut s = String::new();
					for p in parts {
						match (p["type"].as_str(), p["text"].as_str()) {
							(Some("text"), Some(t)) => s.push_str(t),
							_ => bail!("only text content parts are supported"),
						}
					}
					s
				},
				_ => bail!("a message's content must be a string or a list of text parts"),
			};
			pairs.push((role.to_string(), content));
		}
		Ok(receipt::chat_request_hash(pairs.iter().map(|(r, c)| (r.as_str(), c.as_str()))))
	} else if path.ends_with("/completions") {
		match &body["prompt"] {
			serde_json::Value::String(p) => Ok(receipt::completion_request_hash(p)),
			serde_json::Value::Array(a) if a.len() == 1 && a[0].is_string() =>
				Ok(receipt::completion_request_hash(a[0].as_str().expect("checked; qed"))),
			_ => bail!("a paid completion takes one prompt string"),
		}
	} else {
		bail!("{path} is not a paid route")
	}
}

/// A fresh voucher nonce: microseconds since the epoch, shifted, plus a process counter, so
/// vouchers signed by several processes of one payer do not collide in practice (a collision
/// is refused by the chain as a used request id, never double-charged).
pub fn fresh_nonce() -> u64 {
	use std::sync::atomic::{AtomicU64, Ordering};
	static COUNTER: AtomicU64 = AtomicU64::new(0);
	let micros = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_micros() as u64).unwrap_or(0);
	(micros << 12) ^ (COUNTER.fetch_add(1, Ordering::Relaxed) & 0xfff) ^ ((std::process::id() as u64 & 0xff) << 56)
}

#[cfg(test)]
mod tests {
	use super::*;

	#[test]
	fn amounts_parse_and_print_exactly() {
		assert_eq!(parse_open("2.5").unwrap(), 5 * OPEN / 2);
		assert_eq!(parse_open("0.000000000000000001").unwrap(), 1);
		assert_eq!(parse_open("1500planck").unwrap(), 1500);
		assert_eq!(parse_open("1_000").unwrap(), 1000 * OPEN);
		assert_eq!(parse_open(".5").unwrap(), OPEN / 2);
		assert_eq!(parse_open("3 OPEN").unwrap(), 3 * OPEN);
		for bad in ["", ".", "-1", "1e3", "0.0000000000000000001", "1.2.3", "٣", "340282366920938463463374607431768211455"] {
			assert!(parse_open(bad).is_err(), "{bad:?} parsed");
		}
		for x in [0, 1, OPEN, 5 * OPEN / 2, 123_456_789, u128::MAX] {
			assert_eq!(parse_open(&fmt_open(x)).unwrap(), x, "{}", fmt_open(x));
		}
		assert_eq!(fmt_open(OPEN / 1000), "0.001");
	}

	#[test]
	fn request_hashes_are_the_workers() {
		let chat = serde_json::json!({ "messages": [
			{ "role": "system", "content": "Be brief." },
			{ "role": "user", "content": [{ "type": "text", "text": "Hé " }, { "type": "text", "text": "there" }] },
		]});
		assert_eq!(
			request_hash("/v1/chat/completions", &chat).unwrap(),
			receipt::chat_request_hash([("system", "Be brief."), ("user", "Hé there")])
		);
		let c = serde_json::json!({ "prompt": "The court held that" });
		assert_eq!(request_hash("/v1/completions", &c).unwrap(), receipt::completion_request_hash("The court held that"));
		assert!(request_hash("/v1/completions", &serde_json::json!({ "prompt": ["a", "b"] })).is_err());
		assert!(request_hash("/v1/chat/completions", &serde_json::json!({ "messages": [{ "role": "user", "content": [{ "type": "image_url" }] }] })).is_err());
		assert!(request_hash("/v1/embeddings", &c).is_err());
	}

	#[test]
	fn a_voucher_signs_its_payload_and_names_its_request_id() {
		let pair = sr25519::Pair::from_string("//Alice", None).unwrap();
		let quote = Quote { model: 1, version: 2, terms: H256::repeat_byte(7), per_request: 1, per_1k_tokens: 2 };
		let spec = VoucherSpec { worker: AccountId::new([9; 32]), quote, max_fee: OPEN, nonce: 5, expires_at: 100, request_hash: H256::repeat_byte(3) };
		let v = sign_voucher(&pair, H256::repeat_byte(1), &spec);
		assert_eq!(v.payload, (receipt::VOUCHER_DOMAIN, &v.voucher).encode());
		assert_eq!(v.request_id, H256(sp_core::hashing::blake2_256(&v.payload)));
		assert!(receipt::verify_payer(&v.signature, &v.payload, &crate::chain::account_of(&pair)));
		let bytes = hex::decode(v.header.trim_start_matches("0x")).unwrap();
		let (back, sig) = <(Voucher<AccountId, Balance, BlockNumber>, MultiSignature) as codec::Decode>::decode(&mut &bytes[..]).unwrap();
		assert_eq!((back, sig), (v.voucher.clone(), v.signature.clone()));
		assert_ne!(fresh_nonce(), fresh_nonce());
	}
}
