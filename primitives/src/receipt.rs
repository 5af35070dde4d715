//! Vouchers and attribution receipts: the one definition that the runtime and the inference
//! worker share, so the bytes a worker signs are the bytes the chain checks.
//!
//! - A payer signs a [`Voucher`] off chain for each request: which worker and model (version),
//!   the most it will pay, a unique nonce and an expiry block. Its hash is the request id.
//! - The worker serves the request and signs a [`Receipt`]: the voucher and the payer's
//!   signature, token counts, the fee charged (≤ the voucher's maximum), the output's length and
//!   content root, the root of its span claims (see [`crate::evidence`]), and the attribution — which Datanet contributions (by snapshot reference) shaped the answer,
//!   with `Perbill` shares, and the method that found them.
//!
//! Signatures cover domain-separated SCALE encodings ([`Voucher::signing_payload`],
//! [`Receipt::signing_payload`]), so a signature for one can never be replayed as the other.
//! A voucher names the chain (its genesis hash), so it is worthless on any chain with another
//! genesis (a relaunch from the same raw chain spec has the same genesis hash: relaunch with a
//! new spec), and the request it pays for ([`Voucher::request_hash`], see
//! [`completion_request_hash`] and [`chat_request_hash`]), so it cannot buy another prompt. A
//! payer signature may also be over the payload wrapped in `<Bytes>…</Bytes>`, as the
//! polkadot-js extension's `signRaw` signs ([`verify_payer`]).

use crate::{DatanetId, LeafIndex, ModelId, ModelVersion, SnapshotVersion};
use alloc::vec::Vec;
use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
use scale_info::TypeInfo;
use sp_core::{sr25519, ConstU32, H256};
use sp_runtime::{traits::Verify, BoundedVec, Perbill, RuntimeDebug};

/// Domain tag of voucher signatures and request ids.
pub const VOUCHER_DOMAIN: &[u8] = b"openledger:voucher:v4";
/// Domain tag of receipt signatures.
pub const RECEIPT_DOMAIN: &[u8] = b"openledger:receipt:v4";

/// The terms a payer accepts for a model: blake2-256 of the SCALE encoding of
/// `("terms", split, per_request, per_1k_tokens)` (the model's revenue split and price as the
/// registry stores them, prices as `u128`). A voucher names them; the runtime settles it only
/// under those terms (the current ones, or the previous ones within a grace period after a
/// change) and charges at most their price.
pub fn terms_hash(split: &crate::RevenueSplit, per_request: u128, per_1k_tokens: u128) -> H256 {
	H256(sp_core::hashing::blake2_256(&("terms", split, per_request, per_1k_tokens).encode()))
}

/// The fee of a request of `tokens` tokens (prompt + completion) at a model's price, rounded
/// down: `per_request + per_1k_tokens × tokens / 1000` (saturating).
pub fn price_of(per_request: u128, per_1k_tokens: u128, tokens: u64) -> u128 {
	per_request.saturating_add(per_1k_tokens.saturating_mul(tokens as u128) / 1000)
}

/// The request a voucher pays for, for `/v1/completions`: blake2-256 of the SCALE encoding of
/// `("completion", prompt)` (strings as compact length + UTF-8, so the bytes are unambiguous;
/// polkadot-js: `createType('(Text, Text)', ['completion', prompt])`).
pub fn completion_request_hash(prompt: &str) -> H256 {
	H256(sp_core::hashing::blake2_256(&("completion", prompt).encode()))
}

/// The request a voucher pays for, for `/v1/chat/completions`: blake2-256 of the SCALE encoding
/// of `("chat", [(role, text content), ...])` (polkadot-js:
/// `createType('(Text, Vec<(Text, Text)>)', ['chat', [[role, content], ...]])`).
pub fn chat_request_hash<'a>(messages: impl IntoIterator<Item = (&'a str, &'a str)>) -> H256 {
	let messages: Vec<(&str, &str)> = messages.into_iter().collect();
	H256(sp_core::hashing::blake2_256(&("chat", messages).encode()))
}

/// Whether `sig` is `signer`'s signature of `payload`, or of `payload` wrapped in
/// `<Bytes>…</Bytes>` (what wallets such as the polkadot-js extension sign for raw bytes).
pub fn verify_payer<S: Verify>(sig: &S, payload: &[u8], signer: &<S::Signer as sp_runtime::traits::IdentifyAccount>::AccountId) -> bool {
	if sig.verify(payload, signer) {
		return true;
	}
	let mut wrapped = Vec::with_capacity(payload.len() + 15);
	wrapped.extend_from_slice(b"<Bytes>");
	wrapped.extend_from_slice(payload);
	wrapped.extend_from_slice(b"</Bytes>");
	sig.verify(&wrapped[..], signer)
}
/// Most attributed contributions in one receipt.
pub const MAX_SHARES: u32 = 32;

/// Most blocks a voucher may stay valid after its receipt is settled (one day of 6-second
/// blocks): the runtime rejects a later `expires_at` (`ExpiryTooFar`) and workers refuse such
/// vouchers before serving. It is not above the runtime's challenge window, so a receipt's
/// payouts vest as soon as the window closes.
pub const MAX_VOUCHER_LIFETIME_BLOCKS: u32 = 14_400;
/// [`MAX_SHARES`] as a type.
pub type MaxShares = ConstU32<MAX_SHARES>;

/// A request id: blake2-256 of the domain-tagged voucher.
pub type RequestId = H256;

/// What a payer authorizes for one request.
#[derive(Clone, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct Voucher<AccountId, Balance, BlockNumber> {
	/// Who pays (from their escrow).
	pub payer: AccountId,
	/// The only worker that may redeem it.
	pub worker: AccountId,
	/// The model asked for.
	pub model: ModelId,
	/// Its version.
	pub model_version: ModelVersion,
	/// The most the worker may charge.
	pub max_fee: Balance,
	/// The model's terms the payer accepted ([`terms_hash`] of its split and price).
	pub terms: H256,
	/// Unique per payer; makes the request id unique.
	pub nonce: u64,
	/// Last block at which it can be redeemed.
	pub expires_at: BlockNumber,
	/// The chain it is for: its genesis block hash.
	pub genesis: H256,
	/// The request it pays for ([`completion_request_hash`], [`chat_request_hash`]); the worker
	/// serves no other.
	pub request_hash: H256,
}

impl<AccountId: Encode, Balance: Encode, BlockNumber: Encode> Voucher<AccountId, Balance, BlockNumber> {
	/// The bytes the payer signs.
	pub fn signing_payload(&self) -> Vec<u8> {
		(VOUCHER_DOMAIN, self).encode()
	}

	/// The request id: blake2-256 of [`Self::signing_payload`].
	pub fn request_id(&self) -> RequestId {
		H256(sp_core::hashing::blake2_256(&self.signing_payload()))
	}
}

/// A contribution as models reference it: leaf `index` of snapshot `version` of `datanet`.
#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, PartialOrd, Ord, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct ContributionRef {
	pub datanet: DatanetId,
	pub version: SnapshotVersion,
	pub index: LeafIndex,
}

/// How the attribution was computed.
#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub enum AttributionMethod {
	/// Longest matching spans of the output in the snapshot's corpus (suffix array).
	SpanMatch,
	/// Influence of the adapter's training examples on the output (LoRA gradients).
	Influence,
	/// Documents retrieved into the prompt.
	Retrieval,
}

/// One attributed contribution and its share of the data revenue.
#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
#[cfg_attr(feature = "std", derive(serde::Serialize, serde::Deserialize))]
pub struct Share {
	pub contribution: ContributionRef,
	pub share: Perbill,
}

/// What a worker reports about one served request.
#[derive(Clone, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
pub struct Receipt<AccountId, Balance, BlockNumber, Signature> {
	/// The payer's authorization.
	pub voucher: Voucher<AccountId, Balance, BlockNumber>,
	/// The payer's signature of [`Voucher::signing_payload`].
	pub payer_signature: Signature,
	/// Tokens of the prompt.
	pub prompt_tokens: u32,
	/// Tokens of the completion.
	pub completion_tokens: u32,
	/// What the worker charges (≤ `voucher.max_fee`).
	pub fee: Balance,
	/// Bytes of the output text (UTF-8).
	pub output_len: u32,
	/// Content root of the output text ([`crate::evidence::content_root`]): any byte range of
	/// the answer can be proven against it.
	pub output_root: H256,
	/// Root of the span claims ([`crate::evidence::claims_tree`]) that justify a span-match
	/// attribution (zero for none, and for other methods).
	pub claims_root: H256,
	/// How many claims are under `claims_root`.
	pub claims: u32,
	/// How the attribution was computed.
	pub method: AttributionMethod,
	/// Attributed contributions; shares sum to at most 100 %.
	pub attribution: BoundedVec<Share, MaxShares>,
}

impl<AccountId: Encode, Balance: Encode, BlockNumber: Encode, Signature: Encode>
	Receipt<AccountId, Balance, BlockNumber, Signature>
{
	/// The request id (of the voucher).
	pub fn request_id(&self) -> RequestId {
		self.voucher.request_id()
	}

	/// The bytes the worker signs with its registered signing key.
	pub fn signing_payload(&self) -> Vec<u8> {
		(RECEIPT_DOMAIN, self).encode()
	}

	/// The sum of the shares, or `None` if it exceeds 100 %.
	pub fn shares_total(&self) -> Option<Perbill> {
		let total: u64 = self.attribution.iter().map(|s| s.share.deconstruct() as u64).sum();
		(total <= Perbill::one().deconstruct() as u64).then(|| Perbill::from_parts(total as u32))
	}
}

/// A receipt with the worker's sr25519 signature.
#[derive(Clone, Encode, Decode, DecodeWithMemTracking, TypeInfo, MaxEncodedLen, PartialEq, Eq, RuntimeDebug)]
pub struct SignedReceipt<AccountId, Balance, BlockNumber, Signature> {
	pub receipt: Receipt<AccountId, Balance, BlockNumber, Signature>,
	/// By the worker's registered signing key over [`Receipt::signing_payload`].
	pub worker_signature: sr25519::Signature,
}

impl<AccountId, Balance, BlockNumber, Signature> SignedReceipt<AccountId, Balance, BlockNumber, Signature>
where
	AccountId: Encode,
	Balance: Encode,
	BlockNumber: Encode,
	Signature: Encode + Verify<Signer = sp_runtime::MultiSigner>,
	AccountId: Into<<sp_runtime::MultiSigner as sp_runtime::traits::IdentifyAccount>::AccountId> + Clone,
{
	/// Whether the worker signed it with `key`.
	pub fn worker_signed_with(&self, key: &sr25519::Public) -> bool {
		self.worker_signature.verify(&self.receipt.signing_payload()[..], key)
	}

	/// Whether the voucher's payer signed it (raw or `<Bytes>`-wrapped).
	pub fn payer_signed(&self) -> bool {
		let payer = self.receipt.voucher.payer.clone().into();
		verify_payer(&self.receipt.payer_signature, &self.receipt.voucher.signing_payload(), &payer)
	}
}

/// The receipt as the OpenLedger runtime types it.
pub type OpenReceipt = Receipt<crate::AccountId, crate::Balance, crate::BlockNumber, crate::Signature>;
/// The signed receipt as the OpenLedger runtime types it.
pub type OpenSignedReceipt = SignedReceipt<crate::AccountId, crate::Balance, crate::BlockNumber, crate::Signature>;

#[cfg(all(test, feature = "std"))]
mod tests {
	use super::*;
	use crate::{currency::OPEN, AccountId};
	use sp_core::Pair;
	use sp_runtime::{traits::IdentifyAccount, MultiSigner};

	/// The README's worked voucher example (generated from the runtime metadata by
	/// `scripts/gen-docs.sh`) is the Rust encoding too.
	#[test]
	fn the_readme_voucher_example_holds() {
		let account = |s: &str| <AccountId as sp_core::crypto::Ss58Codec>::from_ss58check(s).unwrap();
		let v = Voucher::<AccountId, u128, u32> {
			payer: account("5GrwvaEF5zXb26Fz9rcQpDWS57CtERHpNehXCPcNoHGKutQY"),
			worker: account("5FLSigC9HGRKVhB9FiEo4Y3koPsNmBmLJbpXg2mp1hXcS59Y"),
			model: 1,
			model_version: 1,
			max_fee: OPEN / 100,
			terms: H256::repeat_byte(0x11),
			nonce: 7,
			expires_at: 1000,
			genesis: H256::repeat_byte(0x22),
			request_hash: completion_request_hash("The court held that"),
		};
		let readme = include_str!("../../README.md");
		let id = format!("{:?}", v.request_id());
		assert!(readme.contains(&format!("request id = blake2-256(signed bytes): `{id}`")), "README lacks request id {id}");
		let signed: String = v.signing_payload().iter().map(|b| format!("{b:02x}")).collect();
		let signed = format!("0x{signed}");
		assert!(readme.contains(&format!("(218 bytes): `{signed}`")), "README lacks the signed bytes {signed}");
	}

	fn receipt(payer: &sr25519::Pair, worker: AccountId) -> OpenReceipt {
		let voucher = Voucher {
			payer: MultiSigner::from(payer.public()).into_account(),
			worker,
			model: 3,
			model_version: 1,
			max_fee: OPEN,
			terms: H256::repeat_byte(0x7e),
			nonce: 7,
			expires_at: 100,
			genesis: H256::repeat_byte(0xaa),
			request_hash: completion_request_hash("The court held that"),
		};
		let payer_signature = payer.sign(&voucher.signing_payload()).into();
		Receipt {
			voucher,
			payer_signature,
			prompt_tokens: 12,
			completion_tokens: 30,
			fee: OPEN / 2,
			output_len: 120,
			output_root: H256::repeat_byte(9),
			claims_root: H256::repeat_byte(8),
			claims: 3,
			method: AttributionMethod::SpanMatch,
			attribution: BoundedVec::truncate_from(vec![
				Share { contribution: ContributionRef { datanet: 0, version: 1, index: 4 }, share: Perbill::from_percent(60) },
				Share { contribution: ContributionRef { datanet: 0, version: 1, index: 9 }, share: Perbill::from_percent(30) },
			]),
		}
	}

	#[test]
	fn signatures_verify_and_tampering_breaks_them() {
		let payer = sr25519::Pair::from_string("//Alice", None).unwrap();
		let stash = sr25519::Pair::from_string("//Bob", None).unwrap();
		let signing_key = sr25519::Pair::from_string("//Bob//receipts", None).unwrap();
		let r = receipt(&payer, MultiSigner::from(stash.public()).into_account());
		let signed = OpenSignedReceipt { worker_signature: signing_key.sign(&r.signing_payload()), receipt: r };
		assert!(signed.payer_signed());
		assert!(signed.worker_signed_with(&signing_key.public()));
		assert!(!signed.worker_signed_with(&stash.public()), "the stash key is not the signing key");

		let mut t = signed.clone();
		t.receipt.fee += 1;
		assert!(!t.worker_signed_with(&signing_key.public()));
		let mut t = signed.clone();
		t.receipt.claims_root = H256::repeat_byte(7);
		assert!(!t.worker_signed_with(&signing_key.public()), "the claims are signed");
		let mut t = signed.clone();
		t.receipt.voucher.max_fee *= 2;
		assert!(!t.payer_signed());
		// Another chain, another request: other payloads, the signature fails.
		let mut t = signed.clone();
		t.receipt.voucher.genesis = H256::repeat_byte(0xbb);
		assert!(!t.payer_signed());
		let mut t = signed.clone();
		t.receipt.voucher.request_hash = completion_request_hash("Another prompt");
		assert!(!t.payer_signed());
		// A wallet's `<Bytes>…</Bytes>` signature of the same payload is accepted, nothing else.
		let mut t = signed.clone();
		let wrapped = [&b"<Bytes>"[..], &t.receipt.voucher.signing_payload(), &b"</Bytes>"[..]].concat();
		t.receipt.payer_signature = payer.sign(&wrapped).into();
		assert!(t.payer_signed());
		let other_wrap = [&b"<bytes>"[..], &t.receipt.voucher.signing_payload(), &b"</bytes>"[..]].concat();
		t.receipt.payer_signature = payer.sign(&other_wrap).into();
		assert!(!t.payer_signed());
		// Round trip through SCALE keeps both signatures valid.
		let decoded = OpenSignedReceipt::decode(&mut &signed.encode()[..]).unwrap();
		assert!(decoded.payer_signed() && decoded.worker_signed_with(&signing_key.public()));
	}

	#[test]
	fn request_ids_are_domain_separated_and_unique_per_nonce() {
		let payer = sr25519::Pair::from_string("//Alice", None).unwrap();
		let r = receipt(&payer, AccountId::new([1; 32]));
		let v = &r.voucher;
		assert_eq!(v.request_id(), H256(sp_core::hashing::blake2_256(&(VOUCHER_DOMAIN, v).encode())));
		assert_ne!(v.request_id(), H256(sp_core::hashing::blake2_256(&v.encode())));
		let mut other = v.clone();
		other.nonce += 1;
		assert_ne!(other.request_id(), v.request_id());
		assert_eq!(r.request_id(), v.request_id());
	}

	/// The request hashes other clients compute (polkadot-js, Python): fixed, unambiguous bytes.
	#[test]
	fn request_hashes_are_fixed_byte_strings() {
		// "completion" is 10 bytes (compact 10 = 0x28), "hi" 2 (0x08).
		assert_eq!(completion_request_hash("hi"), H256(sp_core::hashing::blake2_256(b"\x28completion\x08hi")));
		assert_eq!(
			chat_request_hash([("user", "hi")]),
			H256(sp_core::hashing::blake2_256(b"\x10chat\x04\x10user\x08hi"))
		);
		assert_ne!(chat_request_hash([("user", "a\0user\0b")]), chat_request_hash([("user", "a"), ("user", "b")]));
		assert_ne!(chat_request_hash([("user", "hi")]), chat_request_hash([("system", "hi")]));
	}

	#[test]
	fn share_totals() {
		let payer = sr25519::Pair::from_string("//Alice", None).unwrap();
		let mut r = receipt(&payer, AccountId::new([1; 32]));
		assert_eq!(r.shares_total(), Some(Perbill::from_percent(90)));
		r.attribution[1].share = Perbill::from_percent(41);
		assert_eq!(r.shares_total(), None);
	}
}
