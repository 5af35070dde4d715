//! Benchmarks (v2). `submit_receipts` over `n` receipts with `s` attributed contributions each,
//! all valid (the worst case: every check passes and every receipt settles), each with its own
//! payer and contributors; keys are generated in the benchmark's keystore and signatures are
//! real. Pruning (`on_idle`) is measured per block and per receipt by its payouts.

use super::*;
use alloc::{vec, vec::Vec};
use frame_benchmarking::v2::*;
use frame_support::{
	traits::{fungible::Mutate, EnsureOrigin, Get},
	BoundedVec,
};
use frame_system::{pallet_prelude::BlockNumberFor, RawOrigin};
use sp_core::{crypto::KeyTypeId, H256};
use sp_runtime::{
	traits::{Bounded, IdentifyAccount, Zero},
	Perbill,
};

const KEY: KeyTypeId = KeyTypeId(*b"bnch");

fn funded<T: Config>(who: &T::AccountId) {
	let _ = T::Currency::set_balance(who, BalanceOf::<T>::max_value() / 1_000u32.into());
}

/// A bonded account other than the fixture's worker (a worker may not challenge its own
/// receipts), funded for the challenge bond.
fn bonded_challenger<T: Config>() -> T::AccountId {
	let challenger: T::AccountId = account("challenger", 0, 0);
	funded::<T>(&challenger);
	let key = sp_io::crypto::sr25519_generate(KEY, None);
	T::BenchmarkHelper::bond(&challenger, key.0);
	challenger
}

struct Fixture<T: Config> {
	worker: T::AccountId,
	receipts: Vec<SignedReceiptOf<T>>,
}

/// `n` valid signed receipts to one worker, `s` shares each: every receipt from a different
/// payer and every share for a different contribution of a different contributor, over a model
/// whose lineage is as long as the registry allows (each Datanet with its own owner), so no
/// write hits an entry another receipt or share already touched (the worst case).
fn fixture<T: Config>(n: u32, s: u32) -> Fixture<T> {
	let worker: T::AccountId = account("worker", 0, 0);
	funded::<T>(&worker);
	let worker_key = sp_io::crypto::sr25519_generate(KEY, None);
	let (model, model_version, datanet, snapshot) = T::BenchmarkHelper::setup(&worker, worker_key.0, (n * s).max(1));
	funded::<T>(&Pallet::<T>::pot());
	funded::<T>(&T::Treasury::get());
	// At least the runtime's minimum fee (a receipt below it is rejected, not settled).
	let fee: BalanceOf<T> = T::MinFee::get().max(1_000_000u32.into());
	// Shares below 100 % in all, so that every lineage Datanet owner is paid too.
	let per = Perbill::from_rational(1u32, s + 1);
	let t = T::Models::terms(model, model_version).expect("the helper registered it");
	let terms = openledger_primitives::receipt::terms_hash(&t.split, t.per_request, t.per_1k_tokens);
	let receipts = (0..n)
		.map(|i| {
			let payer_key = sp_io::crypto::sr25519_generate(KEY, None);
			let payer: T::AccountId = T::BenchmarkHelper::public(payer_key).into_account();
			funded::<T>(&payer);
			Pallet::<T>::deposit_escrow(RawOrigin::Signed(payer.clone()).into(), fee).expect("escrow");
			let voucher = Voucher {
				payer,
				worker: worker.clone(),
				model,
				model_version,
				max_fee: fee,
				terms,
				nonce: i as u64,
				expires_at: frame_system::Pallet::<T>::block_number() + 1_000u32.into(),
				genesis: H256::from_slice(Pallet::<T>::genesis_hash().as_ref()),
				request_hash: H256::repeat_byte(i as u8),
			};
			let sig = sp_io::crypto::sr25519_sign(KEY, &payer_key, &voucher.signing_payload()).expect("key in keystore");
			let attribution = (0..s)
				.map(|j| Share { contribution: ContributionRef { datanet, version: snapshot, index: i * s + j }, share: per })
				.collect::<Vec<_>>();
			let receipt = Receipt {
				voucher,
				payer_signature: T::BenchmarkHelper::signature(sig),
				prompt_tokens: 100,
				completion_tokens: 200,
				fee,
				output_len: 200,
				output_root: H256::repeat_byte(1),
				claims_root: H256::zero(),
				claims: 0,
				method: AttributionMethod::SpanMatch,
				attribution: BoundedVec::truncate_from(attribution),
			};
			let worker_signature =
				sp_io::crypto::sr25519_sign(KEY, &worker_key, &receipt.signing_payload()).expect("key in keystore");
			SignedReceipt { receipt, worker_signature }
		})
		.collect();
	Fixture { worker, receipts }
}

/// Settles one receipt with every share the protocol allows, so that it has the most payouts
/// (`max_payouts`), then keeps only `p` of them (the record is written as the pallet would
/// hold it; the fee is cut to their sum). Returns its request id and pruning block.
fn settled_with_payouts<T: Config>(p: u32) -> (T::AccountId, RequestId, BlockNumberFor<T>) {
	let f = fixture::<T>(1, MAX_SHARES);
	let id = f.receipts[0].receipt.request_id();
	Pallet::<T>::submit_receipts(RawOrigin::Signed(f.worker.clone()).into(), BoundedVec::truncate_from(f.receipts)).unwrap();
	let mut r = Receipts::<T>::get(id).expect("settled");
	assert_eq!(r.payouts.len() as u32, max_payouts::<T>(), "every payout is distinct and non-zero");
	let mut payouts = r.payouts.into_inner();
	payouts.truncate(p as usize);
	r.fee = payouts.iter().fold(0u32.into(), |a: BalanceOf<T>, x| a + x.amount);
	r.payouts = BoundedVec::truncate_from(payouts);
	// Judged by `ResolveOrigin`: an influence receipt (span receipts are disputed by proof).
	r.method = AttributionMethod::Influence;
	Receipts::<T>::insert(id, r);
	(f.worker, id, UsedRequests::<T>::get(id).expect("queued"))
}

fn max_payouts<T: Config>() -> u32 {
	crate::max_payouts::<T>()
}

/// The worst case a range proof can be: content of `MAX_CONTENT_BYTES` bytes (the deepest tree,
/// `MAX_PROOF_DEPTH` siblings per chunk) whose every chunk is the same, so its root and any
/// chunk's path take 20 hashes to build instead of hashing a gibibyte. A span of
/// `MAX_SPAN_BYTES` from an unaligned offset touches two chunks.
mod deep {
	use super::*;
	use openledger_primitives::evidence::{self as ev, ChunkProof, RangeProof, CHUNK_BYTES, MAX_CONTENT_BYTES, MAX_PROOF_DEPTH};

	pub fn chunk() -> Vec<u8> {
		(0..CHUNK_BYTES).map(|i| (i % 251) as u8).collect()
	}

	/// Hashes of full subtrees of 2^k equal chunks, k = 0..=depth.
	fn ladder() -> Vec<H256> {
		let mut leaf = Vec::with_capacity(CHUNK_BYTES as usize + 1);
		leaf.push(0u8);
		leaf.extend(chunk());
		let mut out = vec![H256(sp_io::hashing::blake2_256(&leaf))];
		for _ in 0..MAX_PROOF_DEPTH {
			let h = *out.last().expect("one at least");
			let mut node = [0u8; 65];
			node[0] = 1;
			node[1..33].copy_from_slice(h.as_bytes());
			node[33..].copy_from_slice(h.as_bytes());
			out.push(H256(sp_io::hashing::blake2_256(&node)));
		}
		out
	}

	/// The content root of the deep content.
	pub fn root() -> H256 {
		ev::commit(MAX_CONTENT_BYTES, &ladder()[MAX_PROOF_DEPTH as usize])
	}

	/// Bytes of the deep content.
	pub fn len() -> u64 {
		MAX_CONTENT_BYTES
	}

	/// A proof of `MAX_SPAN_BYTES` bytes from `start` (not chunk-aligned: two chunks).
	pub fn range(start: u64) -> RangeProof {
		let l = ladder();
		let siblings: BoundedVec<H256, _> = BoundedVec::truncate_from(l[..MAX_PROOF_DEPTH as usize].to_vec());
		let first = (start / CHUNK_BYTES as u64) as u32;
		let chunks = (first..first + 2)
			.map(|index| ChunkProof { index, bytes: BoundedVec::truncate_from(chunk()), siblings: siblings.clone() })
			.collect::<Vec<_>>();
		RangeProof { len: MAX_CONTENT_BYTES, tree_root: l[MAX_PROOF_DEPTH as usize], chunks: BoundedVec::truncate_from(chunks) }
	}
}

/// What [`deep_receipt`] sets up.
struct Deep<T: Config> {
	worker: T::AccountId,
	id: RequestId,
	claims: Vec<openledger_primitives::evidence::SpanClaim>,
	/// The contribution credited (deep content).
	credited: ContributionRef,
	/// A contribution of another Datanet of the lineage, not credited.
	other: ContributionRef,
}

/// A settled span-match receipt over the deep output, crediting one contribution with a share
/// its `n` claims (distinct, each `MAX_SPAN_BYTES` long, at offsets a chunk apart) justify, whose
/// content is the deep content too.
fn deep_receipt<T: Config>(n: u32) -> Deep<T> {
	use openledger_primitives::evidence::{self as ev, SpanClaim, CHUNK_BYTES, MAX_SPAN_BYTES};
	let f = fixture::<T>(1, 1);
	let id = f.receipts[0].receipt.request_id();
	let credited = f.receipts[0].receipt.attribution[0].contribution;
	let v = &f.receipts[0].receipt.voucher;
	let lineage = T::Models::terms(v.model, v.model_version).expect("registered").lineage;
	let (d, ver, _) = lineage.iter().copied().find(|(d, _, _)| *d != credited.datanet).expect("a lineage of two Datanets at least");
	let other = ContributionRef { datanet: d, version: ver, index: 0 };
	Pallet::<T>::submit_receipts(RawOrigin::Signed(f.worker.clone()).into(), BoundedVec::truncate_from(f.receipts)).unwrap();
	let claims: Vec<SpanClaim> = (0..n)
		.map(|i| {
			// Equal chunks: any chunk-aligned shift of a range holds the same bytes.
			let start = (2 * i as u64 + 1) * CHUNK_BYTES as u64 + 1;
			SpanClaim { output_start: start as u32, len: MAX_SPAN_BYTES, contribution: credited, offset: start + CHUNK_BYTES as u64 * 4 }
		})
		.collect();
	let mut r = Receipts::<T>::get(id).expect("settled");
	r.output_len = deep::len() as u32;
	r.output_root = deep::root();
	r.claims_root = ev::claims_tree(&claims).root();
	r.claims = claims.len() as u32;
	r.attribution = BoundedVec::truncate_from(vec![Share { contribution: credited, share: Perbill::from_parts(1) }]);
	Receipts::<T>::insert(id, r);
	T::BenchmarkHelper::set_content_root(&credited, deep::root());
	T::BenchmarkHelper::set_content_root(&other, deep::root());
	Deep { worker: f.worker, id, claims, credited, other }
}

fn span_proof(claim: openledger_primitives::evidence::SpanClaim) -> SpanProof {
	SpanProof { claim, output: deep::range(claim.output_start as u64), content: deep::range(claim.offset) }
}

#[benchmarks]
mod benchmarks {
	use super::*;

	#[benchmark]
	fn deposit_escrow() {
		let who: T::AccountId = account("payer", 0, 0);
		funded::<T>(&who);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), 1_000u32.into());
		assert_eq!(Pallet::<T>::escrow_of(&who), 1_000u32.into());
	}

	#[benchmark]
	fn request_escrow_withdrawal() {
		let who: T::AccountId = account("payer", 0, 0);
		funded::<T>(&who);
		Pallet::<T>::deposit_escrow(RawOrigin::Signed(who.clone()).into(), 1_000u32.into()).unwrap();
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()), 500u32.into());
		assert!(Withdrawals::<T>::contains_key(&who));
	}

	#[benchmark]
	fn withdraw_escrow() {
		let who: T::AccountId = account("payer", 0, 0);
		funded::<T>(&who);
		Pallet::<T>::deposit_escrow(RawOrigin::Signed(who.clone()).into(), 1_000u32.into()).unwrap();
		Pallet::<T>::request_escrow_withdrawal(RawOrigin::Signed(who.clone()).into(), 500u32.into()).unwrap();
		frame_system::Pallet::<T>::set_block_number(
			frame_system::Pallet::<T>::block_number() + T::EscrowWithdrawDelay::get(),
		);
		#[extrinsic_call]
		_(RawOrigin::Signed(who.clone()));
		assert_eq!(Pallet::<T>::escrow_of(&who), 500u32.into());
	}

	#[benchmark]
	fn submit_receipts(n: Linear<1, { T::MaxReceiptsPerBatch::get() }>, s: Linear<1, MAX_SHARES>) {
		let f = fixture::<T>(n, s);
		let batch = BoundedVec::truncate_from(f.receipts);
		#[extrinsic_call]
		_(RawOrigin::Signed(f.worker.clone()), batch);
		assert_eq!(ModelUsage::<T>::iter().map(|(_, u)| u.requests).sum::<u64>(), n as u64);
		assert_eq!(Receipts::<T>::iter().count() as u32, n, "every receipt settled");
	}

	/// A payee (the model owner) claims its vested rewards.
	#[benchmark]
	fn claim_rewards() {
		let f = fixture::<T>(1, 1);
		let id = f.receipts[0].receipt.request_id();
		Pallet::<T>::submit_receipts(RawOrigin::Signed(f.worker.clone()).into(), BoundedVec::truncate_from(f.receipts)).unwrap();
		let at = UsedRequests::<T>::get(id).expect("settled");
		frame_system::Pallet::<T>::set_block_number(at);
		Pallet::<T>::prune(at, &mut frame_support::weights::WeightMeter::new());
		let (owner, owed) = Rewards::<T>::iter().next().expect("vested payees");
		assert!(!owed.is_zero(), "vested");
		let caller: T::AccountId = account("caller", 0, 0);
		funded::<T>(&caller);
		#[extrinsic_call]
		_(RawOrigin::Signed(caller), owner.clone());
		assert!(Rewards::<T>::get(&owner).is_zero());
	}

	#[benchmark]
	fn challenge() {
		let f = fixture::<T>(1, 1);
		let id = f.receipts[0].receipt.request_id();
		Pallet::<T>::submit_receipts(RawOrigin::Signed(f.worker.clone()).into(), BoundedVec::truncate_from(f.receipts)).unwrap();
		Receipts::<T>::mutate(id, |r| r.as_mut().expect("settled").method = AttributionMethod::Influence);
		let challenger = bonded_challenger::<T>();
		#[extrinsic_call]
		_(RawOrigin::Signed(challenger), id);
		assert!(Receipts::<T>::get(id).and_then(|r| r.challenger).is_some());
	}

	/// An upheld challenge (the costlier outcome within the window): slashes the worker and its
	/// `d` delegators, reverses every payout (the most a receipt can have).
	#[benchmark]
	fn resolve_challenge(d: Linear<0, { T::Workers::max_delegators() }>) -> Result<(), BenchmarkError> {
		let origin = T::ResolveOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		let (worker, id, _) = settled_with_payouts::<T>(max_payouts::<T>());
		T::BenchmarkHelper::add_delegators(&worker, d);
		// Rewards in the worker's pool: slashing settles every position first.
		T::Workers::accrue_reward(&worker, T::MinFee::get().max(1_000_000u32.into()));
		Pallet::<T>::challenge(RawOrigin::Signed(bonded_challenger::<T>()).into(), id).unwrap();
		#[extrinsic_call]
		resolve_challenge(origin as T::RuntimeOrigin, id, Verdict::False);
		assert!(Receipts::<T>::get(id).is_some_and(|r| r.payouts.is_empty()));
		Ok(())
	}

	/// A valid verdict after the receipt's pruning block (its challenge kept it): it vests its
	/// `p` payouts and is removed.
	#[benchmark]
	fn resolve_challenge_overdue(p: Linear<1, { max_payouts::<T>() }>) -> Result<(), BenchmarkError> {
		let origin = T::ResolveOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		let (_, id, at) = settled_with_payouts::<T>(p);
		Pallet::<T>::challenge(RawOrigin::Signed(bonded_challenger::<T>()).into(), id).unwrap();
		frame_system::Pallet::<T>::set_block_number(at);
		Pallet::<T>::prune(at, &mut frame_support::weights::WeightMeter::new());
		assert!(Receipts::<T>::get(id).is_some_and(|r| r.overdue));
		#[extrinsic_call]
		resolve_challenge(origin as T::RuntimeOrigin, id, Verdict::Valid);
		assert!(Receipts::<T>::get(id).is_none());
		Ok(())
	}

	/// A share dispute of a span receipt by an account with no stake.
	#[benchmark]
	fn challenge_share() {
		let f = fixture::<T>(1, 1);
		let r = &f.receipts[0].receipt;
		let (id, credited) = (r.request_id(), r.attribution[0].contribution);
		Pallet::<T>::submit_receipts(RawOrigin::Signed(f.worker.clone()).into(), BoundedVec::truncate_from(f.receipts)).unwrap();
		let challenger: T::AccountId = account("challenger", 0, 1);
		funded::<T>(&challenger);
		#[extrinsic_call]
		_(RawOrigin::Signed(challenger), id, credited);
		assert!(Disputes::<T>::get((&f.worker, id, DisputeKind::Share(credited))).is_some());
	}

	/// An omission proven over the deepest trees: two range proofs of `MAX_SPAN_BYTES` bytes,
	/// two chunks and `MAX_PROOF_DEPTH` siblings each.
	#[benchmark]
	fn prove_omission() {
		let Deep { worker, id, other, .. } = deep_receipt::<T>(1);
		let start = 3 * openledger_primitives::evidence::CHUNK_BYTES as u64 + 7;
		let claim = openledger_primitives::evidence::SpanClaim {
			output_start: start as u32,
			len: openledger_primitives::evidence::MAX_SPAN_BYTES,
			contribution: other,
			offset: start + 1024 * 9,
		};
		let proof = span_proof(claim);
		let challenger: T::AccountId = account("challenger", 0, 1);
		funded::<T>(&challenger);
		#[extrinsic_call]
		_(RawOrigin::Signed(challenger), id, proof);
		assert_eq!(Disputes::<T>::iter_prefix((&worker, id)).count(), 1);
	}

	/// A share dispute answered with `n` committed claims over the deepest trees (each two
	/// range proofs of two chunks and `MAX_PROOF_DEPTH` siblings, and its claim's path), all
	/// valid: the bond goes to the worker.
	#[benchmark]
	fn answer(n: Linear<1, MAX_EVIDENCE_SPANS>) {
		let Deep { worker, id, claims, credited, .. } = deep_receipt::<T>(n);
		let challenger: T::AccountId = account("challenger", 0, 1);
		funded::<T>(&challenger);
		Pallet::<T>::challenge_share(RawOrigin::Signed(challenger).into(), id, credited).unwrap();
		let tree = openledger_primitives::evidence::claims_tree(&claims);
		let evidence: Vec<SpanEvidence> = claims
			.iter()
			.enumerate()
			.map(|(i, c)| SpanEvidence {
				index: i as u32,
				siblings: BoundedVec::truncate_from(tree.proof(i as u32).expect("in range")),
				span: span_proof(*c),
			})
			.collect();
		let caller: T::AccountId = account("answerer", 0, 0);
		funded::<T>(&caller);
		#[extrinsic_call]
		_(RawOrigin::Signed(caller), id, DisputeKind::Share(credited), BoundedVec::truncate_from(evidence));
		assert!(Disputes::<T>::get((&worker, id, DisputeKind::Share(credited))).is_none());
		assert_eq!(Receipts::<T>::get(id).map(|r| r.disputes), Some(0));
	}

	/// `on_idle` over one block with nothing to prune.
	#[benchmark]
	fn prune_block() {
		let now = frame_system::Pallet::<T>::block_number();
		PruneCursor::<T>::put(now);
		let mut meter = frame_support::weights::WeightMeter::new();
		#[block]
		{
			Pallet::<T>::prune(now, &mut meter);
		}
		assert_eq!(PruneCursor::<T>::get(), now + 1u32.into());
	}

	/// `on_idle` over one block whose queue holds one receipt with `p` payouts to vest.
	#[benchmark]
	fn prune_receipt(p: Linear<0, { max_payouts::<T>() }>) {
		let (_, id, at) = settled_with_payouts::<T>(p);
		frame_system::Pallet::<T>::set_block_number(at);
		PruneCursor::<T>::put(at);
		let mut meter = frame_support::weights::WeightMeter::new();
		#[block]
		{
			Pallet::<T>::prune(at, &mut meter);
		}
		assert!(Receipts::<T>::get(id).is_none() && UsedRequests::<T>::get(id).is_none());
	}

	impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext_with_keystore(), crate::mock::Test);
}
