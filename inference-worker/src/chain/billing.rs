//! Paid requests: the payer's voucher comes in the `X-OpenLedger-Voucher` header (hex of the
//! SCALE encoding of `(Voucher, MultiSignature)`), is checked before any token is generated,
//! and the answer's receipt is signed and queued before the answer leaves.

use super::registry::{Registry, ServedModel};
use super::{Receipt, RequestId, SignedReceipt, Voucher};
use crate::attribution::span::Attribution;
use codec::Decode;
use openledger_primitives::evidence::SpanClaim;
use openledger_primitives::receipt::{AttributionMethod, ContributionRef, Share};
use openledger_primitives::Signature;
use sp_core::{sr25519, Pair, H256};
use sp_runtime::{BoundedVec, Perbill};
use std::sync::atomic::Ordering;

/// The request header that carries the voucher.
pub const VOUCHER_HEADER: &str = "x-openledger-voucher";

/// Blocks a voucher may live beyond the finalized block: the runtime's bound
/// (`MaxVoucherLifetime`), from the primitives both share, so a voucher this worker takes is one
/// the chain settles.
pub const MAX_VOUCHER_BLOCKS: u32 = openledger_primitives::receipt::MAX_VOUCHER_LIFETIME_BLOCKS;

/// Why a voucher is refused (HTTP status, message).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
	pub status: u16,
	pub code: &'static str,
	pub message: String,
}

fn refuse(status: u16, code: &'static str, message: impl Into<String>) -> Refusal {
	Refusal { status, code, message: message.into() }
}

/// A voucher accepted for one request.
#[derive(Clone, Debug)]
pub struct Accepted {
	pub voucher: Voucher,
	pub payer_signature: Signature,
	pub served: ServedModel,
	pub request_id: RequestId,
}

/// Decodes the header value.
pub fn parse_header(value: &str) -> Result<(Voucher, Signature), Refusal> {
	let bytes = hex::decode(value.trim().trim_start_matches("0x"))
		.map_err(|_| refuse(400, "invalid_voucher", "the voucher header is not hex"))?;
	let mut input = &bytes[..];
	let v = <(Voucher, Signature)>::decode(&mut input)
		.map_err(|e| refuse(400, "invalid_voucher", format!("the voucher does not decode: {e}")))?;
	if !input.is_empty() {
		return Err(refuse(400, "invalid_voucher", "trailing bytes after the voucher"));
	}
	Ok(v)
}

/// Checks a voucher for a request to `model` that may use up to `max_tokens` tokens in all.
/// What it cannot check here (the payer's escrow, the nonce) the caller checks on chain / in
/// the queue; what the chain would refuse later is refused now.
///
/// `adapter_id` is the id of the adapter that will serve the request (`None` for the base
/// model): it must be the weights hash registered for the model, or the receipt would name
/// weights that were not used.
///
/// `request_hash` is what the request being served hashes to ([`completion_request_hash`],
/// [`chat_request_hash`]): the voucher must name it, so that it buys this answer and no other.
///
/// [`completion_request_hash`]: openledger_primitives::receipt::completion_request_hash
/// [`chat_request_hash`]: openledger_primitives::receipt::chat_request_hash
pub fn check(
	reg: &Registry,
	model: &str,
	adapter_id: Option<&[u8; 32]>,
	request_hash: &H256,
	voucher: Voucher,
	sig: Signature,
	max_tokens: u32,
) -> Result<Accepted, Refusal> {
	let served = reg
		.get(model)
		.ok_or_else(|| refuse(400, "model_not_on_chain", format!("`{model}` is not registered on chain for this worker")))?;

	if voucher.genesis != reg.genesis {
		return Err(refuse(402, "wrong_chain", format!("the voucher is for the chain with genesis {:?}, this worker bills on {:?}", voucher.genesis, reg.genesis)));
	}
	if voucher.request_hash != *request_hash {
		return Err(refuse(
			402,
			"wrong_request",
			format!("the voucher pays for request {:?}; this request is {request_hash:?} (see completion_request_hash / chat_request_hash)", voucher.request_hash),
		));
	}
	if voucher.worker != reg.account {
		return Err(refuse(402, "wrong_worker", format!("the voucher is for worker {}, this is {}", voucher.worker, reg.account)));
	}
	if voucher.model != served.model || voucher.model_version != served.version {
		return Err(refuse(
			402,
			"wrong_model",
			format!("the voucher is for model {} v{}; `{model}` is model {} v{}", voucher.model, voucher.model_version, served.model, served.version),
		));
	}
	if let Some(age) = reg.stale_for() {
		return Err(refuse(
			503,
			"chain_state_stale",
			format!("this worker's view of the chain is {age} s old (it cannot follow the chain); retry shortly"),
		));
	}
	let finalized = reg.finalized.load(Ordering::Relaxed);
	// The worker remembers a used voucher until it expires: it takes none that lives longer.
	if voucher.expires_at > finalized.saturating_add(MAX_VOUCHER_BLOCKS) {
		return Err(refuse(
			402,
			"voucher_expiry_too_far",
			format!("the voucher expires at block {}; this worker takes vouchers expiring within {MAX_VOUCHER_BLOCKS} blocks of {finalized}", voucher.expires_at),
		));
	}
	// Settlement takes a few blocks: a voucher that expires sooner cannot be redeemed.
	if voucher.expires_at < finalized.saturating_add(2) {
		return Err(refuse(402, "voucher_expired", format!("the voucher expires at block {}, the chain is at {finalized}", voucher.expires_at)));
	}
	if voucher.terms != served.terms {
		return Err(refuse(
			402,
			"terms_changed",
			format!("the voucher accepts terms {:?}; model {} is now priced and split as {:?} (see models_getModel, terms_hash)", voucher.terms, served.model, served.terms),
		));
	}
	let worst = served.fee(max_tokens);
	if voucher.max_fee < worst {
		return Err(refuse(402, "fee_above_voucher", format!("this request may cost up to {worst}, the voucher allows {}", voucher.max_fee)));
	}
	if !openledger_primitives::receipt::verify_payer(&sig, &voucher.signing_payload(), &voucher.payer) {
		return Err(refuse(402, "bad_voucher_signature", "the voucher is not signed by its payer"));
	}
	// Last: only a payer's real voucher makes the worker look at (and reload) its adapter.
	if served.weights_hash.as_ref() != adapter_id {
		return Err(refuse(
			409,
			"adapter_changed",
			format!("the adapter `{model}` on this worker is not the one registered as model {} v{}; retry shortly", served.model, served.version),
		));
	}
	let request_id = voucher.request_id();
	Ok(Accepted { voucher, payer_signature: sig, served, request_id })
}

/// The receipt for an answered request: fee by the model's price, the output's length and
/// content root, the attribution (by `method`) restricted to the snapshots of the model's
/// lineage (a receipt may only credit those) and the root of the span claims behind it (only
/// claims of credited contributions), signed with the worker's receipt key. Returns the
/// receipt and the claims it commits to, in order.
pub fn receipt(
	a: &Accepted,
	key: &sr25519::Pair,
	prompt_tokens: u32,
	completion_tokens: u32,
	output: &str,
	method: AttributionMethod,
	credited: &[(ContributionRef, u32)],
	claims: &[SpanClaim],
) -> (SignedReceipt, Vec<SpanClaim>) {
	let fee = a.served.fee(prompt_tokens + completion_tokens).min(a.voucher.max_fee);
	let shares: Vec<Share> = credited
		.iter()
		.filter(|(c, _)| a.served.lineage.contains(&(c.datanet, c.version)))
		.map(|(c, parts)| Share { contribution: *c, share: Perbill::from_parts(*parts) })
		.take(openledger_primitives::receipt::MAX_SHARES as usize)
		.collect();
	let claims: Vec<SpanClaim> = claims.iter().filter(|c| shares.iter().any(|s| s.contribution == c.contribution)).copied().collect();
	let bytes = output.as_bytes();
	let receipt = Receipt {
		voucher: a.voucher.clone(),
		payer_signature: a.payer_signature.clone(),
		prompt_tokens,
		completion_tokens,
		fee,
		output_len: bytes.len() as u32,
		output_root: openledger_primitives::evidence::content_root(bytes),
		claims_root: openledger_primitives::evidence::claims_tree(&claims).root(),
		claims: claims.len() as u32,
		method,
		attribution: BoundedVec::truncate_from(shares),
	};
	let worker_signature = key.sign(&receipt.signing_payload());
	(SignedReceipt { receipt, worker_signature }, claims)
}

/// Keeps the evidence of a span receipt (its output, committed claims and shares) until it can no
/// longer be disputed, so that the worker can answer a dispute; other receipts keep none.
pub fn keep_evidence(chain: &super::ChainState, signed: &SignedReceipt, output: &str, claims: Vec<SpanClaim>) -> anyhow::Result<()> {
	let r = &signed.receipt;
	if r.method != AttributionMethod::SpanMatch {
		return Ok(());
	}
	// Settled by expiry at the latest; disputable for a challenge window (at most a voucher
	// lifetime) after that, answerable a response window later: twice the lifetime covers both.
	let keep_until = r.voucher.expires_at.saturating_add(2 * MAX_VOUCHER_BLOCKS);
	let shares = r.attribution.iter().map(|s| (s.contribution, s.share.deconstruct())).collect();
	let payer = r.voucher.payer.clone();
	chain.evidence.put(&r.request_id(), &super::evidence::Record { output: output.as_bytes().to_vec(), claims, shares, payer, keep_until })
}

/// The contributions a span attribution credits, with their parts per billion.
pub fn span_credits(a: &Attribution) -> Vec<(ContributionRef, u32)> {
	a.shares.iter().map(|(d, p)| (ContributionRef { datanet: d.datanet, version: d.version, index: d.index }, *p)).collect()
}

#[cfg(test)]
mod tests {
	use super::*;
	use crate::attribution::span::DocRef;
	use codec::Encode;
	use openledger_primitives::AccountId;

	fn setup() -> (Registry, sr25519::Pair, sr25519::Pair) {
		let worker = sr25519::Pair::from_string("//Charlie", None).unwrap();
		let payer = sr25519::Pair::from_string("//Eve", None).unwrap();
		let reg = Registry::new(worker.public().into(), worker.public().0, GENESIS, "base".into(), Some(1), "/nonexistent".into());
		reg.finalized.store(10, Ordering::Relaxed);
		reg.mark_refreshed();
		(reg, worker, payer)
	}

	const GENESIS: H256 = H256::repeat_byte(0x42);
	const TERMS: H256 = H256::repeat_byte(0x7e);

	fn rq() -> H256 {
		openledger_primitives::receipt::completion_request_hash("The court held that")
	}

	fn voucher(payer: &sr25519::Pair, worker: &sr25519::Pair, max_fee: u128) -> (Voucher, Signature) {
		let v = Voucher {
			payer: payer.public().into(),
			worker: AccountId::from(worker.public()),
			model: 1,
			model_version: 1,
			max_fee,
			terms: TERMS,
			nonce: 7,
			expires_at: 100,
			genesis: GENESIS,
			request_hash: rq(),
		};
		let sig = Signature::Sr25519(payer.sign(&v.signing_payload()));
		(v, sig)
	}

	#[test]
	fn header_round_trip_and_checks() {
		let (reg, worker, payer) = setup();
		let served = ServedModel { model: 1, version: 1, per_request: 100, per_1k_tokens: 1000, terms: TERMS, lineage: vec![(4, 1)], weights_hash: None };
		reg.served.write().unwrap().insert("base".into(), served.clone());
		let (v, sig) = voucher(&payer, &worker, 1_000);
		let header = format!("0x{}", hex::encode((v.clone(), sig.clone()).encode()));
		let (v2, sig2) = parse_header(&header).unwrap();
		assert_eq!(v2, v);
		// 100 + 1000 × 900 / 1000 = 1000: exactly the voucher's maximum.
		let ok = check(&reg, "base", None, &rq(), v2.clone(), sig2.clone(), 900).unwrap();
		assert_eq!(ok.request_id, v.request_id());
		assert_eq!(check(&reg, "base", None, &rq(), v2.clone(), sig2.clone(), 901).unwrap_err().code, "fee_above_voucher");
		// Signed for other terms (the model's price or split changed): refused before serving.
		let (mut other_terms, _) = voucher(&payer, &worker, 1_000);
		other_terms.terms = H256::repeat_byte(1);
		let other_sig = Signature::Sr25519(payer.sign(&other_terms.signing_payload()));
		assert_eq!(check(&reg, "base", None, &rq(), other_terms, other_sig, 1).unwrap_err().code, "terms_changed");
		assert_eq!(check(&reg, "other", None, &rq(), v2.clone(), sig2.clone(), 1).unwrap_err().code, "model_not_on_chain");
		let (mut forged, _) = voucher(&payer, &worker, 1_000);
		forged.max_fee = 10_000;
		assert_eq!(check(&reg, "base", None, &rq(), forged, sig2.clone(), 1).unwrap_err().code, "bad_voucher_signature");
		let (v3, s3) = voucher(&payer, &payer, 1_000);
		assert_eq!(check(&reg, "base", None, &rq(), v3, s3, 1).unwrap_err().code, "wrong_worker");
		// An adapter: billed only when the adapter serving it is the registered one.
		let registered = [7u8; 32];
		reg.served.write().unwrap().insert("legal".into(), ServedModel { weights_hash: Some(registered), ..served.clone() });
		assert!(check(&reg, "legal", Some(&registered), &rq(), v2.clone(), sig2.clone(), 1).is_ok());
		let e = check(&reg, "legal", Some(&[8u8; 32]), &rq(), v2.clone(), sig2.clone(), 1).unwrap_err();
		assert_eq!((e.status, e.code), (409, "adapter_changed"));
		assert_eq!(check(&reg, "legal", None, &rq(), v2.clone(), sig2.clone(), 1).unwrap_err().code, "adapter_changed");
		assert_eq!(check(&reg, "base", Some(&registered), &rq(), v2.clone(), sig2.clone(), 1).unwrap_err().code, "adapter_changed");
		let (mut far, _) = voucher(&payer, &worker, 1_000);
		far.expires_at = 10 + MAX_VOUCHER_BLOCKS + 1;
		let far_sig = Signature::Sr25519(payer.sign(&far.signing_payload()));
		assert_eq!(check(&reg, "base", None, &rq(), far, far_sig, 1).unwrap_err().code, "voucher_expiry_too_far");
		// Another chain (or an earlier launch of this one), another prompt: refused.
		let (mut other_chain, _) = voucher(&payer, &worker, 1_000);
		other_chain.genesis = H256::repeat_byte(0x43);
		let s4 = Signature::Sr25519(payer.sign(&other_chain.signing_payload()));
		assert_eq!(check(&reg, "base", None, &rq(), other_chain, s4, 1).unwrap_err().code, "wrong_chain");
		let other_prompt = openledger_primitives::receipt::completion_request_hash("Another prompt");
		assert_eq!(check(&reg, "base", None, &other_prompt, v2.clone(), sig2.clone(), 1).unwrap_err().code, "wrong_request");
		// A wallet's `<Bytes>`-wrapped signature is accepted.
		let wrapped = [&b"<Bytes>"[..], &v2.signing_payload(), &b"</Bytes>"[..]].concat();
		assert!(check(&reg, "base", None, &rq(), v2.clone(), Signature::Sr25519(payer.sign(&wrapped)), 1).is_ok());
		reg.refreshed_at.store(1, Ordering::Relaxed); // last followed the chain in 1970
		assert_eq!(check(&reg, "base", None, &rq(), v2.clone(), sig2.clone(), 1).unwrap_err().code, "chain_state_stale");
		reg.mark_refreshed();
		reg.finalized.store(99, Ordering::Relaxed);
		assert_eq!(check(&reg, "base", None, &rq(), v2, sig2, 1).unwrap_err().code, "voucher_expired");
		assert!(parse_header("0xzz").is_err());
		assert!(parse_header(&format!("{header}00")).is_err(), "trailing bytes");

		// The receipt: fee by tokens, only lineage contributions credited, signature verifies.
		let spans = Attribution {
			spans: vec![],
			shares: vec![
				(DocRef { datanet: 4, version: 1, index: 3, content_hash: [0; 32] }, 600_000_000),
				(DocRef { datanet: 5, version: 1, index: 0, content_hash: [0; 32] }, 300_000_000),
			],
			coverage: 0.9,
			claims: vec![],
			ranked: vec![],
		};
		let credited = span_credits(&spans);
		let claim = |datanet| SpanClaim { output_start: 0, len: 30, contribution: ContributionRef { datanet, version: 1, index: if datanet == 4 { 3 } else { 0 } }, offset: 5 };
		let (r, committed) = receipt(&ok, &worker, 10, 20, "answer", AttributionMethod::SpanMatch, &credited, &[claim(4), claim(5)]);
		assert_eq!(r.receipt.fee, 130);
		// Only the credited contribution's claim is committed; the output's bytes are.
		assert_eq!(committed, vec![claim(4)]);
		assert_eq!((r.receipt.claims, r.receipt.claims_root), (1, openledger_primitives::evidence::claims_tree(&[claim(4)]).root()));
		assert_eq!((r.receipt.output_len, r.receipt.output_root), (6, openledger_primitives::evidence::content_root(b"answer")));
		assert_eq!(r.receipt.attribution.len(), 1);
		assert_eq!(r.receipt.attribution[0].contribution, ContributionRef { datanet: 4, version: 1, index: 3 });
		assert!(sr25519::Pair::verify(&r.worker_signature, r.receipt.signing_payload(), &worker.public()));
		assert_eq!(r.receipt.request_id(), ok.request_id);
	}
}
