//! Benchmarks (v2). `submit_receipts` over `n` receipts with `s` attributed contributions each,
//! all valid (the worst case: every check passes and every receipt settles); keys are generated
//! in the benchmark's keystore and signatures are real.

use super::*;
use frame_benchmarking::v2::*;
use frame_support::{
	traits::{fungible::Mutate, EnsureOrigin, Get, Hooks},
	BoundedVec,
};
use frame_system::RawOrigin;
use sp_core::{crypto::KeyTypeId, H256};
use sp_runtime::{
	traits::{Bounded, IdentifyAccount},
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
	payer: T::AccountId,
	receipts: Vec<SignedReceiptOf<T>>,
}

/// `n` valid signed receipts of one payer to one worker, `s` shares each.
fn fixture<T: Config>(n: u32, s: u32) -> Fixture<T> {
	let worker: T::AccountId = account("worker", 0, 0);
	funded::<T>(&worker);
	let worker_key = sp_io::crypto::sr25519_generate(KEY, None);
	let (model, model_version, datanet, snapshot) = T::BenchmarkHelper::setup(&worker, worker_key.0, s.max(1));
	let payer_key = sp_io::crypto::sr25519_generate(KEY, None);
	let payer: T::AccountId = T::BenchmarkHelper::public(payer_key).into_account();
	funded::<T>(&payer);
	funded::<T>(&Pallet::<T>::pot());
	funded::<T>(&T::Treasury::get());
	// At least the runtime's minimum fee (a receipt below it is rejected, not settled).
	let fee: BalanceOf<T> = T::MinFee::get().max(1_000_000u32.into());
	Pallet::<T>::deposit_escrow(RawOrigin::Signed(payer.clone()).into(), fee * (n + 1).into()).expect("escrow");
	let per = Perbill::from_rational(1u32, s.max(1));
	let receipts = (0..n)
		.map(|i| {
			let voucher = Voucher {
				payer: payer.clone(),
				worker: worker.clone(),
				model,
				model_version,
				max_fee: fee,
				nonce: i as u64,
				expires_at: frame_system::Pallet::<T>::block_number() + 1_000u32.into(),
				genesis: H256::from_slice(Pallet::<T>::genesis_hash().as_ref()),
				request_hash: H256::repeat_byte(i as u8),
			};
			let sig = sp_io::crypto::sr25519_sign(KEY, &payer_key, &voucher.signing_payload()).expect("key in keystore");
			let attribution = (0..s)
				.map(|j| Share { contribution: ContributionRef { datanet, version: snapshot, index: j }, share: per })
				.collect::<Vec<_>>();
			let receipt = Receipt {
				voucher,
				payer_signature: T::BenchmarkHelper::signature(sig),
				prompt_tokens: 100,
				completion_tokens: 200,
				fee,
				output_hash: H256::repeat_byte(1),
				method: AttributionMethod::SpanMatch,
				attribution: BoundedVec::truncate_from(attribution),
			};
			let worker_signature =
				sp_io::crypto::sr25519_sign(KEY, &worker_key, &receipt.signing_payload()).expect("key in keystore");
			SignedReceipt { receipt, worker_signature }
		})
		.collect();
	Fixture { worker, payer, receipts }
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
	}

	/// A worker's claim with `d` delegators to pay (the attributed contributor's share of the
	/// same receipt is claimed too: `who` is both).
	#[benchmark]
	fn claim_rewards(d: Linear<0, { T::Workers::max_delegators() }>) {
		let f = fixture::<T>(1, 1);
		T::BenchmarkHelper::add_delegators(&f.worker, d);
		Pallet::<T>::submit_receipts(RawOrigin::Signed(f.worker.clone()).into(), BoundedVec::truncate_from(f.receipts)).unwrap();
		#[extrinsic_call]
		_(RawOrigin::Signed(f.payer), f.worker.clone());
		assert!(WorkerRewards::<T>::get(&f.worker) == 0u32.into());
	}

	#[benchmark]
	fn challenge() {
		let f = fixture::<T>(1, 1);
		let id = f.receipts[0].receipt.request_id();
		Pallet::<T>::submit_receipts(RawOrigin::Signed(f.worker.clone()).into(), BoundedVec::truncate_from(f.receipts)).unwrap();
		let challenger = bonded_challenger::<T>();
		#[extrinsic_call]
		_(RawOrigin::Signed(challenger), id);
		assert!(Receipts::<T>::get(id).and_then(|r| r.challenger).is_some());
	}

	/// An upheld challenge (the costlier outcome): slashes the worker and its `d` delegators,
	/// reverses `MAX_SHARES` payouts.
	#[benchmark]
	fn resolve_challenge(d: Linear<0, { T::Workers::max_delegators() }>) -> Result<(), BenchmarkError> {
		let origin = T::ResolveOrigin::try_successful_origin().map_err(|_| BenchmarkError::Weightless)?;
		let f = fixture::<T>(1, MAX_SHARES);
		T::BenchmarkHelper::add_delegators(&f.worker, d);
		let id = f.receipts[0].receipt.request_id();
		Pallet::<T>::submit_receipts(RawOrigin::Signed(f.worker.clone()).into(), BoundedVec::truncate_from(f.receipts)).unwrap();
		Pallet::<T>::challenge(RawOrigin::Signed(bonded_challenger::<T>()).into(), id).unwrap();
		#[extrinsic_call]
		_(origin as T::RuntimeOrigin, id, Verdict::False);
		Ok(())
	}

	#[benchmark]
	fn on_initialize(n: Linear<0, { T::MaxPrunePerBlock::get() }>) {
		let f = fixture::<T>(n.min(T::MaxReceiptsPerBatch::get()), 1);
		let at = f
			.receipts
			.first()
			.map(|r| UsedRequests::<T>::get(r.receipt.request_id()))
			.flatten();
		Pallet::<T>::submit_receipts(RawOrigin::Signed(f.worker).into(), BoundedVec::truncate_from(f.receipts)).unwrap();
		let at = at.or_else(|| PruneQueue::<T>::iter_keys().next()).unwrap_or_default();
		#[block]
		{
			Pallet::<T>::on_initialize(at);
		}
	}

	impl_benchmark_test_suite!(Pallet, crate::mock::new_test_ext_with_keystore(), crate::mock::Test);
}
