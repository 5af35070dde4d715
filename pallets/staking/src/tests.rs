//! Unit tests: every call and error path, holds, unbonding, slashing and reward sharing.

use crate::{mock::*, *};
use frame_support::{
	assert_noop, assert_ok,
	dispatch::Pays,
	traits::fungible::{Inspect, InspectHold},
};
use sp_runtime::{DispatchError, Perbill, TokenError};

type Error = crate::Error<Test>;

fn signed(who: AccountId) -> RuntimeOrigin {
	RuntimeOrigin::signed(who)
}

fn held(who: AccountId) -> Balance {
	Balances::balance_on_hold(&RuntimeHoldReason::Staking(HoldReason::Staking), &who)
}

/// A bounded call argument.
fn bv<T, S: frame_support::traits::Get<u32>>(v: Vec<T>) -> frame_support::BoundedVec<T, S> {
	v.try_into().ok().expect("within the bound")
}

fn key(i: u8) -> SigningKey {
	[i; 32]
}

fn bond(who: AccountId, amount: Balance, k: u8) {
	assert_ok!(Staking::bond_worker(signed(who), amount, key(k), bv(b"http://127.0.0.1:8080".to_vec()), bv(vec![1, 2]), Perbill::from_percent(10)));
}

fn worker(who: AccountId) -> WorkerInfo<Test> {
	Workers::<Test>::get(who).expect("worker")
}

fn check() {
	assert_ok!(Staking::do_try_state());
	let sum: Balance = [W, D1, D2, D3, D4, PAYER, 7, TREASURY].iter().map(|w| Balances::total_balance(w)).sum();
	assert_eq!(sum, Balances::total_issuance(), "OPEN is neither created nor destroyed");
}

fn run_to(n: u64) {
	System::set_block_number(n);
}

#[test]
fn bond_worker_holds_and_registers_key_endpoint_and_models() {
	new_test_ext().execute_with(|| {
		bond(W, 5_000, 1);
		let w = worker(W);
		assert_eq!((w.self_bond, w.status, w.models.to_vec()), (5_000, WorkerStatus::Active, vec![1, 2]));
		assert_eq!(held(W), 5_000);
		assert_eq!(SigningKeys::<Test>::get(key(1)), Some(W));
		assert!(Staking::is_eligible(&W));
		assert!(Staking::serves(&W, 2) && !Staking::serves(&W, 3));
		System::assert_last_event(RuntimeEvent::Staking(Event::WorkerBonded { worker: W, amount: 5_000, signing_key: key(1) }));
		check();
	});
}

#[test]
fn bond_worker_rejects_bad_input() {
	new_test_ext().execute_with(|| {
		let b = |who, amount, k: u8, endpoint: Vec<u8>, models: Vec<u32>| {
			Staking::bond_worker(signed(who), amount, key(k), bv(endpoint), bv(models), Perbill::zero())
		};
		assert_noop!(b(W, MIN_BOND - 1, 1, vec![], vec![]), Error::BondTooLow);
		// Arguments beyond their bounds are not even a call: the extrinsic does not decode.
		let encoded = |endpoint: Vec<u8>, models: Vec<u32>| {
			use codec::Encode;
			let mut bytes = RuntimeCall::Staking(crate::Call::unbond { amount: 0 }).encode()[..1].to_vec();
			bytes.push(0); // bond_worker
			bytes.extend((MIN_BOND, key(1), endpoint, models, Perbill::zero()).encode());
			bytes
		};
		let decodes = |bytes: Vec<u8>| <RuntimeCall as codec::Decode>::decode(&mut &bytes[..]).is_ok();
		assert!(decodes(encoded(vec![0; 64], vec![1, 2, 3, 4])), "at the bounds: a call");
		assert!(!decodes(encoded(vec![0; 65], vec![])), "endpoint too long");
		assert!(!decodes(encoded(vec![], vec![1, 2, 3, 4, 5])), "too many models");
		assert_noop!(b(W, MIN_BOND, 1, vec![], vec![42]), Error::UnknownModel);
		assert_noop!(b(W, START + 1, 1, vec![], vec![]), TokenError::FundsUnavailable);
		bond(W, MIN_BOND, 1);
		assert_noop!(b(W, MIN_BOND, 2, vec![], vec![]), Error::AlreadyWorker);
		assert_noop!(b(D1, MIN_BOND, 1, vec![], vec![]), Error::SigningKeyInUse);
		check();
	});
}

#[test]
fn update_worker_changes_key_endpoint_models_commission() {
	new_test_ext().execute_with(|| {
		bond(W, MIN_BOND, 1);
		bond(D1, MIN_BOND, 2);
		assert_noop!(Staking::update_worker(signed(D2), None, None, None, None), Error::UnknownWorker);
		assert_noop!(Staking::update_worker(signed(W), Some(key(2)), None, None, None), Error::SigningKeyInUse);
		assert_noop!(Staking::update_worker(signed(W), None, None, Some(bv(vec![77])), None), Error::UnknownModel);
		assert_ok!(Staking::update_worker(signed(W), Some(key(9)), Some(bv(b"https://w.example".to_vec())), Some(bv(vec![5])), Some(Perbill::from_percent(3))));
		let w = worker(W);
		assert_eq!((w.signing_key, w.models.to_vec(), w.commission), (key(9), vec![5], Perbill::from_percent(3)));
		assert_eq!(SigningKeys::<Test>::get(key(1)), None);
		assert_eq!(SigningKeys::<Test>::get(key(9)), Some(W));
		check();
	});
}

#[test]
fn delegate_and_undelegate_with_bounds() {
	new_test_ext().execute_with(|| {
		bond(W, MIN_BOND, 1);
		assert_noop!(Staking::delegate(signed(W), W, 500), Error::SelfDelegation);
		assert_noop!(Staking::delegate(signed(D1), D2, 500), Error::UnknownWorker);
		assert_noop!(Staking::delegate(signed(D1), W, MIN_DELEGATION - 1), Error::DelegationTooLow);
		assert_ok!(Staking::delegate(signed(D1), W, 500));
		assert_ok!(Staking::delegate(signed(D1), W, 50)); // top-up below the minimum is fine
		assert_ok!(Staking::delegate(signed(D2), W, 300));
		assert_ok!(Staking::delegate(signed(D3), W, 200));
		assert_noop!(Staking::delegate(signed(D4), W, 200), Error::TooManyDelegators);
		let w = worker(W);
		assert_eq!((w.delegated, w.delegators), (1_050, 3));
		assert_eq!(held(D1), 550);
		assert_noop!(Staking::undelegate(signed(D1), W, 551), Error::NotEnoughStake);
		assert_noop!(Staking::undelegate(signed(D1), W, 500), Error::DelegationTooLow);
		assert_noop!(Staking::undelegate(signed(D4), W, 1), Error::NotEnoughStake);
		assert_ok!(Staking::undelegate(signed(D1), W, 550));
		System::assert_last_event(RuntimeEvent::Staking(Event::Unbonding { who: D1, worker: W, amount: 550, unlock_at: 1 + UNBONDING }));
		assert_eq!(Delegations::<Test>::get(W, D1), None);
		assert_eq!(held(D1), 550, "unbonding stake stays held");
		// D1's unbonding stake is still bonded to W (slashable): it keeps its slot until it is
		// withdrawn.
		assert_eq!(worker(W).delegators, 3);
		assert_noop!(Staking::delegate(signed(D4), W, 200), Error::TooManyDelegators);
		check();
		run_to(1 + UNBONDING);
		assert_ok!(Staking::withdraw_unbonded(signed(D1)));
		assert_eq!(worker(W).delegators, 2);
		assert!(!Unbonders::<Test>::contains_key(W, D1));
		// Now D4 fits.
		assert_ok!(Staking::delegate(signed(D4), W, 200));
		check();
	});
}

#[test]
fn unbond_rebond_and_withdraw_after_the_period() {
	new_test_ext().execute_with(|| {
		bond(W, 3_000, 1);
		assert_noop!(Staking::unbond(signed(W), 2_500), Error::BondTooLow);
		assert_noop!(Staking::unbond(signed(W), 3_001), Error::NotEnoughStake);
		assert_ok!(Staking::unbond(signed(W), 1_000));
		assert_eq!(worker(W).self_bond, 2_000);
		assert_noop!(Staking::withdraw_unbonded(signed(W)), Error::NothingToWithdraw);
		assert_ok!(Staking::rebond(signed(W), W, 400));
		assert_eq!(worker(W).self_bond, 2_400);
		assert_eq!(Unbonding::<Test>::get(W)[0].amount, 600);
		assert_noop!(Staking::rebond(signed(W), D1, 10), Error::UnknownWorker);
		run_to(1 + UNBONDING);
		let free0 = Balances::balance(&W);
		assert_ok!(Staking::withdraw_unbonded(signed(W)));
		assert_eq!(Balances::balance(&W), free0 + 600);
		assert_eq!(held(W), 2_400);
		assert!(Unbonding::<Test>::get(W).is_empty());
		assert_noop!(Staking::rebond(signed(W), W, 10), Error::NothingToRebond);
		check();
	});
}

#[test]
fn full_exit_makes_the_worker_idle_then_gone() {
	new_test_ext().execute_with(|| {
		bond(W, 2_000, 1);
		assert_ok!(Staking::unbond(signed(W), 2_000));
		assert_eq!(worker(W).status, WorkerStatus::Idle);
		assert!(!Staking::is_eligible(&W));
		assert_noop!(Staking::delegate(signed(D1), W, 500), Error::NotEligible);
		run_to(20);
		assert_ok!(Staking::withdraw_unbonded(signed(W)));
		assert!(Workers::<Test>::get(W).is_none());
		assert_eq!(SigningKeys::<Test>::get(key(1)), None);
		assert_eq!(Balances::balance(&W), START);
		check();
	});
}

#[test]
fn chunks_are_bounded() {
	new_test_ext().execute_with(|| {
		bond(W, 5_000, 1);
		for _ in 0..3 {
			assert_ok!(Staking::unbond(signed(W), 100));
		}
		assert_noop!(Staking::unbond(signed(W), 100), Error::TooManyChunks);
		check();
	});
}

#[test]
fn slash_takes_the_same_fraction_of_everyone_bonded_to_the_worker() {
	new_test_ext().execute_with(|| {
		bond(W, 4_000, 1);
		bond(7, 2_000, 2); // another worker, untouched
		assert_ok!(Staking::delegate(signed(D1), W, 1_000));
		assert_ok!(Staking::delegate(signed(D2), W, 2_000));
		assert_ok!(Staking::delegate(signed(D2), 7, 500));
		assert_ok!(Staking::undelegate(signed(D2), W, 1_000)); // unbonding, still slashable
		assert_ok!(Staking::unbond(signed(W), 1_000));
		let treasury0 = Balances::balance(&TREASURY);
		assert_noop!(Staking::slash(signed(D1), W, Perbill::from_percent(10)), DispatchError::BadOrigin);
		assert_ok!(Staking::slash(RuntimeOrigin::root(), W, Perbill::from_percent(10)));
		// 10 % of: self 3000, unbonding self 1000, D1 1000, D2 1000 + unbonding 1000 = 700.
		System::assert_last_event(RuntimeEvent::Staking(Event::Slashed { worker: W, fraction: Perbill::from_percent(10), amount: 700 }));
		assert_eq!(Balances::balance(&TREASURY), treasury0 + 700);
		assert_eq!(worker(W).self_bond, 2_700);
		assert_eq!(Delegations::<Test>::get(W, D1), Some(900));
		assert_eq!(Delegations::<Test>::get(W, D2), Some(900));
		assert_eq!(Delegations::<Test>::get(7, D2), Some(500), "stake on another worker is not touched");
		assert_eq!(held(D2), 900 + 900 + 500);
		assert_eq!(worker(W).status, WorkerStatus::Slashed);
		assert!(!Staking::is_eligible(&W) && Staking::is_eligible(&7));
		assert_noop!(Staking::delegate(signed(D3), W, 500), Error::NotEligible);
		assert_noop!(Staking::bond_extra(signed(W), 5_000), Error::WorkerSlashed);
		assert_noop!(Staking::slash(RuntimeOrigin::root(), D3, Perbill::one()), Error::UnknownWorker);
		check();
	});
}

/// Claims every position of `who` in `worker`'s pool and returns what it was paid.
fn claim(who: AccountId, worker: AccountId) -> Balance {
	let before = Balances::balance(&who);
	// Free of fees whenever it pays.
	assert_eq!(Staking::claim_staking_rewards(signed(who), worker).map(|i| i.pays_fee), Ok(Pays::No));
	Balances::balance(&who) - before
}

#[test]
fn rewards_pay_commission_then_share_pro_rata() {
	new_test_ext().execute_with(|| {
		bond(W, 3_000, 1); // commission 10 %
		assert_ok!(Staking::delegate(signed(D1), W, 1_000));
		assert_ok!(Staking::delegate(signed(D2), W, 2_000));
		Staking::accrue_reward(&W, 1_000);
		System::assert_last_event(RuntimeEvent::Staking(Event::RewardAccrued { worker: W, total: 1_000, commission: 100, shared: 900 }));
		// commission 100; 900 shared over 6000 stake: D1 150, D2 300, worker 450 + 100.
		assert_eq!(Staking::pending_reward(&W, &D1), 150);
		assert_eq!(Staking::rewards_owed(), 1_000);
		let p0 = Balances::balance(&PAYER);
		assert_eq!(claim(D1, W), 150);
		assert_eq!(claim(D2, W), 300);
		assert_eq!(claim(W, W), 550);
		assert_eq!(p0 - Balances::balance(&PAYER), 1_000);
		assert_noop!(Staking::claim_staking_rewards(signed(D1), W), Error::NothingToClaim);
		assert_eq!(Staking::rewards_owed(), 0);
		check();
	});
}

/// Rewards go to the stake bonded when they accrue: a delegator who joins after a reward earns
/// nothing of it (however long the worker waits to claim), one who leaves keeps what it earned.
#[test]
fn late_delegators_earn_nothing_of_earlier_rewards() {
	new_test_ext().execute_with(|| {
		bond(W, 1_000, 1); // commission 10 %
		assert_ok!(Staking::delegate(signed(D1), W, 1_000));
		Staking::accrue_reward(&W, 1_000); // 900 over 2000: W 450 + 100, D1 450
		// D2 joins with a large stake right after, before anyone claims.
		assert_ok!(Staking::delegate(signed(D2), W, 8_000));
		assert_eq!(Staking::pending_reward(&W, &D2), 0);
		// D1 leaves: what it earned is settled to it, and it earns nothing more.
		assert_ok!(Staking::undelegate(signed(D1), W, 1_000));
		Staking::accrue_reward(&W, 1_000); // 900 over 9000: W 100 + 100, D2 800
		assert_eq!(claim(D1, W), 450);
		assert_eq!(claim(D2, W), 800);
		assert_eq!(claim(W, W), 450 + 100 + 100 + 100);
		assert_eq!(Staking::rewards_owed(), 0);
		check();
	});
}

#[test]
fn try_state_detects_a_hold_that_does_not_match() {
	new_test_ext().execute_with(|| {
		bond(W, 2_000, 1);
		assert_ok!(Staking::do_try_state());
		Workers::<Test>::mutate(W, |w| w.as_mut().unwrap().self_bond += 1);
		assert!(Staking::do_try_state().is_err());
	});
}

#[test]
fn governance_sets_the_unbonding_period_for_new_chunks() {
	new_test_ext().execute_with(|| {
		bond(W, 5_000, 1);
		assert_ok!(Staking::unbond(signed(W), 100));
		assert_noop!(Staking::set_unbonding_period(signed(W), 3), DispatchError::BadOrigin);
		// Never shorter than the challenge window (MinUnbondingPeriod, 3 here).
		assert_noop!(Staking::set_unbonding_period(RuntimeOrigin::root(), 2), Error::UnbondingTooShort);
		assert_ok!(Staking::set_unbonding_period(RuntimeOrigin::root(), 3));
		System::assert_last_event(RuntimeEvent::Staking(Event::UnbondingPeriodSet { blocks: 3 }));
		assert_ok!(Staking::unbond(signed(W), 200));
		let chunks = Unbonding::<Test>::get(W);
		assert_eq!((chunks[0].unlock_at, chunks[1].unlock_at), (1 + UNBONDING, 1 + 3));
		run_to(4);
		let free0 = Balances::balance(&W);
		assert_ok!(Staking::withdraw_unbonded(signed(W)));
		assert_eq!(Balances::balance(&W), free0 + 200, "only the matured chunk");
		check();
	});
}

/// A slashed worker cannot come back: unbonded, withdrawn, its record gone, it still cannot
/// bond again.
#[test]
fn a_slashed_worker_is_never_a_worker_again() {
	new_test_ext().execute_with(|| {
		bond(W, 2_000, 1);
		assert_ok!(Staking::slash(RuntimeOrigin::root(), W, Perbill::from_percent(10)));
		assert_ok!(Staking::unbond(signed(W), 1_800));
		run_to(1 + UNBONDING);
		assert_ok!(Staking::withdraw_unbonded(signed(W)));
		assert!(Workers::<Test>::get(W).is_none(), "the record is gone");
		assert_noop!(
			Staking::bond_worker(signed(W), 2_000, key(2), bv(b"http://x".to_vec()), bv(vec![1]), Perbill::zero()),
			Error::WorkerSlashed
		);
		check();
	});
}

/// Rewards a worker earned stay claimable after its record is gone: paid to it whole.
#[test]
fn rewards_of_a_worker_whose_record_is_gone_are_paid_to_it() {
	new_test_ext().execute_with(|| {
		bond(W, 2_000, 1);
		assert_ok!(Staking::unbond(signed(W), 2_000));
		run_to(1 + UNBONDING);
		assert_ok!(Staking::withdraw_unbonded(signed(W)));
		assert!(Workers::<Test>::get(W).is_none());
		Staking::accrue_reward(&W, 70);
		assert_eq!(StakingRewards::<Test>::get(W), 70);
		assert_eq!(claim(W, W), 70);
		check();
	});
}

/// A delegator that undelegated everything just before a slash is still slashed on its
/// unbonding stake: it left no earlier than the stake stops backing the worker's receipts.
#[test]
fn a_delegator_who_left_is_still_slashed_while_unbonding() {
	new_test_ext().execute_with(|| {
		bond(W, 2_000, 1);
		assert_ok!(Staking::delegate(signed(D1), W, 1_000));
		assert_ok!(Staking::undelegate(signed(D1), W, 1_000));
		assert!(Delegations::<Test>::get(W, D1).is_none());
		assert!(Unbonders::<Test>::contains_key(W, D1));
		let t0 = Balances::balance(&TREASURY);
		assert_ok!(Staking::slash(RuntimeOrigin::root(), W, Perbill::from_percent(10)));
		assert_eq!(held(D1), 900, "its unbonding chunk was cut too");
		assert_eq!(Unbonding::<Test>::get(D1)[0].amount, 900);
		assert_eq!(Balances::balance(&TREASURY), t0 + 200 + 100);
		check();
		// Withdrawn, it is out of reach and frees its slot.
		run_to(1 + UNBONDING);
		assert_ok!(Staking::withdraw_unbonded(signed(D1)));
		assert!(!Unbonders::<Test>::contains_key(W, D1));
		assert_eq!(worker(W).delegators, 0);
		check();
	});
}

/// Rebonding the unbonding stake of a full undelegation takes back the same slot and index.
#[test]
fn rebonding_after_a_full_undelegation_keeps_one_slot() {
	new_test_ext().execute_with(|| {
		bond(W, 2_000, 1);
		assert_ok!(Staking::delegate(signed(D1), W, 500));
		assert_ok!(Staking::undelegate(signed(D1), W, 500));
		assert_eq!(worker(W).delegators, 1);
		assert_ok!(Staking::rebond(signed(D1), W, 500));
		assert_eq!((worker(W).delegators, worker(W).delegated), (1, 500));
		assert!(!Unbonders::<Test>::contains_key(W, D1), "nothing unbonding for W any more");
		check();
	});
}

/// A higher commission waits `CommissionChangeDelay` blocks (delegators can leave first); a
/// lower one applies at once.
#[test]
fn commission_increases_wait_and_decreases_apply_at_once() {
	new_test_ext().execute_with(|| {
		bond(W, 1_000, 1); // 10 %
		assert_ok!(Staking::update_worker(signed(W), None, None, None, Some(Perbill::from_percent(50))));
		System::assert_has_event(RuntimeEvent::Staking(Event::CommissionChangeScheduled {
			worker: W,
			commission: Perbill::from_percent(50),
			at: 1 + COMMISSION_DELAY,
		}));
		let commission = |()| {
			System::events()
				.iter()
				.rev()
				.find_map(|e| match e.event {
					RuntimeEvent::Staking(Event::RewardAccrued { commission, .. }) => Some(commission),
					_ => None,
				})
				.unwrap()
		};
		assert_eq!(commission(Staking::accrue_reward(&W, 1_000)), 100, "still 10 %");
		run_to(1 + COMMISSION_DELAY);
		assert_eq!(commission(Staking::accrue_reward(&W, 1_000)), 500, "50 % from its block");
		assert_ok!(Staking::update_worker(signed(W), None, None, None, Some(Perbill::from_percent(5))));
		assert_eq!(worker(W).commission, Perbill::from_percent(5));
		assert_eq!(commission(Staking::accrue_reward(&W, 1_000)), 50, "a cut applies at once");
		// A raise scheduled then withdrawn by a cut before it applies never applies.
		assert_ok!(Staking::update_worker(signed(W), None, None, None, Some(Perbill::from_percent(90))));
		assert_ok!(Staking::update_worker(signed(W), None, None, None, Some(Perbill::from_percent(5))));
		run_to(100);
		assert_eq!(commission(Staking::accrue_reward(&W, 1_000)), 50);
		check();
	});
}

/// A slash for a receipt settled at block 5 takes nothing from stake that had started
/// unbonding before it (it never backed that receipt), and its share from stake that left
/// after.
#[test]
fn a_slash_spares_stake_that_left_before_the_receipt() {
	new_test_ext().execute_with(|| {
		bond(W, 2_000, 1);
		assert_ok!(Staking::delegate(signed(D1), W, 1_000));
		assert_ok!(Staking::delegate(signed(D2), W, 1_000));
		assert_ok!(Staking::undelegate(signed(D1), W, 1_000)); // left at block 1
		run_to(5);
		assert_ok!(Staking::undelegate(signed(D2), W, 1_000)); // left at block 5
		assert_ok!(Staking::do_slash(&W, Perbill::from_percent(10), Some(5)).map(|_| ()));
		assert_eq!(held(D1), 1_000, "unbonding before the receipt: untouched");
		assert_eq!(held(D2), 900, "still backing it when it settled: slashed");
		assert_eq!(held(W), 1_800);
		check();
	});
}

/// While a receipt of the worker is challenged, the stake that backed it (unbonding since the
/// receipt settled, or later) cannot be withdrawn — it stays slashable until the verdict — and
/// nobody can delegate to the worker; stake that had left before the receipt is not held back.
#[test]
fn stake_that_backed_a_challenged_receipt_is_frozen_until_the_verdict() {
	new_test_ext().execute_with(|| {
		bond(W, 2_000, 1);
		assert_ok!(Staking::delegate(signed(D1), W, 1_000));
		assert_ok!(Staking::delegate(signed(D2), W, 1_000));
		assert_ok!(Staking::undelegate(signed(D2), W, 1_000)); // left at block 1
		run_to(3);
		assert_ok!(Staking::undelegate(signed(D1), W, 1_000)); // left at block 3
		// Receipts settled at blocks 5 and 3 are challenged: frozen from block 3 on.
		Staking::challenge_opened(&W, 5);
		Staking::challenge_opened(&W, 3);
		assert_eq!(OpenChallenges::<Test>::get(W), Some((2, 3)));
		run_to(3 + UNBONDING);
		assert_noop!(Staking::withdraw_unbonded(signed(D1)), Error::ChallengeOpen);
		assert_ok!(Staking::withdraw_unbonded(signed(D2)));
		assert_noop!(Staking::delegate(signed(D3), W, 500), Error::ChallengeOpen);
		Staking::challenge_closed(&W);
		assert_noop!(Staking::withdraw_unbonded(signed(D1)), Error::ChallengeOpen);
		Staking::challenge_closed(&W);
		assert!(!OpenChallenges::<Test>::contains_key(W));
		assert_ok!(Staking::withdraw_unbonded(signed(D1)));
		assert_ok!(Staking::delegate(signed(D3), W, 500));
		check();
	});
}

/// Amounts that do not divide: positions joining after rewards accrued never claim more than
/// the pool holds (debts round up), and the pool never owes more than it holds.
#[test]
fn rounding_never_lets_a_pool_owe_more_than_it_holds() {
	new_test_ext().execute_with(|| {
		bond(W, 3_001, 1);
		Staking::accrue_reward(&W, 1_003);
		assert_ok!(Staking::delegate(signed(D1), W, 107));
		assert_ok!(Staking::delegate(signed(D2), W, 113));
		for amount in [53, 7, 1, 999, 31] {
			Staking::accrue_reward(&W, amount);
			check();
		}
		assert_ok!(Staking::delegate(signed(D3), W, 101));
		Staking::accrue_reward(&W, 77);
		check();
		let pool = PoolBalance::<Test>::get(W);
		let claimable: Balance = [W, D1, D2, D3].iter().map(|who| Staking::pending_reward(&W, who)).sum();
		assert!(claimable <= pool, "{claimable} > {pool}");
		let paid: Balance = [D1, D2, D3, W].iter().map(|who| claim(*who, W)).sum();
		let commission: Balance = [1_003u64, 53, 7, 1, 999, 31, 77].iter().map(|a| a / 10).sum();
		assert!(paid <= 1_003 + 53 + 7 + 1 + 999 + 31 + 77, "never more than accrued");
		assert!(paid >= commission, "at least the commissions");
		assert_eq!(Staking::rewards_owed(), 1_003 + 53 + 7 + 1 + 999 + 31 + 77 - paid, "the rest is the pool's dust, still owed");
		check();
	});
}
