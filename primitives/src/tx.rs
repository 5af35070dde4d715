//! Signed extrinsics for off-chain code that does not link the runtime (the inference worker).
//!
//! The runtime's `UncheckedExtrinsic` is a SCALE-encoded version-4 signed extrinsic whose
//! transaction extensions are the standard set (see `openledger_runtime::TxExtension`). Off-chain
//! code that knows the call's pallet and call index can build the same bytes from this module;
//! the runtime's tests check that [`signed_extrinsic`] equals
//! `UncheckedExtrinsic::new_signed(..).encode()` byte for byte and that the indices below are
//! the runtime's, so a change on either side fails a test instead of a transaction.

use crate::{AccountId, Hash, Nonce};
use alloc::vec::Vec;
use codec::{Compact, Encode};
use sp_core::{sr25519, Pair};
use sp_runtime::{MultiAddress, MultiSignature};

/// `pallet_index` of the attribution pallet in the runtime.
pub const ATTRIBUTION_PALLET: u8 = 23;
/// Call index of `Attribution::submit_receipts`.
pub const SUBMIT_RECEIPTS_CALL: u8 = 3;
/// Call index of `Attribution::answer`: `(request id, DisputeKind, Vec<SpanEvidence>)`.
pub const ANSWER_CALL: u8 = 10;
/// `pallet_index` of the model registry.
pub const MODELS_PALLET: u8 = 21;
/// Call index of `Models::register_adapter`; its arguments encode as the tuple
/// `(base, name, license, rank: u16, alpha: u16, target_modules: Vec<Vec<u8>>, weights_hash,
/// uri, lineage: Vec<(datanet, version, Perbill parts)>, training_config_hash)`.
pub const REGISTER_ADAPTER_CALL: u8 = 1;
/// `pallet_index` of OPEN staking.
pub const STAKING_PALLET: u8 = 22;
/// Call index of `OpenStaking::update_worker`: `(Option<signing key>, Option<endpoint>,
/// Option<Vec<ModelId>>, Option<Perbill parts>)`.
pub const UPDATE_WORKER_CALL: u8 = 1;

/// What a signed extrinsic commits to besides the call.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TxContext {
	pub genesis: Hash,
	pub spec_version: u32,
	pub tx_version: u32,
	pub nonce: Nonce,
}

/// The encoded call `pallet.call(args)`: the two indices, then the SCALE-encoded arguments.
pub fn encode_call(pallet: u8, call: u8, args: &impl Encode) -> Vec<u8> {
	let mut out = Vec::with_capacity(2 + args.size_hint());
	out.push(pallet);
	out.push(call);
	args.encode_to(&mut out);
	out
}

/// The explicit extension data: immortal era, nonce, no tip, metadata-hash check disabled
/// (the other extensions of the set have no explicit data).
fn extension(nonce: Nonce) -> Vec<u8> {
	let mut out = Vec::new();
	0u8.encode_to(&mut out); // CheckEra: Era::Immortal
	Compact(nonce).encode_to(&mut out); // CheckNonce
	Compact(0u128).encode_to(&mut out); // ChargeTransactionPayment: tip
	0u8.encode_to(&mut out); // CheckMetadataHash: Mode::Disabled
	out
}

/// The bytes a signer signs: call, explicit extension data, then the implicit data (spec and
/// transaction version, genesis hash, era birth block = genesis for an immortal era, no
/// metadata hash), hashed with blake2-256 if longer than 256 bytes.
pub fn signing_payload(call: &[u8], ctx: &TxContext) -> Vec<u8> {
	let mut payload = Vec::with_capacity(call.len() + 80);
	payload.extend_from_slice(call);
	payload.extend_from_slice(&extension(ctx.nonce));
	(ctx.spec_version, ctx.tx_version, ctx.genesis, ctx.genesis, Option::<[u8; 32]>::None).encode_to(&mut payload);
	if payload.len() > 256 {
		sp_core::hashing::blake2_256(&payload).to_vec()
	} else {
		payload
	}
}

/// A version-4 signed extrinsic of `call` by `signer` (sr25519), length-prefixed as it goes
/// over `author_submitExtrinsic`.
pub fn signed_extrinsic(call: &[u8], signer: &sr25519::Pair, ctx: &TxContext) -> Vec<u8> {
	let signature = signer.sign(&signing_payload(call, ctx));
	let who: AccountId = signer.public().into();
	let mut body = Vec::with_capacity(call.len() + 110);
	body.push(0b1000_0000 | 4); // signed, format version 4
	MultiAddress::<AccountId, ()>::Id(who).encode_to(&mut body);
	MultiSignature::Sr25519(signature).encode_to(&mut body);
	body.extend_from_slice(&extension(ctx.nonce));
	body.extend_from_slice(call);
	let mut out = Compact(body.len() as u32).encode();
	out.extend_from_slice(&body);
	out
}

/// Storage key of `OpenStaking::Workers(who)` (a `Blake2_128Concat` map).
pub fn worker_storage_key(who: &AccountId) -> Vec<u8> {
	let mut key = sp_core::hashing::twox_128(b"OpenStaking").to_vec();
	key.extend_from_slice(&sp_core::hashing::twox_128(b"Workers"));
	let encoded = who.encode();
	key.extend_from_slice(&sp_core::hashing::blake2_128(&encoded));
	key.extend_from_slice(&encoded);
	key
}

/// The leading fields of a worker's on-chain record, which is all a worker needs to configure
/// itself: decode it from the start of the stored `WorkerInfo` (later fields are ignored).
#[derive(Clone, Debug, PartialEq, Eq, codec::Decode)]
pub struct WorkerRecordHead {
	/// The key receipts must be signed with.
	pub signing_key: [u8; 32],
	/// The public endpoint registered for it.
	pub endpoint: Vec<u8>,
	/// The models it is registered to serve.
	pub models: Vec<crate::ModelId>,
}
