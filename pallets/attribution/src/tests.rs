//! Unit tests: escrow, every receipt rule (each rejection changes nothing), settlement split,
//! claims, pruning, challenges, and OPEN conservation over random sequences.

use crate::{mock::*, *};
use codec::Encode;
use frame_support::{
	assert_noop, assert_ok,
	traits::{fungible::Inspect, Hooks},
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
}

impl Default for Spec {
	fn default() -> Self {
		Spec { nonce: 1, fee: 1_000, max_fee: 2_000, expires_at: 50, model: 1, version: 1, shares: vec![share(0, 1, 0, 60), share(0, 1, 3, 30)] }
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
		output_hash: H256::repeat_byte(7),
		method: AttributionMethod::SpanMatch,
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
		let pot0 = Balances::balance(&Attribution::pot());
		submit(worker(), vec![r]);
		System::assert_last_event(RuntimeEvent::Attribution(Event::ReceiptSettled { request_id: id, worker: worker(), payer: payer(), model: 1, fee: 1_000 }));
		assert_eq!(Attribution::escrow_of(&payer()), 9_000);
		assert_eq!(Balances::balance(&Attribution::pot()), pot0 + 1_000);
		// 40/30/20/10 of 1000; data 300: contributors 60 % and 30 %; the rest 30 split by lineage.
		assert_eq!(Rewards::<Test>::get(owner()), 400);
		assert_eq!(WorkerRewards::<Test>::get(worker()), 200);
		assert_eq!(Rewards::<Test>::get(treasury()), 100);
		assert_eq!(Rewards::<Test>::get(contributor(0)), 180);
		assert_eq!(Rewards::<Test>::get(contributor(3)), 90);
		assert_eq!(Rewards::<Test>::get(datanet_owner(0)), 15);
		assert_eq!(Rewards::<Test>::get(datanet_owner(1)), 15);
		assert_eq!(ContributionEarnings::<Test>::get(ContributionRef { datanet: 0, version: 1, index: 0 }), 180);
		assert_eq!(DatanetEarnings::<Test>::get(0), 180 + 90 + 15);
		assert_eq!(DatanetEarnings::<Test>::get(1), 15);
		assert_eq!(ModelUsage::<Test>::get(1), Usage { requests: 1, tokens: 30, revenue: 1_000 });
		assert_eq!(AccountEarnings::<Test>::get(owner()).accrued, 400);
		let rec = Receipts::<Test>::get(id).unwrap();
		assert_eq!((rec.fee, rec.worker_payout, rec.settled_at), (1_000, 200, 1));
		assert_eq!(UsedRequests::<Test>::get(id), Some(50 + 1));
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
			let (escrow0, pot0) = (Attribution::escrow_of(&payer()), Balances::balance(&Attribution::pot()));
			let used0 = UsedRequests::<Test>::get(id);
			System::reset_events();
			submit(from, vec![r]);
			assert!(rejected(reason), "expected {reason:?}");
			assert_eq!(Attribution::escrow_of(&payer()), escrow0, "{reason:?} moved escrow");
			assert_eq!(Balances::balance(&Attribution::pot()), pot0);
			assert_eq!(UsedRequests::<Test>::get(id), used0);
		}
		// Not enough escrow.
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
		Attribution::on_initialize(51);
		for id in &ids[..4] {
			assert!(UsedRequests::<Test>::get(id).is_none());
			assert!(Receipts::<Test>::get(id).is_none());
		}
		assert!(UsedRequests::<Test>::get(ids[4]).is_some(), "queued for block 52");
		check();
	});
}

#[test]
fn claims_pay_out_and_workers_share_with_delegators() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		submit(worker(), vec![good(Spec::default())]);
		let c0 = Balances::balance(&contributor(0));
		assert_ok!(Attribution::claim_rewards(signed(payer()), contributor(0)));
		assert_eq!(Balances::balance(&contributor(0)), c0 + 180);
		assert_eq!(AccountEarnings::<Test>::get(contributor(0)), Earnings { accrued: 180, claimed: 180 });
		assert_noop!(Attribution::claim_rewards(signed(payer()), contributor(0)), Error::NothingToClaim);
		assert_ok!(Attribution::claim_rewards(signed(worker()), worker()));
		assert_eq!(REWARDS_PAID.with(|r| r.borrow().clone()), vec![(worker(), 200)]);
		check();
	});
}

#[test]
fn an_upheld_challenge_slashes_refunds_unclaimed_and_pays_the_challenger() {
	new_test_ext().execute_with(|| {
		escrow(10_000);
		let r = good(Spec::default());
		let id = r.receipt.request_id();
		submit(worker(), vec![r]);
		// One contributor already claimed: that part cannot be reversed.
		assert_ok!(Attribution::claim_rewards(signed(payer()), contributor(0)));
		assert_noop!(Attribution::challenge(signed(payer()), id), Error::NotBonded);
		assert_noop!(Attribution::challenge(signed(challenger()), H256::zero()), Error::UnknownReceipt);
		assert_ok!(Attribution::challenge(signed(challenger()), id));
		assert_noop!(Attribution::challenge(signed(challenger()), id), Error::AlreadyChallenged);
		assert_noop!(Attribution::resolve_challenge(signed(payer()), id, Verdict::False), DispatchError::BadOrigin);
		let (p0, c0, t0) = (Balances::balance(&payer()), Balances::balance(&challenger()), Balances::balance(&treasury()));
		assert_ok!(Attribution::resolve_challenge(RuntimeOrigin::root(), id, Verdict::False));
		System::assert_last_event(RuntimeEvent::Attribution(Event::ChallengeUpheld { request_id: id, worker: worker(), refunded: 1_000 - 180 }));
		assert_eq!(SLASHES.with(|s| s.borrow().clone()), vec![(worker(), Perbill::from_percent(10))]);
		assert_eq!(Balances::balance(&payer()), p0 + 820);
		assert_eq!(Balances::balance(&challenger()), c0 + CHALLENGE_BOND + CHALLENGER_REWARD);
		assert_eq!(Balances::balance(&treasury()), t0 - CHALLENGER_REWARD);
		assert_eq!(Rewards::<Test>::get(owner()), 0);
		assert_eq!(WorkerRewards::<Test>::get(worker()), 0);
		assert_noop!(Attribution::resolve_challenge(RuntimeOrigin::root(), id, Verdict::False), Error::NotChallenged);
		// Judged once: a second challenge of the same receipt (which would slash, refund and
		// reward again) is refused, by anyone.
		assert_noop!(Attribution::challenge(signed(challenger()), id), Error::AlreadyJudged);
		assert_eq!(SLASHES.with(|s| s.borrow().len()), 1);
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
/// resolved: the receipt and the bond stay, the verdict applies, then the record goes.
#[test]
fn a_challenge_in_the_last_block_of_the_window_survives_pruning() {
	use frame_support::traits::fungible::InspectHold;
	new_test_ext().execute_with(|| {
		escrow(10_000);
		let r = good(Spec { expires_at: 2, ..Default::default() });
		let id = r.receipt.request_id();
		submit(worker(), vec![r]);
		let prune_at = UsedRequests::<Test>::get(id).unwrap();
		assert_eq!(prune_at, 1 + WINDOW + 1);
		System::set_block_number(1 + WINDOW);
		assert_ok!(Attribution::challenge(signed(challenger()), id));
		let held = Balances::balance_on_hold(&HoldReason::ChallengeBond.into(), &challenger());
		assert_eq!(held, CHALLENGE_BOND);
		for n in prune_at..prune_at + 3 {
			System::set_block_number(n);
			Attribution::on_initialize(n);
		}
		assert!(Receipts::<Test>::get(id).is_some(), "kept while challenged");
		assert_eq!(Balances::balance_on_hold(&HoldReason::ChallengeBond.into(), &challenger()), CHALLENGE_BOND, "bond still held");
		let p0 = Balances::balance(&payer());
		assert_ok!(Attribution::resolve_challenge(RuntimeOrigin::root(), id, Verdict::False));
		assert!(Balances::balance(&payer()) > p0, "the verdict applied: the payer was refunded");
		assert!(Receipts::<Test>::get(id).is_none() && UsedRequests::<Test>::get(id).is_none(), "past its pruning block: removed");
		check();
	});
}

#[test]
fn an_unfounded_challenge_forfeits_the_bond_and_the_window_closes() {
	new_test_ext().execute_with(|| {
		let id = settled_and_challenged();
		let (c0, t0) = (Balances::total_balance(&challenger()), Balances::balance(&treasury()));
		assert_ok!(Attribution::resolve_challenge(RuntimeOrigin::root(), id, Verdict::Valid));
		assert_eq!(Balances::total_balance(&challenger()), c0 - CHALLENGE_BOND);
		assert_eq!(Balances::balance(&treasury()), t0 + CHALLENGE_BOND);
		assert_eq!(Rewards::<Test>::get(owner()), 400, "rewards stand");
		assert_noop!(Attribution::challenge(signed(challenger()), id), Error::AlreadyJudged);
		let other = good(Spec { nonce: 2, ..Default::default() });
		let other_id = other.receipt.request_id();
		submit(worker(), vec![other]);
		System::set_block_number(1 + WINDOW + 1);
		assert_noop!(Attribution::challenge(signed(challenger()), other_id), Error::WindowClosed);
		check();
	});
}

/// Property: random interleavings of deposits, withdrawals, receipts (good and bad), claims,
/// challenges and pruning never create or destroy OPEN, and the pot always covers what is owed.
#[test]
fn conservation_over_random_sequences() {
	let mut seed = 0x9e37_79b9_7f4a_7c15u64;
	let mut next = move || {
		seed ^= seed << 13;
		seed ^= seed >> 7;
		seed ^= seed << 17;
		seed
	};
	for _round in 0..20 {
		new_test_ext().execute_with(|| {
			let issuance = Balances::total_issuance();
			let mut nonce = 100u64;
			let mut ids = Vec::new();
			for step in 0..60 {
				System::set_block_number(1 + step / 3);
				Attribution::on_initialize(System::block_number());
				match next() % 7 {
					0 => {
						let _ = Attribution::deposit_escrow(signed(payer()), 1 + next() % 5_000);
					},
					1 => {
						let _ = Attribution::request_escrow_withdrawal(signed(payer()), 1 + next() % 2_000);
						let _ = Attribution::withdraw_escrow(signed(payer()));
					},
					2 | 3 => {
						nonce += 1;
						let pct = (next() % 60) as u32;
						let r = good(Spec {
							nonce,
							fee: next() % 3_000,
							max_fee: 2_500,
							expires_at: System::block_number() + next() % 30,
							shares: vec![share(0, 1, (next() % 8) as u32, pct), share(1, 1, (next() % 3) as u32, 100 - pct - (next() % 20) as u32 % (101 - pct))],
							..Default::default()
						});
						ids.push(r.receipt.request_id());
						let _ = Attribution::submit_receipts(signed(worker()), BoundedVec::truncate_from(vec![r]));
					},
					4 => {
						let who = [owner(), treasury(), contributor((next() % 8) as u32), datanet_owner((next() % 2) as u32), worker()];
						let _ = Attribution::claim_rewards(signed(payer()), who[(next() % 5) as usize].clone());
					},
					5 => {
						if let Some(id) = ids.get((next() as usize) % ids.len().max(1)) {
							let _ = Attribution::challenge(signed(challenger()), *id);
						}
					},
					_ => {
						if let Some(id) = ids.get((next() as usize) % ids.len().max(1)) {
							let verdict = if next() % 2 == 0 { Verdict::False } else { Verdict::Valid };
							let record = Receipts::<Test>::get(id);
							let result = Attribution::resolve_challenge(RuntimeOrigin::root(), *id, verdict);
							match record {
								// An open challenge is always judged, and judged once.
								Some(r) if r.challenger.is_some() => {
									assert_ok!(result);
									assert!(Receipts::<Test>::get(id).is_none_or(|r| r.verdict == Some(verdict) && r.challenger.is_none()));
								},
								Some(_) => assert_eq!(result.map_err(|e| e.error), Err(Error::NotChallenged.into())),
								None => assert_eq!(result.map_err(|e| e.error), Err(Error::UnknownReceipt.into())),
							}
						}
					},
				}
				assert_eq!(Balances::total_issuance(), issuance);
				check();
			}
		});
	}
}

#[test]
fn receipt_encoding_is_what_the_worker_signs() {
	// The receipt type is the primitives' one: re-encoding a decoded receipt keeps signatures.
	new_test_ext().execute_with(|| {
		let r = good(Spec::default());
		let decoded = <SignedR as codec::Decode>::decode(&mut &r.encode()[..]).unwrap();
		assert_eq!(decoded, r);
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
		let tiny = openledger_primitives::receipt::ContributionRef { datanet: 0, version: 1, index: 3 };
		assert!(!ContributionEarnings::<Test>::contains_key(tiny), "nothing earned, nothing written");
		let big = openledger_primitives::receipt::ContributionRef { datanet: 0, version: 1, index: 0 };
		assert!(ContributionEarnings::<Test>::contains_key(big));
		check();
	});
}

/// `try_state` catches what it claims to: a receipt record without its used id, an open
/// challenge without its bond (or a bond without a challenge), claims above accruals.
#[test]
fn try_state_detects_broken_records_and_bonds() {
	use frame_support::traits::fungible::MutateHold;
	new_test_ext().execute_with(|| {
		let id = settled_and_challenged();
		assert_ok!(Attribution::do_try_state());
		// A second bond held without a second challenge.
		assert_ok!(Balances::hold(&HoldReason::ChallengeBond.into(), &challenger(), CHALLENGE_BOND));
		assert!(Attribution::do_try_state().is_err());
		assert_ok!(Balances::release(&HoldReason::ChallengeBond.into(), &challenger(), CHALLENGE_BOND, frame_support::traits::tokens::Precision::Exact));
		assert_ok!(Attribution::do_try_state());
		// A record whose used id is gone.
		let used = UsedRequests::<Test>::take(id).unwrap();
		assert!(Attribution::do_try_state().is_err());
		UsedRequests::<Test>::insert(id, used);
		// Claimed above accrued.
		AccountEarnings::<Test>::mutate(owner(), |e| e.claimed = e.accrued + 1);
		assert!(Attribution::do_try_state().is_err());
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
