//! Unit tests: escrow, every receipt rule (each rejection changes nothing), settlement split,
//! claims, pruning, challenges, and OPEN conservation over random sequences.

use crate::{mock::*, *};
use codec::Encode;
use frame_support::{
	assert_noop, assert_ok,
	dispatch::{Pays, WithPostDispatchInfo},
	traits::{fungible::Inspect, Get, Hooks},
	weights::Weight,
	BoundedVec,
};
use sp_core::{sr25519, Pair, H256};
use sp_keyring::Sr25519Keyring;
use sp_runtime::{DispatchError, MultiSignature, Perbill};

type Error = crate::Error<Test>;
type SignedR = SignedReceiptOf<Test>;

fn signed(who: AccountId) -> RuntimeOrigin {
	RuntimeOrigin::signed(who)
}

fn share(datanet: u32, version: u32, index: u32, pct: u32) -> Share {
	Share { contribution: ContributionRef { datanet, version, index }, share: Perbill::from_percent(pct) }
}

struct Spec {
	nonce: u64,
	fee: Balance,
	max_fee: Balance,
	expires_at: u64,
	model: u32,
	version: u32,
	shares: Vec<Share>,
	/// Influence by default: those receipts are judged by `ResolveOrigin`; span-match receipts
	/// (see `span_tests`) are disputed by proof.
	method: AttributionMethod,
}

impl Default for Spec {
	fn default() -> Self {
		Spec {
			nonce: 1,
			fee: 1_000,
			max_fee: 2_000,
			expires_at: 50,
			model: 1,
			version: 1,
			shares: vec![share(0, 1, 0, 60), share(0, 1, 3, 30)],
			method: AttributionMethod::Influence,
		}
	}
}

fn make(spec: Spec, payer_key: Sr25519Keyring, worker_key: &sr25519::Pair) -> SignedR {
	make_with(spec, payer_key, worker_key, |_| {}, false)
}

/// [`make`] with the voucher edited before it is signed, and the payer signing it the way a
/// wallet signs raw bytes (`<Bytes>…</Bytes>`) when `wrapped`.
fn make_with(
	spec: Spec,
	payer_key: Sr25519Keyring,
	worker_key: &sr25519::Pair,
	edit: impl FnOnce(&mut Voucher<AccountId, Balance, u64>),
	wrapped: bool,
) -> SignedR {
	let mut voucher = Voucher {
		payer: payer(),
		worker: worker(),
		model: spec.model,
		model_version: spec.version,
		max_fee: spec.max_fee,
		terms: terms_of(spec.model, spec.version),
		nonce: spec.nonce,
		expires_at: spec.expires_at,
		genesis: H256::from_slice(Attribution::genesis_hash().as_ref()),
		request_hash: openledger_primitives::receipt::completion_request_hash("prompt"),
	};
	edit(&mut voucher);
	let payload = if wrapped {
		[&b"<Bytes>"[..], &voucher.signing_payload(), &b"</Bytes>"[..]].concat()
	} else {
		voucher.signing_payload()
	};
	let payer_signature = MultiSignature::from(payer_key.pair().sign(&payload));
	let receipt = Receipt {
		voucher,
		payer_signature,
		prompt_tokens: 10,
		completion_tokens: 20,
		fee: spec.fee,
		output_len: 64,
		output_root: H256::repeat_byte(7),
		claims_root: H256::zero(),
		claims: 0,
		method: spec.method,
		attribution: BoundedVec::truncate_from(spec.shares),
	};
	let worker_signature = worker_key.sign(&receipt.signing_payload());
	SignedReceipt { receipt, worker_signature }
}

fn good(spec: Spec) -> SignedR {
	make(spec, Sr25519Keyring::Alice, &signing_key())
}

/// A default receipt settled against a funded escrow and challenged by `challenger()`.
fn settled_and_challenged() -> H256 {
	escrow(10_000);
	let r = good(Spec::default());
	let id = r.receipt.request_id();
	submit(worker(), vec![r]);
	assert_ok!(Attribution::challenge(signed(challenger()), id));
	id
}

fn submit(from: AccountId, rs: Vec<SignedR>) {
	assert_ok!(Attribution::submit_receipts(signed(from), BoundedVec::truncate_from(rs)));
}

fn escrow(amount: Balance) {
	assert_ok!(Attribution::deposit_escrow(signed(payer()), amount));
}

fn rejected(reason: RejectReason) -> bool {
	System::events().iter().any(|e| matches!(&e.event, RuntimeEvent::Attribution(Event::ReceiptRejected { reason: r, .. }) if *r == reason))
}

/// Moves to block `n` and runs `on_idle` there with no weight limit: every receipt whose
/// pruning block is at most `n` vests (unless its challenge is open).
fn idle_to(n: u64) {
	System::set_block_number(n);
	let used = Attribution::on_idle(n, Weight::MAX);
	assert!(used.all_gt(Weight::zero()), "on_idle reports the weight it used");
}

/// A claim with nothing vested: refused.
fn nothing_to_claim() -> DispatchError {
	Error::NothingToClaim.into()
}

/// The block at which the default receipts (expiring at 50) vest.
const VEST_AT: u64 = 51;

fn pot_total() -> Balance {
	Balances::total_balance(&Attribution::pot())
}

fn check() {
	assert_ok!(Attribution::do_try_state());
	let sum: Balance = frame_system::Account::<Test>::iter().map(|(_, a)| a.data.free + a.data.reserved).sum();
	assert_eq!(sum, Balances::total_issuance(), "OPEN is neither created nor destroyed");
}

#[test]
fn escrow_deposit_and_delayed_withdrawal() {
	new_test_ext().execute_with(|| {
		assert_noop!(Attribution::deposit_escrow(signed(payer()), 0), Error::ZeroAmount);
		escrow(10_000);
		assert_eq!(Attribution::escrow_of(&payer()), 10_000);
		assert_noop!(Attribution::withdraw_escrow(signed(payer())), Error::NoWithdrawal);
		assert_noop!(Attribution::request_escrow_withdrawal(signed(payer()), 10_001), Error::InsufficientEscrow);
		assert_ok!(Attribution::request_escrow_withdrawal(signed(payer()), 4_000));
		assert_noop!(Attribution::withdraw_escrow(signed(payer())), Error::TooEarly);
		System::set_block_number(1 + ESCROW_DELAY);
		assert_ok!(Attribution::withdraw_escrow(signed(payer())));
		assert_eq!(Attribution::escrow_of(&payer()), 6_000);
		assert_eq!(Balances::balance(&payer()), START - 6_000);
		check();
	});
}

#[test]
fn a_good_receipt_is_settled_and_split() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		let r = good(Spec::default());
		let id = r.receipt.request_id();
		let pot0 = pot_total();
		submit(worker(), vec![r]);
		System::assert_last_event(RuntimeEvent::Attribution(Event::ReceiptSettled { request_id: id, worker: worker(), payer: payer(), model: 1, fee: 1_000 }));
		assert_eq!(Attribution::escrow_of(&payer()), 9_000);
		assert_eq!(pot_total(), pot0 + 1_000);
		// 40/30/20/10 of 1000; data 300: contributors 60 % and 30 %; the rest 30 split by lineage.
		// Pending while the receipt can be challenged: nothing claimable, nothing in the stats.
		let expected = [
			(owner(), 400),
			(treasury(), 100),
			(contributor(0), 180),
			(contributor(3), 90),
			(datanet_owner(0), 15),
			(datanet_owner(1), 15),
		];
		for (who, amount) in expected.iter() {
			assert_eq!(AccountEarnings::<Test>::get(who), Earnings { accrued: 0, claimed: 0, pending: *amount });
			assert_eq!(Rewards::<Test>::get(who), 0);
		}
		assert_eq!(AccountEarnings::<Test>::get(worker()).pending, 200);
		assert_eq!(ContributionEarnings::<Test>::get(ContributionRef { datanet: 0, version: 1, index: 0 }), 0);
		assert_eq!(ModelUsage::<Test>::get(1), Usage { requests: 1, tokens: 30, revenue: 1_000 });
		let rec = Receipts::<Test>::get(id).unwrap();
		assert_eq!((rec.fee, rec.settled_at, rec.payouts.len()), (1_000, 1, 7));
		assert_eq!(UsedRequests::<Test>::get(id), Some(VEST_AT));
		check();
		// One block before its pruning block: still pending.
		idle_to(VEST_AT - 1);
		assert_eq!(Rewards::<Test>::get(owner()), 0);
		idle_to(VEST_AT);
		System::assert_has_event(RuntimeEvent::Attribution(Event::ReceiptVested { request_id: id }));
		for (who, amount) in expected.iter() {
			assert_eq!(AccountEarnings::<Test>::get(who), Earnings { accrued: *amount, claimed: 0, pending: 0 });
			assert_eq!(Rewards::<Test>::get(who), *amount);
		}
		assert_eq!(REWARDS_PAID.with(|r| r.borrow().clone()), vec![(worker(), 200)], "the worker's share to its pool");
		assert_eq!(ContributionEarnings::<Test>::get(ContributionRef { datanet: 0, version: 1, index: 0 }), 180);
		assert_eq!(DatanetEarnings::<Test>::get(0), 180 + 90 + 15);
		assert_eq!(DatanetEarnings::<Test>::get(1), 15);
		assert!(Receipts::<Test>::get(id).is_none() && UsedRequests::<Test>::get(id).is_none(), "pruned");
		assert_eq!(pot_total(), pot0 + 1_000, "the pot holds it until claimed");
		check();
	});
}

/// Every rule: the receipt is rejected with its own reason and changes nothing.
#[test]
fn each_bad_receipt_is_rejected_with_its_reason_and_changes_nothing() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		submit(worker(), vec![good(Spec::default())]); // nonce 1 settled
		let cases: Vec<(AccountId, SignedR, RejectReason)> = vec![
			(worker(), good(Spec::default()), RejectReason::AlreadyUsed),
			(challenger(), good(Spec { nonce: 2, ..Default::default() }), RejectReason::WrongWorker),
			(worker(), good(Spec { nonce: 3, expires_at: 0, ..Default::default() }), RejectReason::Expired),
			(worker(), good(Spec { nonce: 4, fee: 2_001, ..Default::default() }), RejectReason::FeeAboveVoucher),
			(worker(), make(Spec { nonce: 5, ..Default::default() }, Sr25519Keyring::Eve, &signing_key()), RejectReason::BadPayerSignature),
			(worker(), good(Spec { nonce: 6, model: 11, ..Default::default() }), RejectReason::NotServing),
			(worker(), make(Spec { nonce: 7, ..Default::default() }, Sr25519Keyring::Alice, &Sr25519Keyring::Bob.pair()), RejectReason::BadWorkerSignature),
			(worker(), good(Spec { nonce: 8, version: 3, ..Default::default() }), RejectReason::UnknownModel),
			(worker(), good(Spec { nonce: 9, version: 2, ..Default::default() }), RejectReason::DeprecatedModel),
			(worker(), good(Spec { nonce: 10, shares: vec![share(0, 1, 0, 60), share(0, 1, 1, 41)], ..Default::default() }), RejectReason::SharesExceed),
			(worker(), good(Spec { nonce: 11, shares: vec![share(2, 1, 0, 10)], ..Default::default() }), RejectReason::BadAttribution),
			(worker(), good(Spec { nonce: 12, shares: vec![share(0, 1, 8, 10)], ..Default::default() }), RejectReason::BadAttribution),
			(worker(), good(Spec { nonce: 13, shares: vec![share(0, 2, 0, 10)], ..Default::default() }), RejectReason::BadAttribution),
			// Expiring further ahead than MaxVoucherLifetime (1000) would keep its id for long.
			(worker(), good(Spec { nonce: 15, expires_at: 1 + 1_000 + 1, ..Default::default() }), RejectReason::ExpiryTooFar),
			// Below MinFee (10): storage for nothing.
			(worker(), good(Spec { nonce: 16, fee: 9, ..Default::default() }), RejectReason::FeeTooLow),
			// Signed for another chain (or an earlier launch of this one): worthless here.
			(
				worker(),
				make_with(Spec { nonce: 14, ..Default::default() }, Sr25519Keyring::Alice, &signing_key(), |v| v.genesis = H256::repeat_byte(0xee), false),
				RejectReason::WrongChain,
			),
		];
		for (from, r, reason) in cases {
			let id = r.receipt.request_id();
			let (escrow0, pot0) = (Attribution::escrow_of(&payer()), pot_total());
			let used0 = UsedRequests::<Test>::get(id);
			System::reset_events();
			submit(from, vec![r]);
			assert!(rejected(reason), "expected {reason:?}");
			assert_eq!(Attribution::escrow_of(&payer()), escrow0, "{reason:?} moved escrow");
			assert_eq!(pot_total(), pot0);
			assert_eq!(UsedRequests::<Test>::get(id), used0);
		}
		// Not enough escrow (the model's price raised so that the fee is within it).
		MODELS.with(|m| m.borrow_mut().get_mut(&(1, 1)).unwrap().per_request = 100_000);
		System::reset_events();
		submit(worker(), vec![good(Spec { nonce: 20, fee: 1_000, max_fee: 100_000, ..Default::default() }), good(Spec { nonce: 21, fee: 9_500, max_fee: 100_000, ..Default::default() })]);
		assert!(rejected(RejectReason::InsufficientEscrow));
		assert_eq!(Attribution::escrow_of(&payer()), 8_000, "the first settled, the second changed nothing");
		check();
	});
}

#[test]
fn prune_queue_is_bounded_and_prunes_after_expiry_and_window() {
	new_test_ext().execute_with(|| {
		escrow(100_000);
		// MaxPrunePerBlock is 4 and a receipt spills over up to PRUNE_SPILL (8) blocks: 32 receipts
		// expiring together fit, the 33rd waits.
		let rs: Vec<_> = (1..=33).map(|n| good(Spec { nonce: n, ..Default::default() })).collect();
		let ids: Vec<_> = rs.iter().map(|r| r.receipt.request_id()).collect();
		submit(worker(), rs[..16].to_vec());
		submit(worker(), rs[16..32].to_vec());
		assert!(!rejected(RejectReason::PruneQueueFull));
		submit(worker(), rs[32..].to_vec());
		assert!(rejected(RejectReason::PruneQueueFull));
		assert_eq!(PruneQueue::<Test>::get(51).len(), 4);
		assert_eq!(PruneQueue::<Test>::get(58).len(), 4);
		idle_to(51);
		for id in &ids[..4] {
			assert!(UsedRequests::<Test>::get(id).is_none());
			assert!(Receipts::<Test>::get(id).is_none());
		}
		assert!(UsedRequests::<Test>::get(ids[4]).is_some(), "queued for block 52");
		assert_eq!(PruneCursor::<Test>::get(), 52);
		check();
	});
}

/// `on_idle` prunes no more than its weight allows, and resumes where it stopped: a block's
/// queue is finished over later blocks, never skipped.
#[test]
fn pruning_stops_at_the_weight_limit_and_resumes() {
	use crate::weights::WeightInfo;
	new_test_ext().execute_with(|| {
		escrow(100_000);
		let rs: Vec<_> = (1..=6).map(|n| good(Spec { nonce: n, ..Default::default() })).collect();
		let ids: Vec<_> = rs.iter().map(|r| r.receipt.request_id()).collect();
		submit(worker(), rs);
		assert_eq!(PruneQueue::<Test>::get(51).len(), 4);
		assert_eq!(PruneQueue::<Test>::get(52).len(), 2);
		System::set_block_number(52);
		// Each block costs one queue read for dispute deadlines and one for pruning.
		let blocks = <() as WeightInfo>::prune_block().saturating_mul(53 + 53);
		let one = <() as WeightInfo>::prune_receipt(crate::max_payouts::<Test>());
		// Room for the 52 blocks' queue reads up to block 51 and one receipt.
		let used = Attribution::on_idle(52, blocks.saturating_add(one));
		assert!(used.all_lte(blocks.saturating_add(one)));
		let vested = ids.iter().filter(|id| Receipts::<Test>::get(id).is_none()).count();
		assert_eq!(vested, 1, "one receipt fitted");
		assert_eq!(PruneCursor::<Test>::get(), 51, "block 51's queue is not finished");
		assert_eq!(PruneQueue::<Test>::get(51).len(), 3);
		check();
		// Nothing fits: nothing is done.
		assert_eq!(Attribution::on_idle(52, Weight::zero()), Weight::zero());
		assert_eq!(PruneQueue::<Test>::get(51).len(), 3);
		idle_to(52);
		assert!(ids.iter().all(|id| Receipts::<Test>::get(id).is_none() && UsedRequests::<Test>::get(id).is_none()));
		assert_eq!(PruneCursor::<Test>::get(), 53);
		check();
	});
}

#[test]
fn rewards_vest_after_the_window_and_claims_pay_only_vested_rewards() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		submit(worker(), vec![good(Spec::default())]);
		// Still challengeable: nothing to claim, for payees and the worker alike.
		assert_noop!(Attribution::claim_rewards(signed(payer()), contributor(0)), nothing_to_claim());
		assert_eq!(REWARDS_PAID.with(|r| r.borrow().len()), 0, "nothing credited to the worker's pool yet");
		idle_to(VEST_AT);
		let c0 = Balances::balance(&contributor(0));
		// A claim that pays is free of fees (rewards are micro-payments); one that pays nothing
		// is charged (the `nothing_to_claim` refusals here carry the default: pays).
		assert_eq!(Attribution::claim_rewards(signed(payer()), contributor(0)).map(|i| i.pays_fee), Ok(Pays::No));
		assert_eq!(Balances::balance(&contributor(0)), c0 + 180);
		assert_eq!(AccountEarnings::<Test>::get(contributor(0)), Earnings { accrued: 180, claimed: 180, pending: 0 });
		assert_noop!(Attribution::claim_rewards(signed(payer()), contributor(0)), nothing_to_claim());
		// The worker's share went to its pool in the staking pallet (claimed there), not here.
		assert_eq!(REWARDS_PAID.with(|r| r.borrow().clone()), vec![(worker(), 200)]);
		assert_noop!(Attribution::claim_rewards(signed(worker()), worker()), nothing_to_claim());
		check();
	});
}

/// A false receipt is reversed from its own pending payouts only: its payees' earlier, vested
/// earnings (claimed or not) are untouched, and the payer gets exactly its fee back.
#[test]
fn an_upheld_challenge_reverses_only_that_receipt() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		// An earlier honest receipt vests: contributor 0 earns 180, owner 400.
		submit(worker(), vec![good(Spec::default())]);
		idle_to(VEST_AT);
		assert_ok!(Attribution::claim_rewards(signed(payer()), contributor(0)));
		// The false one, for the same payees.
		let r = good(Spec { nonce: 2, expires_at: 100, ..Default::default() });
		let id = r.receipt.request_id();
		submit(worker(), vec![r]);
		assert_noop!(Attribution::challenge(signed(payer()), id), Error::NotBonded);
		assert_noop!(Attribution::challenge(signed(challenger()), H256::zero()), Error::UnknownReceipt);
		assert_ok!(Attribution::challenge(signed(challenger()), id));
		assert_noop!(Attribution::challenge(signed(challenger()), id), Error::AlreadyChallenged);
		assert_noop!(Attribution::resolve_challenge(signed(payer()), id, Verdict::False), DispatchError::BadOrigin);
		let (p0, c0, t0) = (Balances::balance(&payer()), Balances::balance(&challenger()), Balances::balance(&treasury()));
		let owner0 = AccountEarnings::<Test>::get(owner());
		assert_ok!(Attribution::resolve_challenge(RuntimeOrigin::root(), id, Verdict::False));
		System::assert_last_event(RuntimeEvent::Attribution(Event::ChallengeUpheld { request_id: id, worker: worker(), refunded: 1_000 }));
		assert_eq!(SLASHES.with(|s| s.borrow().clone()), vec![(worker(), Perbill::from_percent(10))]);
		assert_eq!(Balances::balance(&payer()), p0 + 1_000, "the whole fee back");
		assert_eq!(Balances::balance(&challenger()), c0 + CHALLENGE_BOND + CHALLENGER_REWARD);
		assert_eq!(Balances::balance(&treasury()), t0 - CHALLENGER_REWARD);
		// The earlier receipt's earnings stand, claimed and unclaimed.
		assert_eq!(AccountEarnings::<Test>::get(contributor(0)), Earnings { accrued: 180, claimed: 180, pending: 0 });
		assert_eq!(AccountEarnings::<Test>::get(owner()), Earnings { pending: 0, ..owner0 });
		assert_eq!(Rewards::<Test>::get(owner()), 400);
		assert_eq!(REWARDS_PAID.with(|r| r.borrow().clone()), vec![(worker(), 200)], "only the honest receipt's worker share");
		assert_noop!(Attribution::resolve_challenge(RuntimeOrigin::root(), id, Verdict::False), Error::NotChallenged);
		// Judged once: a second challenge of the same receipt (which would slash, refund and
		// reward again) is refused, by anyone.
		assert_noop!(Attribution::challenge(signed(challenger()), id), Error::AlreadyJudged);
		assert_eq!(SLASHES.with(|s| s.borrow().len()), 1);
		check();
		// At its pruning block nothing vests.
		let owner_rewards = Rewards::<Test>::get(owner());
		idle_to(101);
		assert!(Receipts::<Test>::get(id).is_none());
		assert_eq!(Rewards::<Test>::get(owner()), owner_rewards);
		check();
	});
}

/// The worker cannot take the one challenge slot of its own receipt.
#[test]
fn a_worker_cannot_challenge_its_own_receipt() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		let r = good(Spec::default());
		let id = r.receipt.request_id();
		submit(worker(), vec![r]);
		assert!(<Test as Config>::Workers::is_bonded(&worker()));
		assert_noop!(Attribution::challenge(signed(worker()), id), Error::OwnReceipt);
		assert_ok!(Attribution::challenge(signed(challenger()), id));
		check();
	});
}

/// A challenge filed in the last block of the window is not pruned away before it is
/// resolved: the receipt and the bond stay, unvested; the verdict applies, then the record goes.
#[test]
fn a_challenge_in_the_last_block_of_the_window_survives_pruning() {
	use frame_support::traits::fungible::InspectHold;
	for verdict in [Verdict::False, Verdict::Valid] {
		new_test_ext().execute_with(|| {
			escrow(10_000);
			let r = good(Spec { expires_at: 2, ..Default::default() });
			let id = r.receipt.request_id();
			submit(worker(), vec![r]);
			let prune_at = UsedRequests::<Test>::get(id).unwrap();
			assert_eq!(prune_at, 1 + WINDOW + 1);
			System::set_block_number(1 + WINDOW);
			assert_ok!(Attribution::challenge(signed(challenger()), id));
			assert_eq!(FROZEN.with(|f| f.borrow().get(&worker()).copied()), Some(1), "the worker's stake is frozen");
			let held = Balances::balance_on_hold(&HoldReason::ChallengeBond.into(), &challenger());
			assert_eq!(held, CHALLENGE_BOND);
			for n in prune_at..prune_at + 3 {
				idle_to(n);
			}
			assert!(Receipts::<Test>::get(id).is_some_and(|r| r.overdue), "kept while challenged");
			assert_eq!(Rewards::<Test>::get(owner()), 0, "not vested while challenged");
			assert_eq!(Balances::balance_on_hold(&HoldReason::ChallengeBond.into(), &challenger()), CHALLENGE_BOND, "bond still held");
			check();
			let p0 = Balances::balance(&payer());
			assert_ok!(Attribution::resolve_challenge(RuntimeOrigin::root(), id, verdict));
			match verdict {
				Verdict::False => {
					assert_eq!(Balances::balance(&payer()), p0 + 1_000, "refunded");
					assert_eq!(Rewards::<Test>::get(owner()), 0);
				},
				Verdict::Valid => {
					assert_eq!(Balances::balance(&payer()), p0);
					assert_eq!(Rewards::<Test>::get(owner()), 400, "vested at the verdict");
					System::assert_has_event(RuntimeEvent::Attribution(Event::ReceiptVested { request_id: id }));
				},
			}
			assert!(Receipts::<Test>::get(id).is_none() && UsedRequests::<Test>::get(id).is_none(), "past its pruning block: removed");
			assert_eq!(FROZEN.with(|f| f.borrow().get(&worker()).copied()), Some(0), "and unfrozen");
			check();
		});
	}
}

#[test]
fn an_unfounded_challenge_forfeits_the_bond_and_the_window_closes() {
	new_test_ext().execute_with(|| {
		let id = settled_and_challenged();
		let (c0, t0) = (Balances::total_balance(&challenger()), Balances::balance(&treasury()));
		assert_ok!(Attribution::resolve_challenge(RuntimeOrigin::root(), id, Verdict::Valid));
		assert_eq!(Balances::total_balance(&challenger()), c0 - CHALLENGE_BOND);
		assert_eq!(Balances::balance(&treasury()), t0 + CHALLENGE_BOND);
		assert_eq!(AccountEarnings::<Test>::get(owner()).pending, 400, "payouts stand");
		assert_noop!(Attribution::challenge(signed(challenger()), id), Error::AlreadyJudged);
		let other = good(Spec { nonce: 2, ..Default::default() });
		let other_id = other.receipt.request_id();
		submit(worker(), vec![other]);
		System::set_block_number(1 + WINDOW + 1);
		assert_noop!(Attribution::challenge(signed(challenger()), other_id), Error::WindowClosed);
		idle_to(VEST_AT);
		assert_eq!(Rewards::<Test>::get(owner()), 800, "both vested");
		check();
	});
}

/// Property: random interleavings of deposits, withdrawals, receipts (good and bad), claims,
/// challenges, verdicts and pruning never create or destroy OPEN, keep every `try_state`
/// equality, and every call's result is the one the state before it predicts: a receipt settles
/// exactly when it is valid and covered, a claim pays exactly the vested rewards, a challenge
/// and a verdict succeed exactly when allowed. No payee's vested earnings ever go down (a false
/// receipt is reversed from its own pending payouts only).
#[test]
fn conservation_over_random_sequences() {
	let mut seed = 0x9e37_79b9_7f4a_7c15u64;
	let mut next = move || {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		seed
	};
	let (mut settled, mut upheld, mut claimed, mut vested) = (0, 0, 0, 0);
	for _round in 0..20 {
		new_test_ext().execute_with(|| {
			let issuance = Balances::total_issuance();
			let mut nonce = 100u64;
			let mut ids = Vec::new();
			let payees = || {
				let mut v = vec![owner(), treasury(), worker()];
				v.extend((0..8).map(contributor));
				v.extend((0..2).map(datanet_owner));
				v
			};
			for step in 0..80u64 {
				let now = 1 + step / 2;
				let accrued0: Vec<Balance> = payees().iter().map(|w| AccountEarnings::<Test>::get(w).accrued).collect();
				if System::block_number() != now {
					let before = Receipts::<Test>::iter().count();
					idle_to(now);
					vested += before - Receipts::<Test>::iter().count();
				}
				match next() % 7 {
					0 => {
						let amount = 1 + next() % 5_000;
						let free = Balances::balance(&payer());
						let result = Attribution::deposit_escrow(signed(payer()), amount);
						assert_eq!(result.is_ok(), amount < free, "deposit of {amount} with {free} free");
					},
					1 => {
						let amount = 1 + next() % 2_000;
						let held = Attribution::escrow_of(&payer());
						assert_eq!(Attribution::request_escrow_withdrawal(signed(payer()), amount).is_ok(), amount <= held);
						let w = Withdrawals::<Test>::get(payer());
						let result = Attribution::withdraw_escrow(signed(payer()));
						assert_eq!(result.is_ok(), w.is_some_and(|w| w.unlock_at <= now));
					},
					2 | 3 => {
						nonce += 1;
						// Shares of more than nothing (a zero share is refused).
						let pct = 1 + (next() % 59) as u32;
						let fee = next() % 3_000;
						let r = good(Spec {
							nonce,
							fee,
							max_fee: 2_500,
							expires_at: now + next() % 30,
							shares: vec![share(0, 1, (next() % 8) as u32, pct), share(1, 1, (next() % 3) as u32, 100 - pct - (next() % 20) as u32)],
							..Default::default()
						});
						let id = r.receipt.request_id();
						// Within the voucher (2,500), the price (2,000) and the minimum (10), covered.
						let valid = (10..=2_000).contains(&fee) && fee <= Attribution::escrow_of(&payer());
						System::reset_events();
						submit(worker(), vec![r]);
						assert_eq!(Receipts::<Test>::contains_key(id), valid, "fee {fee}: settled exactly when valid and covered");
						let refused = [RejectReason::FeeAboveVoucher, RejectReason::FeeAbovePrice, RejectReason::FeeTooLow, RejectReason::InsufficientEscrow];
						assert_eq!(refused.into_iter().any(rejected), !valid);
						if valid {
							settled += 1;
							ids.push(id);
						}
					},
					4 => {
						let all = payees();
						let who = all[(next() % all.len() as u64) as usize].clone();
						let owed = Rewards::<Test>::get(&who);
						let total0 = Balances::total_balance(&who);
						let result = Attribution::claim_rewards(signed(payer()), who.clone());
						assert_eq!(result.is_ok(), owed > 0);
						assert_eq!(Balances::total_balance(&who), total0 + owed, "a claim pays exactly what vested");
						if owed > 0 {
							claimed += 1;
						}
					},
					5 => {
						if let Some(id) = ids.get((next() as usize) % ids.len().max(1)) {
							let r = Receipts::<Test>::get(id);
							let open = r.as_ref().is_some_and(|r| r.challenger.is_none() && r.verdict.is_none() && now <= r.settled_at + WINDOW);
							assert_eq!(Attribution::challenge(signed(challenger()), *id).is_ok(), open);
						}
					},
					_ => {
						if let Some(id) = ids.get((next() as usize) % ids.len().max(1)) {
							let verdict = if next() % 2 == 0 { Verdict::False } else { Verdict::Valid };
							let record = Receipts::<Test>::get(id);
							let p0 = Balances::total_balance(&payer());
							let result = Attribution::resolve_challenge(RuntimeOrigin::root(), *id, verdict);
							match record {
								// An open challenge is always judged, and judged once; a false
								// receipt gives the payer back exactly its pending payouts.
								Some(r) if r.challenger.is_some() => {
									assert_ok!(result);
									assert!(Receipts::<Test>::get(id).is_none_or(|r| r.verdict == Some(verdict) && r.challenger.is_none()));
									if verdict == Verdict::False {
										upheld += 1;
										assert_eq!(Balances::total_balance(&payer()), p0 + r.fee);
									}
								},
								Some(_) => assert_eq!(result.map_err(|e| e.error), Err(Error::NotChallenged.into())),
								None => assert_eq!(result.map_err(|e| e.error), Err(Error::UnknownReceipt.into())),
							}
						}
					},
				}
				let accrued: Vec<Balance> = payees().iter().map(|w| AccountEarnings::<Test>::get(w).accrued).collect();
				assert!(accrued.iter().zip(&accrued0).all(|(a, b)| a >= b), "vested earnings never go down");
				assert_eq!(Balances::total_issuance(), issuance);
				check();
			}
		});
	}
	// The sequences did exercise every path.
	assert!(settled > 100 && upheld > 3 && claimed > 20 && vested > 20, "settled {settled} upheld {upheld} claimed {claimed} vested {vested}");
}

/// The receipt the pallet verifies is byte for byte what a worker signs: the signing payload
/// is the receipt domain followed by the SCALE encoding of the receipt, and a signature over
/// exactly those bytes (made here as the worker's signer does) settles.
#[test]
fn receipt_encoding_is_what_the_worker_signs() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		let r = good(Spec::default());
		let payload = r.receipt.signing_payload();
		let mut expected = codec::Encode::encode(&openledger_primitives::receipt::RECEIPT_DOMAIN.to_vec());
		expected.extend(r.receipt.encode());
		assert_eq!(payload, expected);
		let mut resigned = r.clone();
		resigned.worker_signature = signing_key().sign(&expected);
		submit(worker(), vec![resigned]);
		assert!(Receipts::<Test>::contains_key(r.receipt.request_id()));
		// One byte of the receipt changed after signing: refused.
		let mut tampered = good(Spec { nonce: 2, ..Default::default() });
		tampered.receipt.completion_tokens += 1;
		submit(worker(), vec![tampered]);
		assert!(rejected(RejectReason::BadWorkerSignature));
	});
}

/// A payer may sign the voucher as wallets sign raw bytes (`<Bytes>…</Bytes>`, the polkadot-js
/// extension's `signRaw`): accepted like a plain signature; any other wrapping is not.
#[test]
fn wallet_wrapped_voucher_signatures_are_accepted() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		let r = make_with(Spec { nonce: 30, ..Default::default() }, Sr25519Keyring::Alice, &signing_key(), |_| {}, true);
		let id = r.receipt.request_id();
		submit(worker(), vec![r]);
		assert!(Receipts::<Test>::get(id).is_some(), "wrapped signature settled");
		System::reset_events();
		let bad = make_with(
			Spec { nonce: 31, ..Default::default() },
			Sr25519Keyring::Alice,
			&signing_key(),
			|v| v.request_hash = H256::repeat_byte(1),
			false,
		);
		// Another wrapping (lower-case tags) is not a wallet's: refused.
		let mut other = make_with(Spec { nonce: 32, ..Default::default() }, Sr25519Keyring::Alice, &signing_key(), |_| {}, false);
		let wrapped = [&b"<bytes>"[..], &other.receipt.voucher.signing_payload(), &b"</bytes>"[..]].concat();
		other.receipt.payer_signature = MultiSignature::from(Sr25519Keyring::Alice.pair().sign(&wrapped));
		other.worker_signature = signing_key().sign(&other.receipt.signing_payload());
		submit(worker(), vec![other]);
		assert!(rejected(RejectReason::BadPayerSignature));
		System::reset_events();
		// Signed, then the request it names changed: the signature no longer covers it.
		let mut tampered = bad.clone();
		tampered.receipt.voucher.request_hash = H256::repeat_byte(2);
		tampered.worker_signature = signing_key().sign(&tampered.receipt.signing_payload());
		submit(worker(), vec![tampered]);
		assert!(rejected(RejectReason::BadPayerSignature));
		check();
	});
}

/// A receipt whose data share rounds to nothing for a contributor writes no earnings entry for
/// it (no storage for an earning of nothing).
#[test]
fn zero_earnings_are_not_written() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		// Fee 10 with a 30 % data share: 3 for data; a 1 % share of it rounds to 0.
		let r = good(Spec { nonce: 40, fee: 10, shares: vec![share(0, 1, 0, 99), share(0, 1, 3, 1)], ..Default::default() });
		submit(worker(), vec![r]);
		idle_to(VEST_AT);
		let tiny = openledger_primitives::receipt::ContributionRef { datanet: 0, version: 1, index: 3 };
		assert!(!ContributionEarnings::<Test>::contains_key(tiny), "nothing earned, nothing written");
		let big = openledger_primitives::receipt::ContributionRef { datanet: 0, version: 1, index: 0 };
		assert!(ContributionEarnings::<Test>::contains_key(big));
		check();
	});
}

/// `try_state` catches what it claims to: a receipt record without its used id, an open
/// challenge without its bond (or a second bond), OPEN held on the pot beyond what is owed,
/// earnings that do not add up; a plain donation to the pot is not an error.
#[test]
fn try_state_detects_broken_records_and_bonds() {
	use frame_support::traits::{
		fungible::{Mutate, MutateHold},
		tokens::{Precision, Preservation},
	};
	new_test_ext().execute_with(|| {
		let id = settled_and_challenged();
		let vested = good(Spec { nonce: 2, expires_at: 2, ..Default::default() });
		submit(worker(), vec![vested]);
		assert_ok!(Attribution::do_try_state());
		// A second bond held without a second challenge.
		assert_ok!(Balances::hold(&HoldReason::ChallengeBond.into(), &challenger(), CHALLENGE_BOND));
		assert!(Attribution::do_try_state().is_err());
		assert_ok!(Balances::release(&HoldReason::ChallengeBond.into(), &challenger(), CHALLENGE_BOND, Precision::Exact));
		assert_ok!(Attribution::do_try_state());
		// Someone sends OPEN to the pot: fine, it is not owed to anyone.
		assert_ok!(Balances::transfer(&treasury(), &Attribution::pot(), 77, Preservation::Preserve));
		assert_ok!(Attribution::do_try_state());
		// More held on the pot than owed.
		assert_ok!(Balances::hold(&HoldReason::Owed.into(), &Attribution::pot(), 1));
		assert!(Attribution::do_try_state().is_err());
		assert_ok!(Balances::release(&HoldReason::Owed.into(), &Attribution::pot(), 1, Precision::Exact));
		// A record whose used id is gone.
		let used = UsedRequests::<Test>::take(id).unwrap();
		assert!(Attribution::do_try_state().is_err());
		UsedRequests::<Test>::insert(id, used);
		// Payouts that do not sum to the fee.
		Receipts::<Test>::mutate(id, |r| r.as_mut().unwrap().fee += 1);
		assert!(Attribution::do_try_state().is_err());
		Receipts::<Test>::mutate(id, |r| r.as_mut().unwrap().fee -= 1);
		assert_ok!(Attribution::do_try_state());
		// Vested earnings that do not add up.
		idle_to(1 + WINDOW + 1);
		assert!(Rewards::<Test>::get(owner()) > 0);
		AccountEarnings::<Test>::mutate(owner(), |e| e.claimed += 1);
		assert!(Attribution::do_try_state().is_err());
		AccountEarnings::<Test>::mutate(owner(), |e| e.claimed -= 1);
		AccountEarnings::<Test>::mutate(owner(), |e| e.pending += 1);
		assert!(Attribution::do_try_state().is_err());
		AccountEarnings::<Test>::mutate(owner(), |e| e.pending -= 1);
		assert_ok!(Attribution::do_try_state());
	});
}

/// A worker that left before the verdict cannot be slashed, but a false receipt is still
/// reversed: the payer is refunded, the challenger gets the bond back and the reward.
#[test]
fn a_false_receipt_is_reversed_even_when_its_worker_has_left() {
	new_test_ext().execute_with(|| {
		let id = settled_and_challenged();
		GONE.with(|g| g.borrow_mut().push(worker()));
		let (p0, c0) = (Balances::balance(&payer()), Balances::total_balance(&challenger()));
		assert_ok!(Attribution::resolve_challenge(RuntimeOrigin::root(), id, Verdict::False));
		assert!(SLASHES.with(|s| s.borrow().is_empty()), "nothing to slash");
		assert_eq!(Balances::balance(&payer()), p0 + 1_000, "the whole unclaimed fee back");
		assert_eq!(Balances::total_balance(&challenger()), c0 + CHALLENGER_REWARD, "bond back, plus the reward");
		assert_eq!(Receipts::<Test>::get(id).unwrap().verdict, Some(Verdict::False));
		check();
	});
}

/// When blocks stay full (no idle weight, so no pruning), receipts wait once pruning is
/// `MaxPruneLag` blocks behind, instead of piling up unpruned; they settle again once it caught
/// up.
#[test]
fn receipts_wait_while_pruning_is_behind() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		System::set_block_number(PRUNE_LAG);
		submit(worker(), vec![good(Spec { nonce: 1, expires_at: 100, ..Default::default() })]);
		assert!(!rejected(RejectReason::PruningBehind), "the cursor (0) is exactly the lag behind");
		System::set_block_number(PRUNE_LAG + 1);
		System::reset_events();
		let late = good(Spec { nonce: 2, expires_at: 100, ..Default::default() });
		let id = late.receipt.request_id();
		submit(worker(), vec![late.clone()]);
		assert!(rejected(RejectReason::PruningBehind));
		assert!(!UsedRequests::<Test>::contains_key(id));
		idle_to(PRUNE_LAG + 1);
		submit(worker(), vec![late]);
		assert!(Receipts::<Test>::contains_key(id));
		check();
	});
}

/// A challenge nobody judges does not freeze the worker's stake forever: after the window and
/// the resolve timeout anyone closes it, the receipt standing; the challenger gets its bond
/// back (no reward).
#[test]
fn an_unjudged_challenge_expires_as_valid() {
	new_test_ext().execute_with(|| {
		let id = settled_and_challenged();
		let deadline = 1 + WINDOW + RESOLVE_TIMEOUT;
		System::set_block_number(deadline);
		// Refused after one read: charged for it, not for vesting every payout.
		let read = <<Test as frame_system::Config>::DbWeight as Get<frame_support::weights::RuntimeDbWeight>>::get().reads(1);
		assert!(read.all_lt(<() as WeightInfo>::resolve_challenge_overdue(max_payouts::<Test>())));
		let refused = |e: Error| DispatchError::from(e).with_weight(read);
		assert_noop!(Attribution::expire_challenge(signed(payer()), id), refused(Error::TooEarly));
		assert_noop!(Attribution::expire_challenge(signed(payer()), H256::zero()), refused(Error::UnknownReceipt));
		idle_to(deadline + 1);
		assert!(Receipts::<Test>::get(id).is_some_and(|r| r.overdue), "kept past its pruning block");
		let (t0, c0) = (Balances::balance(&treasury()), Balances::balance(&challenger()));
		assert_ok!(Attribution::expire_challenge(signed(payer()), id));
		System::assert_has_event(RuntimeEvent::Attribution(Event::ChallengeExpired { request_id: id, challenger: challenger() }));
		assert_eq!(Balances::balance(&treasury()), t0, "nothing forfeited");
		assert_eq!(Balances::balance(&challenger()), c0 + CHALLENGE_BOND, "the bond back, no reward");
		assert_eq!(FROZEN.with(|f| f.borrow().get(&worker()).copied()), Some(0), "unfrozen");
		assert_eq!(Rewards::<Test>::get(owner()), 400, "vested as valid");
		assert_noop!(Attribution::expire_challenge(signed(payer()), id), refused(Error::UnknownReceipt));
		check();
	});
}

/// A voucher names the model's terms: a receipt settles only under the terms the payer
/// accepted — the model's current ones, or its previous ones while the registry keeps them — is
/// split by those terms, and charges no more than their price.
#[test]
fn receipts_settle_under_the_terms_the_payer_accepted() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		// Above the price (2,000 per request) though within max_fee: refused.
		submit(worker(), vec![good(Spec { nonce: 1, fee: 2_001, max_fee: 5_000, ..Default::default() })]);
		assert!(rejected(RejectReason::FeeAbovePrice));
		// Signed for other terms.
		System::reset_events();
		let other = make_with(Spec { nonce: 2, ..Default::default() }, Sr25519Keyring::Alice, &signing_key(), |v| v.terms = H256::repeat_byte(3), false);
		submit(worker(), vec![other]);
		assert!(rejected(RejectReason::TermsChanged));
		// Signed under the current terms, then the owner changes the split (data 30 % → 60 %):
		// the voucher settles under the terms it names, with their split.
		let signed_before = good(Spec { nonce: 3, ..Default::default() });
		let old = MODELS.with(|m| m.borrow().get(&(1, 1)).cloned().unwrap());
		MODELS.with(|m| {
			let mut m = m.borrow_mut();
			let t = m.get_mut(&(1, 1)).unwrap();
			t.previous = vec![(old.split, old.per_request, old.per_1k_tokens)];
			t.split = split(10, 60, 20, 10);
		});
		let id = signed_before.receipt.request_id();
		submit(worker(), vec![signed_before]);
		let owner_paid = Receipts::<Test>::get(id).unwrap().payouts.iter().find(|p| p.kind == PayoutKind::Owner).unwrap().amount;
		assert_eq!(owner_paid, 400, "the owner's 40 % of the old split, not 10 %");
		// Once the previous terms are gone, such a voucher is refused.
		MODELS.with(|m| m.borrow_mut().get_mut(&(1, 1)).unwrap().previous = vec![]);
		System::reset_events();
		let stale = make_with(Spec { nonce: 4, ..Default::default() }, Sr25519Keyring::Alice, &signing_key(), |v| {
			v.terms = openledger_primitives::receipt::terms_hash(&old.split, old.per_request, old.per_1k_tokens)
		}, false);
		submit(worker(), vec![stale]);
		assert!(rejected(RejectReason::TermsChanged));
		check();
	});
}

/// Span disputes, settled by proof: no `ResolveOrigin` call anywhere below.
mod span_tests {
	use super::*;
	use openledger_primitives::evidence::{self as ev, SpanClaim, SpanEvidence, SpanProof};

	/// The source text of contribution (0, 1, 0); (0, 1, 3) and (1, 1, 2) have other texts.
	const SOURCE: &[u8] = b"Preamble. In 1901 the court held that the contract was void because the seller lied, said the clerk.";
	const PHRASE: &[u8] = b"the court held that the contract was void because the seller lied";
	const OTHER: &[u8] = b"An unrelated record about rivers, bridges and the tolls that the bridges took in winter.";
	/// The output's own words after the phrase, which contribution (1, 1, 1) happens to hold.
	const OWN_WORDS: &[u8] = b"Beyond that the answer is the model's own words, which no record of the lineage contains at all here.";
	/// Output: the phrase (65 bytes) in 200 bytes of other text.
	fn output() -> Vec<u8> {
		let mut o = b"As the judgment says, ".to_vec();
		o.extend_from_slice(PHRASE);
		o.extend_from_slice(b". ");
		o.extend_from_slice(OWN_WORDS);
		o.resize(200, b'.');
		o
	}
	fn c(index: u32) -> ContributionRef {
		ContributionRef { datanet: 0, version: 1, index }
	}
	fn docs() {
		CONTENT.with(|m| {
			let mut m = m.borrow_mut();
			m.insert(c(0), ev::content_root(SOURCE));
			m.insert(c(3), ev::content_root(OTHER));
			m.insert(ContributionRef { datanet: 1, version: 1, index: 2 }, ev::content_root(SOURCE));
			m.insert(ContributionRef { datanet: 1, version: 1, index: 1 }, ev::content_root(OWN_WORDS));
		});
	}
	fn doc_bytes(x: ContributionRef) -> &'static [u8] {
		match x {
			x if x == c(3) => OTHER,
			ContributionRef { datanet: 1, index: 1, .. } => OWN_WORDS,
			_ => SOURCE,
		}
	}
	fn out_start() -> u32 {
		output().windows(PHRASE.len()).position(|w| w == PHRASE).unwrap() as u32
	}
	fn src_offset() -> u64 {
		SOURCE.windows(PHRASE.len()).position(|w| w == PHRASE).unwrap() as u64
	}
	/// The honest claim: the phrase in the output is the phrase in (0, 1, 0).
	fn honest_claim() -> SpanClaim {
		SpanClaim { output_start: out_start(), len: PHRASE.len() as u32, contribution: c(0), offset: src_offset() }
	}
	fn span(claim: SpanClaim) -> SpanProof {
		let (o, d) = (output(), doc_bytes(claim.contribution));
		SpanProof {
			claim,
			output: ev::range_proof(&ev::content_tree(&o), &o, claim.output_start as u64, claim.len).unwrap(),
			content: ev::range_proof(&ev::content_tree(d), d, claim.offset, claim.len).unwrap(),
		}
	}
	fn evidence(claims: &[SpanClaim], i: u32) -> SpanEvidence {
		let t = ev::claims_tree(claims);
		SpanEvidence { index: i, siblings: BoundedVec::truncate_from(t.proof(i).unwrap()), span: span(claims[i as usize]) }
	}
	/// A span-match receipt over `output()` committing to `claims`, with `shares`, settled.
	fn settle(nonce: u64, shares: Vec<Share>, claims: &[SpanClaim]) -> H256 {
		let mut r = good(Spec { nonce, shares, method: AttributionMethod::SpanMatch, ..Default::default() });
		let o = output();
		r.receipt.output_len = o.len() as u32;
		r.receipt.output_root = ev::content_root(&o);
		r.receipt.claims_root = ev::claims_tree(claims).root();
		r.receipt.claims = claims.len() as u32;
		r.worker_signature = signing_key().sign(&r.receipt.signing_payload());
		let id = r.receipt.request_id();
		submit(worker(), vec![r]);
		assert!(Receipts::<Test>::contains_key(id), "settled");
		id
	}
	/// 65 of 200 bytes justify at most 32.5 %.
	fn honest_share() -> Share {
		Share { contribution: c(0), share: Perbill::from_parts(325_000_000) }
	}
	fn deadline_of(id: H256, k: DisputeKind) -> u64 {
		Disputes::<Test>::get((worker(), id, k)).expect("open dispute").deadline
	}
	fn sh(x: ContributionRef) -> DisputeKind {
		DisputeKind::Share(x)
	}
	fn om(claim: &SpanClaim) -> DisputeKind {
		DisputeKind::Omission { contribution: claim.contribution, output_start: claim.output_start, len: claim.len }
	}
	/// The answer's result without its post-dispatch weight (see the last test for that).
	fn answer(id: H256, k: DisputeKind, e: Vec<SpanEvidence>) -> sp_runtime::DispatchResult {
		Attribution::answer(signed(worker()), id, k, BoundedVec::truncate_from(e)).map(|_| ()).map_err(|e| e.error)
	}
	fn source_twin() -> ContributionRef {
		ContributionRef { datanet: 1, version: 1, index: 2 }
	}
	fn outsider() -> AccountId {
		let who = acc(Sr25519Keyring::Ferdie);
		assert_eq!(<Balances as frame_support::traits::fungible::Mutate<_>>::set_balance(&who, START), START);
		who
	}

	#[test]
	fn an_honest_share_is_answered_and_the_bond_goes_to_the_worker() {
		new_test_ext().execute_with(|| {
			docs();
			escrow(10_000);
			let claims = [honest_claim()];
			let id = settle(1, vec![honest_share()], &claims);
			// Anyone may dispute, bonded or not; the governance path is closed to span receipts.
			let who = outsider();
			assert_noop!(Attribution::challenge(signed(challenger()), id), Error::SpanMatchIsProven);
			assert_noop!(Attribution::challenge_share(signed(who.clone()), id, c(3)), Error::NotCredited);
			assert_noop!(Attribution::challenge_share(signed(worker()), id, c(0)), Error::OwnReceipt);
			assert_ok!(Attribution::challenge_share(signed(who.clone()), id, c(0)));
			assert_eq!(deadline_of(id, sh(c(0))), 1 + RESPONSE_WINDOW);
			assert_noop!(Attribution::challenge_share(signed(challenger()), id, c(0)), Error::AlreadyChallenged);
			let worker_before = Balances::free_balance(worker());
			assert_ok!(answer(id, sh(c(0)), vec![evidence(&claims, 0)]));
			assert_eq!(Balances::free_balance(worker()), worker_before + INITIAL_DISPUTE_BOND, "the bond goes to the worker");
			assert_eq!(Balances::total_balance(&who), START - INITIAL_DISPUTE_BOND);
			assert!(Disputes::<Test>::get((worker(), id, sh(c(0)))).is_none());
			assert!(DisputeDeadlines::<Test>::get(1 + RESPONSE_WINDOW).is_empty(), "an answered dispute leaves the queue");
			let r = Receipts::<Test>::get(id).unwrap();
			assert_eq!((r.verdict, r.disputes, r.payouts.iter().fold(0, |a, p| a + p.amount)), (None, 0, 1_000));
			// An answered dispute closes only itself: the receipt can be disputed again.
			assert_ok!(Attribution::challenge_share(signed(challenger()), id, c(0)));
			assert_ok!(answer(id, sh(c(0)), vec![evidence(&claims, 0)]));
			// The deadline passes with nothing left to enforce; the receipt vests as usual.
			idle_to(VEST_AT);
			assert!(SLASHES.with(|s| s.borrow().is_empty()));
			assert!(Receipts::<Test>::get(id).is_none());
			assert!(ContributionEarnings::<Test>::get(c(0)) > 0);
			check();
		});
	}

	#[test]
	fn a_share_with_no_real_span_is_slashed_at_the_deadline_and_only_that_receipt_reversed() {
		new_test_ext().execute_with(|| {
			docs();
			SLASH_AMOUNT.with(|a| *a.borrow_mut() = 60);
			escrow(10_000);
			// The worker credits (0, 1, 3) with the phrase, which (0, 1, 3) does not contain.
			let fake = SpanClaim { contribution: c(3), offset: 0, ..honest_claim() };
			let id = settle(1, vec![Share { contribution: c(3), share: Perbill::from_percent(30) }], &[fake]);
			let other = settle(2, vec![honest_share()], &[honest_claim()]);
			let who = outsider();
			assert_ok!(Attribution::challenge_share(signed(who.clone()), id, c(3)));
			// Its own claim does not hold: refused with the reason, nothing changes.
			assert_noop!(answer(id, sh(c(3)), vec![evidence(&[fake], 0)]), Error::BytesDiffer);
			// Another receipt's (true) claim is not this receipt's.
			let mut borrowed = evidence(&[honest_claim()], 0);
			assert_noop!(answer(id, sh(c(3)), vec![borrowed.clone()]), Error::WrongContribution);
			borrowed.span.claim.contribution = c(3);
			assert_noop!(answer(id, sh(c(3)), vec![borrowed]), Error::NotCommitted);
			assert_noop!(answer(id, sh(c(0)), vec![evidence(&[fake], 0)]), Error::NotChallenged);
			let deadline = deadline_of(id, sh(c(3)));
			let (payer_before, treasury_before) = (Balances::free_balance(payer()), Balances::free_balance(treasury()));
			idle_to(deadline - 1);
			assert!(Disputes::<Test>::get((worker(), id, sh(c(3)))).is_some(), "not before its deadline");
			idle_to(deadline);
			assert_eq!(SLASHES.with(|s| s.borrow().clone()), vec![(worker(), Perbill::from_percent(10))]);
			assert_eq!(Balances::free_balance(payer()), payer_before + 1_000, "exactly that receipt's fee refunded");
			assert_eq!(Balances::total_balance(&who), START + 60, "bond back, reward capped by the slash");
			assert_eq!(Balances::free_balance(treasury()), treasury_before - 60);
			let r = Receipts::<Test>::get(id).unwrap();
			assert!(r.payouts.is_empty() && r.verdict == Some(Verdict::False));
			assert_eq!(Receipts::<Test>::get(other).unwrap().payouts.iter().fold(0, |a, p| a + p.amount), 1_000, "the other receipt is untouched");
			assert_noop!(answer(id, sh(c(3)), vec![evidence(&[fake], 0)]), Error::NotChallenged);
			assert_noop!(Attribution::challenge_share(signed(challenger()), id, c(3)), Error::AlreadyJudged);
			check();
		});
	}

	#[test]
	fn a_share_above_what_its_spans_cover_is_not_justified() {
		new_test_ext().execute_with(|| {
			docs();
			escrow(10_000);
			let claims = [honest_claim()];
			let id = settle(1, vec![Share { contribution: c(0), share: Perbill::from_parts(325_000_001) }], &claims);
			assert_ok!(Attribution::challenge_share(signed(outsider()), id, c(0)));
			assert_noop!(answer(id, sh(c(0)), vec![evidence(&claims, 0)]), Error::ShareNotJustified);
			assert_noop!(answer(id, sh(c(0)), vec![]), Error::NoEvidence);
			// The same span twice covers the same bytes once.
			assert_noop!(answer(id, sh(c(0)), vec![evidence(&claims, 0), evidence(&claims, 0)]), Error::ShareNotJustified);
			idle_to(deadline_of(id, sh(c(0))));
			assert_eq!(Receipts::<Test>::get(id).unwrap().verdict, Some(Verdict::False));
			check();
		});
	}

	#[test]
	fn an_omission_proof_wins_unless_credited_spans_cover_the_bytes() {
		new_test_ext().execute_with(|| {
			docs();
			escrow(10_000);
			// Receipt 1 credits only (0, 1, 3), with nothing covering the phrase; (1, 1, 2) has it.
			let id = settle(1, vec![Share { contribution: c(3), share: Perbill::from_percent(10) }], &[]);
			let omitted = SpanClaim { contribution: source_twin(), ..honest_claim() };
			let who = outsider();
			assert_ok!(Attribution::prove_omission(signed(who.clone()), id, span(omitted)));
			assert!(System::events().iter().any(|e| matches!(e.event, RuntimeEvent::Attribution(Event::OmissionProved { len: 65, .. }))));
			idle_to(deadline_of(id, om(&omitted)));
			assert_eq!(Receipts::<Test>::get(id).unwrap().verdict, Some(Verdict::False));
			assert_eq!(Balances::total_balance(&who), START, "bond back; the mock slash took nothing, so no reward");

			// Receipt 2 credits (0, 1, 0) with the phrase: the omission is refuted by that claim.
			let claims = [honest_claim()];
			let id2 = settle(2, vec![honest_share()], &claims);
			assert_ok!(Attribution::prove_omission(signed(who.clone()), id2, span(omitted)));
			assert_ok!(answer(id2, om(&omitted), vec![evidence(&claims, 0)]));
			assert_eq!(Receipts::<Test>::get(id2).unwrap().disputes, 0);
			assert_eq!(Balances::total_balance(&who), START - INITIAL_DISPUTE_BOND);
			check();
		});
	}

	/// A refutation must cover the omitted bytes (all but a run shorter than
	/// `MIN_OMISSION_BYTES`): a credited claim elsewhere in the answer does not.
	#[test]
	fn an_omission_refutation_must_cover_the_omitted_bytes() {
		new_test_ext().execute_with(|| {
			docs();
			escrow(10_000);
			let claims = [honest_claim()];
			let id = settle(1, vec![honest_share()], &claims);
			let at = output().windows(OWN_WORDS.len()).position(|w| w == OWN_WORDS).unwrap() as u32;
			let own = ContributionRef { datanet: 1, version: 1, index: 1 };
			let proof = span(SpanClaim { output_start: at, len: OWN_WORDS.len() as u32, contribution: own, offset: 0 });
			let own_kind = om(&proof.claim);
			assert_ok!(Attribution::prove_omission(signed(outsider()), id, proof));
			assert_noop!(answer(id, own_kind, vec![evidence(&claims, 0)]), Error::OmissionNotCovered);
			idle_to(deadline_of(id, own_kind));
			assert_eq!(Receipts::<Test>::get(id).unwrap().verdict, Some(Verdict::False));
			check();
		});
	}

	/// Disputes of one receipt are independent: one answered does not shield it from another;
	/// two upheld at the same deadline slash and refund once, the second is moot (bond back).
	#[test]
	fn disputes_of_one_receipt_are_independent_and_it_is_reversed_once() {
		new_test_ext().execute_with(|| {
			docs();
			SLASH_AMOUNT.with(|a| *a.borrow_mut() = 1_000);
			escrow(10_000);
			let fake = SpanClaim { contribution: c(3), offset: 0, ..honest_claim() };
			let claims = [honest_claim(), fake];
			let shares = vec![honest_share(), Share { contribution: c(3), share: Perbill::from_percent(20) }];
			let id = settle(1, shares, &claims);
			let (a, b, x) = (outsider(), challenger(), acc(Sr25519Keyring::Eve));
			assert_eq!(<Balances as frame_support::traits::fungible::Mutate<_>>::set_balance(&x, START), START);
			// A colluder disputes the honest share; the worker answers at once.
			assert_ok!(Attribution::challenge_share(signed(a.clone()), id, c(0)));
			assert_ok!(answer(id, sh(c(0)), vec![evidence(&claims, 0)]));
			// The false share is still open to dispute, and an omission too, at the same time.
			assert_ok!(Attribution::challenge_share(signed(b.clone()), id, c(3)));
			let at = output().windows(OWN_WORDS.len()).position(|w| w == OWN_WORDS).unwrap() as u32;
			let own = ContributionRef { datanet: 1, version: 1, index: 1 };
			let proof = span(SpanClaim { output_start: at, len: OWN_WORDS.len() as u32, contribution: own, offset: 0 });
			let own_kind = om(&proof.claim);
			assert_ok!(Attribution::prove_omission(signed(x.clone()), id, proof));
			assert_eq!(Receipts::<Test>::get(id).unwrap().disputes, 2);
			check();
			let payer0 = Balances::free_balance(payer());
			idle_to(deadline_of(id, sh(c(3))).max(deadline_of(id, own_kind)));
			assert_eq!(SLASHES.with(|s| s.borrow().len()), 1, "slashed once");
			assert_eq!(Balances::free_balance(payer()), payer0 + 1_000, "refunded once");
			let mut got = [Balances::total_balance(&b), Balances::total_balance(&x)];
			got.sort();
			assert_eq!(got, [START, START + CHALLENGER_REWARD], "one upheld with the reward, the other moot with its bond back");
			assert_eq!(Balances::total_balance(&a), START - INITIAL_DISPUTE_BOND, "the colluder's answered dispute cost its bond");
			assert!(System::events().iter().any(|e| matches!(e.event, RuntimeEvent::Attribution(Event::DisputeMoot { .. }))));
			let r = Receipts::<Test>::get(id).unwrap();
			assert_eq!((r.verdict, r.disputes), (Some(Verdict::False), 0));
			check();
		});
	}

	#[test]
	fn bad_proofs_are_refused_with_their_error_and_change_nothing() {
		new_test_ext().execute_with(|| {
			docs();
			escrow(10_000);
			let id = settle(1, vec![Share { contribution: c(3), share: Perbill::from_percent(10) }], &[]);
			let who = outsider();
			let omitted = SpanClaim { contribution: ContributionRef { datanet: 1, version: 1, index: 2 }, ..honest_claim() };
			let good_proof = span(omitted);
			// A tampered sibling in the contribution's path; in the output's path.
			let mut p = good_proof.clone();
			p.content.chunks[0].siblings.force_push(H256::zero());
			assert_noop!(Attribution::prove_omission(signed(who.clone()), id, p), Error::BadContentProof);
			let mut p = good_proof.clone();
			p.output.tree_root = H256::repeat_byte(1);
			assert_noop!(Attribution::prove_omission(signed(who.clone()), id, p), Error::BadOutputProof);
			// Wrong bytes: a byte of the contribution's chunk changed.
			let mut p = good_proof.clone();
			p.content.chunks[0].bytes[src_offset() as usize] ^= 0x20;
			assert_noop!(Attribution::prove_omission(signed(who.clone()), id, p), Error::BadContentProof);
			// Bytes that are both proven but differ (shifted by one in the contribution).
			let shifted = SpanClaim { offset: src_offset() + 1, ..omitted };
			assert_noop!(Attribution::prove_omission(signed(who.clone()), id, span(shifted)), Error::BytesDiffer);
			// Under the minimum of an omission (and of any span).
			let short = SpanClaim { len: ev::MIN_OMISSION_BYTES - 1, ..omitted };
			assert_noop!(Attribution::prove_omission(signed(who.clone()), id, span(short)), Error::OmissionTooShort);
			let mut tiny = good_proof.clone();
			tiny.claim.len = ev::MIN_SPAN_BYTES - 1;
			assert!(matches!(ev::verify_span(&tiny, &H256::zero(), 0, &H256::zero()), Err(ev::EvidenceError::SpanTooShort)));
			// A receipt that credits MAX_SHARES contributions had no room for another.
			SNAPSHOTS.with(|m| m.borrow_mut().insert((0, 1), MAX_SHARES + 8));
			let full = settle(2, (0..MAX_SHARES).map(|i| share(0, 1, i, 1)).collect(), &[]);
			assert_noop!(Attribution::prove_omission(signed(who.clone()), full, good_proof.clone()), Error::ReceiptFull);
			// Outside the lineage; a credited contribution; past the window.
			let outside = SpanClaim { contribution: ContributionRef { datanet: 2, version: 1, index: 0 }, ..omitted };
			assert_noop!(Attribution::prove_omission(signed(who.clone()), id, span(outside)), Error::NotInLineage);
			let credited = SpanClaim { contribution: c(3), ..omitted };
			assert_noop!(Attribution::prove_omission(signed(who.clone()), id, span(credited)), Error::AlreadyCredited);
			System::set_block_number(1 + WINDOW + 1);
			assert_noop!(Attribution::prove_omission(signed(who.clone()), id, good_proof.clone()), Error::WindowClosed);
			// An influence receipt is not disputed by proof.
			System::set_block_number(1);
			let inf = good(Spec { nonce: 9, ..Default::default() });
			let inf_id = inf.receipt.request_id();
			submit(worker(), vec![inf]);
			assert_noop!(Attribution::prove_omission(signed(who.clone()), inf_id, good_proof.clone()), Error::NotSpanMatch);
			assert_noop!(Attribution::challenge_share(signed(who.clone()), inf_id, c(0)), Error::NotSpanMatch);
			// An answer after its deadline is refused (the dispute is upheld by on_idle instead).
			assert_ok!(Attribution::prove_omission(signed(who), id, good_proof));
			System::set_block_number(deadline_of(id, om(&omitted)) + 1);
			assert_noop!(answer(id, om(&omitted), vec![evidence(&[honest_claim()], 0)]), Error::DeadlinePassed);
			check();
		});
	}

	/// Omissions of one contribution at other bytes are other disputes (a dispute answerable by
	/// design cannot hold back the real one); a receipt credits distinct contributions with
	/// more than nothing, so its share count is what it credits.
	#[test]
	fn omissions_are_keyed_by_their_bytes_and_shares_are_distinct() {
		new_test_ext().execute_with(|| {
			docs();
			escrow(10_000);
			let id = settle(1, vec![Share { contribution: c(3), share: Perbill::from_percent(10) }], &[]);
			let whole = SpanClaim { contribution: source_twin(), ..honest_claim() };
			let first = SpanClaim { len: ev::MIN_OMISSION_BYTES, ..whole };
			let second = SpanClaim { output_start: whole.output_start + 1, offset: whole.offset + 1, ..first };
			assert_ok!(Attribution::prove_omission(signed(outsider()), id, span(first)));
			assert_noop!(Attribution::prove_omission(signed(challenger()), id, span(first)), Error::AlreadyChallenged);
			assert_ok!(Attribution::prove_omission(signed(challenger()), id, span(second)));
			assert_eq!(Receipts::<Test>::get(id).unwrap().disputes, 2);
			System::reset_events();
			submit(worker(), vec![good(Spec { nonce: 5, shares: vec![share(0, 1, 0, 0)], ..Default::default() })]);
			assert!(rejected(RejectReason::BadAttribution), "a zero share");
			System::reset_events();
			submit(worker(), vec![good(Spec { nonce: 6, shares: vec![share(0, 1, 0, 10), share(0, 1, 0, 10)], ..Default::default() })]);
			assert!(rejected(RejectReason::BadAttribution), "a contribution credited twice");
			check();
		});
	}

	/// An answer that fails at its k-th claim is charged for k claims, not the whole batch.
	#[test]
	fn a_failed_answer_is_charged_for_the_claims_it_checked() {
		new_test_ext().execute_with(|| {
			docs();
			escrow(10_000);
			let claims = [honest_claim()];
			let id = settle(1, vec![honest_share()], &claims);
			assert_ok!(Attribution::challenge_share(signed(outsider()), id, c(0)));
			let mut bad = evidence(&claims, 0);
			bad.span.claim.len -= 1;
			let err = Attribution::answer(signed(worker()), id, sh(c(0)), BoundedVec::truncate_from(vec![evidence(&claims, 0), bad, evidence(&claims, 0)]))
				.unwrap_err();
			assert_eq!(err.post_info.actual_weight, Some(<() as crate::WeightInfo>::answer(2)));
			assert_eq!(err.error, Error::NotCommitted.into());
		});
	}

	/// A receipt crediting an honest share (`c(0)`, its claim committed) and a false one (`c(3)`).
	fn honest_and_false_receipt() -> (H256, [SpanClaim; 2]) {
		docs();
		escrow(10_000);
		let claims = [honest_claim(), SpanClaim { contribution: c(3), offset: 0, ..honest_claim() }];
		let id = settle(1, vec![honest_share(), Share { contribution: c(3), share: Perbill::from_percent(20) }], &claims);
		(id, claims)
	}

	/// Rewrites every open dispute as storage version 1 stored it (no bond), and the pallet's
	/// storage version to 1. Returns the disputes as they were.
	fn downgrade_disputes_to_v1() -> Vec<((AccountId, H256, DisputeKind), Dispute<AccountId, u64, Balance>)> {
		use crate::migrations::v2::v1;
		let open: Vec<_> = Disputes::<Test>::iter().collect();
		for (k, d) in &open {
			v1::Disputes::<Test>::insert(k, v1::Dispute { challenger: d.challenger.clone(), deadline: d.deadline });
		}
		frame_support::traits::StorageVersion::new(1).put::<Attribution>();
		open
	}

	/// Governance changes the dispute bond: open disputes keep, and pay, the bond they hold.
	#[test]
	fn a_dispute_pays_the_bond_it_was_opened_with_after_the_parameter_changes() {
		new_test_ext().execute_with(|| {
			use frame_support::traits::fungible::InspectHold;
			SLASH_AMOUNT.with(|a| *a.borrow_mut() = 1_000);
			let (id, claims) = honest_and_false_receipt();
			let (a, b) = (outsider(), challenger());
			let b_start = Balances::total_balance(&b);
			assert_ok!(Attribution::challenge_share(signed(a.clone()), id, c(0)));
			DisputeBond::set(700);
			assert_ok!(Attribution::challenge_share(signed(b.clone()), id, c(3)));
			assert_eq!(Disputes::<Test>::get((worker(), id, sh(c(0)))).unwrap().bond, INITIAL_DISPUTE_BOND);
			assert_eq!(Disputes::<Test>::get((worker(), id, sh(c(3)))).unwrap().bond, 700);
			assert_eq!(Balances::balance_on_hold(&HoldReason::ChallengeBond.into(), &a), INITIAL_DISPUTE_BOND);
			assert_eq!(Balances::balance_on_hold(&HoldReason::ChallengeBond.into(), &b), 700);
			check();
			let w0 = Balances::free_balance(worker());
			assert_ok!(answer(id, sh(c(0)), vec![evidence(&claims, 0)]));
			assert_eq!(Balances::free_balance(worker()), w0 + INITIAL_DISPUTE_BOND, "the bond the dispute held, not today's");
			assert_eq!(Balances::total_balance(&a), START - INITIAL_DISPUTE_BOND);
			idle_to(deadline_of(id, sh(c(3))));
			assert_eq!(Balances::balance_on_hold(&HoldReason::ChallengeBond.into(), &b), 0, "all 700 released");
			assert_eq!(Balances::total_balance(&b), b_start + CHALLENGER_REWARD);
			check();
		});
	}

	/// Storage version 1 → 2: disputes opened by the old code get the old bond, once.
	#[test]
	fn migration_v2_records_the_old_bond_of_open_disputes_once() {
		use crate::migrations::v2::MigrateV1ToV2;
		use frame_support::traits::{fungible::InspectHold, ConstU64, GetStorageVersion, OnRuntimeUpgrade, StorageVersion};
		type Migration = MigrateV1ToV2<Test, ConstU64<INITIAL_DISPUTE_BOND>>;
		new_test_ext().execute_with(|| {
			let (id, claims) = honest_and_false_receipt();
			assert_ok!(Attribution::challenge_share(signed(outsider()), id, c(0)));
			assert_ok!(Attribution::challenge_share(signed(challenger()), id, c(3)));
			let open = downgrade_disputes_to_v1();
			assert_eq!(open.len(), 2);
			for (k, _) in &open {
				assert_eq!(Disputes::<Test>::get(k), None, "version 2 code cannot read a version 1 dispute");
			}
			// Today's parameter is not what the old disputes hold.
			DisputeBond::set(700);

			#[cfg(feature = "try-runtime")]
			let weight = Migration::try_on_runtime_upgrade(true).expect("pre_upgrade and post_upgrade checks pass");
			#[cfg(not(feature = "try-runtime"))]
			let weight = Migration::on_runtime_upgrade();
			let db = <Test as frame_system::Config>::DbWeight::get();
			assert_eq!(weight, db.reads_writes(3, 2).saturating_add(db.reads_writes(1, 1)));
			assert_eq!(Attribution::on_chain_storage_version(), StorageVersion::new(2));
			for (k, d) in &open {
				assert_eq!(Disputes::<Test>::get(k).as_ref(), Some(d), "challenger, deadline and the old bond");
			}
			check();

			// Once: a second run reads the version and does nothing.
			assert_eq!(Migration::on_runtime_upgrade(), db.reads(1));
			for (k, d) in &open {
				assert_eq!(Disputes::<Test>::get(k).as_ref(), Some(d));
			}
			// The migrated disputes close with their own bond, not today's: one answered (the bond
			// to the worker), one upheld at its deadline (the bond back to its challenger).
			let w0 = Balances::free_balance(worker());
			assert_ok!(answer(id, sh(c(0)), vec![evidence(&claims, 0)]));
			assert_eq!(Balances::free_balance(worker()), w0 + INITIAL_DISPUTE_BOND);
			let b = challenger();
			let b0 = Balances::total_balance(&b);
			idle_to(deadline_of(id, sh(c(3))));
			assert_eq!(Receipts::<Test>::get(id).unwrap().verdict, Some(Verdict::False));
			assert_eq!(Balances::balance_on_hold(&HoldReason::ChallengeBond.into(), &b), 0, "exactly the old bond released");
			assert_eq!(Balances::total_balance(&b), b0, "its bond back; the mock slash took nothing, so no reward");
			check();
		});
	}

	/// The migration's own checks fail when it records a bond the challengers do not hold.
	#[cfg(feature = "try-runtime")]
	#[test]
	fn migration_v2_checks_fail_on_a_wrong_old_bond() {
		use crate::migrations::v2::MigrateV1ToV2;
		use frame_support::traits::{ConstU64, OnRuntimeUpgrade};
		new_test_ext().execute_with(|| {
			let (id, _) = honest_and_false_receipt();
			assert_ok!(Attribution::challenge_share(signed(outsider()), id, c(0)));
			assert_eq!(downgrade_disputes_to_v1().len(), 1);
			let err = MigrateV1ToV2::<Test, ConstU64<{ INITIAL_DISPUTE_BOND + 1 }>>::try_on_runtime_upgrade(true).unwrap_err();
			assert_eq!(err, sp_runtime::DispatchError::Other("challenge bonds held differ from open challenges' and disputes' bonds"));
		});
	}
}
