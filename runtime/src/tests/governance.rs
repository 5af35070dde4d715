//! Governance: presets without sudo, tracks and their origins, clamped parameters, and whole
//! referenda (fast timing) that pass or fail.

use super::{dev_ext, ext_from_preset, start_block};
use crate::{
	configs::governance::{dynamic_params, MAX_TREASURER_SPEND},
	currency::OPEN,
	genesis_config_presets::dev_accounts,
	governance::{pallet_origins, track, GovernanceTiming, Origin, TracksInfo},
	invariants, AccountId, Models, OriginCaller, Parameters, Preimage, Referenda, Runtime, RuntimeCall,
	RuntimeOrigin, System, Treasury, ValidatorSet,
};
use frame_support::{
	assert_noop, assert_ok,
	traits::{schedule::DispatchTime, Get, OriginTrait, StorePreimage},
};
use pallet_conviction_voting::{AccountVote, Conviction, Vote};
use pallet_models::RevenueSplit;
use pallet_referenda::{ReferendumInfo, TracksInfo as _};
use sp_keyring::Sr25519Keyring;
use sp_runtime::{DispatchError, Perbill};

fn origin(o: Origin) -> RuntimeOrigin {
	RuntimeOrigin::from(o)
}

fn sudo_key() -> Option<AccountId> {
	frame_support::storage::unhashed::get::<AccountId>(&frame_support::storage::storage_prefix(b"Sudo", b"Key"))
}

#[test]
fn sudo_exists_on_the_development_chain_only() {
	dev_ext().execute_with(|| {
		assert_eq!(sudo_key(), Some(Sr25519Keyring::Alice.to_account_id()));
		assert_eq!(pallet_origins::Timing::<Runtime>::get(), GovernanceTiming::Fast);
	});
	ext_from_preset(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET).execute_with(|| {
		assert_eq!(sudo_key(), None);
		assert_eq!(pallet_origins::Timing::<Runtime>::get(), GovernanceTiming::Fast);
		assert_eq!(pallet_validator_set::Validators::<Runtime>::get().len(), 2);
		assert_ok!(invariants::check());
	});
	ext_from_preset(crate::genesis_config_presets::TESTNET_TEMPLATE_PRESET).execute_with(|| {
		assert_eq!(sudo_key(), None);
		assert_eq!(pallet_origins::Timing::<Runtime>::get(), GovernanceTiming::Real);
		assert_eq!(pallet_aura::Authorities::<Runtime>::get().len(), 3);
		assert_eq!(pallet_grandpa::Pallet::<Runtime>::grandpa_authorities().len(), 3);
	});
}

#[test]
fn every_origin_has_its_track_and_the_tracks_are_sound() {
	let pallets_origin = |o: RuntimeOrigin| o.caller().clone();
	for preset in [sp_genesis_builder::DEV_RUNTIME_PRESET, crate::genesis_config_presets::TESTNET_TEMPLATE_PRESET] {
		ext_from_preset(preset).execute_with(|| {
			assert_ok!(TracksInfo::check_integrity());
			assert_eq!(TracksInfo::track_for(&pallets_origin(RuntimeOrigin::root())), Ok(track::ROOT));
			assert_eq!(TracksInfo::track_for(&pallets_origin(origin(Origin::ParametersAdmin))), Ok(track::PARAMETERS));
			assert_eq!(TracksInfo::track_for(&pallets_origin(origin(Origin::Treasurer))), Ok(track::TREASURER));
			assert_eq!(TracksInfo::track_for(&pallets_origin(origin(Origin::DisputeResolver))), Ok(track::DISPUTES));
			assert_eq!(TracksInfo::track_for(&pallets_origin(origin(Origin::ValidatorAdmin))), Ok(track::VALIDATORS));
			assert_eq!(TracksInfo::track_for(&pallets_origin(origin(Origin::ReferendumCanceller))), Ok(track::CANCELLER));
			assert_eq!(TracksInfo::track_for(&pallets_origin(origin(Origin::ReferendumKiller))), Ok(track::KILLER));
			let signed = RuntimeOrigin::signed(Sr25519Keyring::Alice.to_account_id());
			assert_eq!(TracksInfo::track_for(&pallets_origin(signed)), Err(()));
			assert_eq!(TracksInfo::track_for(&pallets_origin(RuntimeOrigin::none())), Err(()));
		});
	}
	// The same curves, but periods in blocks on test chains and in days elsewhere.
	let decision = |preset: &str| {
		ext_from_preset(preset).execute_with(|| TracksInfo::info(track::ROOT).expect("root track").decision_period)
	};
	assert_eq!(decision(sp_genesis_builder::DEV_RUNTIME_PRESET), 8);
	assert_eq!(decision(crate::genesis_config_presets::TESTNET_TEMPLATE_PRESET), 14 * crate::DAYS);
}

#[test]
fn each_origin_is_accepted_only_in_its_domain() {
	dev_ext().execute_with(|| {
		let split = RevenueSplit {
			owner: Perbill::zero(),
			data: Perbill::from_percent(20),
			worker: Perbill::from_percent(5),
			treasury: Perbill::from_percent(1),
		};
		let bob = Sr25519Keyring::Bob.to_account_id();
		for wrong in [Origin::DisputeResolver, Origin::Treasurer, Origin::ValidatorAdmin] {
			assert_noop!(Models::set_min_split(origin(wrong), split), DispatchError::BadOrigin);
		}
		assert_noop!(
			Models::set_min_split(RuntimeOrigin::signed(bob.clone()), split),
			DispatchError::BadOrigin
		);
		assert_ok!(Models::set_min_split(origin(Origin::ParametersAdmin), split));
		assert_eq!(pallet_models::MinSplit::<Runtime>::get(), split);

		// A direct slash is root's alone (the disputes track slashes through verdicts only).
		for wrong in [Origin::ParametersAdmin, Origin::Treasurer, Origin::ValidatorAdmin, Origin::DisputeResolver] {
			assert_noop!(
				crate::OpenStaking::slash(origin(wrong), bob.clone(), Perbill::from_percent(1)),
				DispatchError::BadOrigin
			);
		}
		for wrong in [Origin::ParametersAdmin, Origin::Treasurer, Origin::DisputeResolver, Origin::ReferendumCanceller] {
			assert_noop!(ValidatorSet::add_validator(origin(wrong), bob.clone()), DispatchError::BadOrigin);
		}
		for wrong in [Origin::ParametersAdmin, Origin::Treasurer, Origin::ValidatorAdmin, Origin::ReferendumKiller] {
			assert_noop!(
				crate::Attribution::resolve_challenge(origin(wrong), [7u8; 32].into(), pallet_attribution::Verdict::Valid),
				DispatchError::BadOrigin
			);
		}
		// The disputes track reaches the verdict call (which then finds no such challenge).
		assert_noop!(
			crate::Attribution::resolve_challenge(origin(Origin::DisputeResolver), [7u8; 32].into(), pallet_attribution::Verdict::Valid),
			pallet_attribution::Error::<Runtime>::UnknownReceipt
		);
		assert_noop!(
			crate::OpenStaking::set_unbonding_period(origin(Origin::DisputeResolver), 100 * crate::DAYS),
			DispatchError::BadOrigin
		);
		// Bob has no session keys on the dev chain yet.
		assert_noop!(
			ValidatorSet::add_validator(origin(Origin::ValidatorAdmin), bob.clone()),
			pallet_validator_set::Error::<Runtime>::NoSessionKeys
		);

		// The treasurer track spends up to its limit, root without.
		let spend = |o: RuntimeOrigin, amount: u128| Treasury::spend(o, Box::new(()), amount, Box::new(bob.clone()), None);
		assert_ok!(spend(origin(Origin::Treasurer), MAX_TREASURER_SPEND));
		assert_noop!(
			spend(origin(Origin::Treasurer), MAX_TREASURER_SPEND + 1),
			pallet_treasury::Error::<Runtime>::InsufficientPermission
		);
		assert_noop!(spend(origin(Origin::ParametersAdmin), OPEN), DispatchError::BadOrigin);
		assert_ok!(spend(RuntimeOrigin::root(), 10 * MAX_TREASURER_SPEND));
		// Paid out by anyone; a spend of the whole treasury fails rather than reaping it.
		let treasury = crate::configs::TreasuryAccount::get();
		let before = crate::Balances::free_balance(&treasury);
		assert_ok!(Treasury::payout(RuntimeOrigin::signed(bob.clone()), 0));
		assert_eq!(crate::Balances::free_balance(&treasury), before - MAX_TREASURER_SPEND);
		assert_ok!(spend(RuntimeOrigin::root(), before - MAX_TREASURER_SPEND));
		assert_noop!(
			Treasury::payout(RuntimeOrigin::signed(bob.clone()), 2),
			pallet_treasury::Error::<Runtime>::PayoutError
		);
		assert_eq!(crate::Balances::free_balance(&treasury), before - MAX_TREASURER_SPEND);
	});
}

#[test]
fn parameters_are_set_by_their_origin_and_read_within_bounds() {
	use dynamic_params::staking::{MinWorkerBond, Parameters as Staking};
	let set = |o: RuntimeOrigin, value: u128| {
		Parameters::set_parameter(o, crate::configs::governance::RuntimeParameters::Staking(Staking::MinWorkerBond(MinWorkerBond, Some(value))))
	};
	dev_ext().execute_with(|| {
		let bond = || <<Runtime as pallet_open_staking::Config>::MinWorkerBond as Get<u128>>::get();
		assert_eq!(bond(), 1_000 * OPEN);
		let alice = RuntimeOrigin::signed(Sr25519Keyring::Alice.to_account_id());
		assert_noop!(set(alice, 5 * OPEN), DispatchError::BadOrigin);
		assert_noop!(set(origin(Origin::DisputeResolver), 5 * OPEN), DispatchError::BadOrigin);
		assert_ok!(set(origin(Origin::ParametersAdmin), 5_000 * OPEN));
		assert_eq!(bond(), 5_000 * OPEN);
		// A zero bond would make every account a worker: it reads as the floor, 1 OPEN.
		assert_ok!(set(RuntimeOrigin::root(), 0));
		assert_eq!(bond(), OPEN);
		assert_ok!(set(RuntimeOrigin::root(), u128::MAX));
		assert_eq!(bond(), 10_000_000 * OPEN);
	});
}

#[test]
fn the_dispute_bond_is_governable_within_its_clamp() {
	use dynamic_params::attribution::{DisputeBond, Parameters as Attribution};
	let set = |o: RuntimeOrigin, value: u128| {
		Parameters::set_parameter(o, crate::configs::governance::RuntimeParameters::Attribution(Attribution::DisputeBond(DisputeBond, Some(value))))
	};
	dev_ext().execute_with(|| {
		let bond = || <<Runtime as pallet_attribution::Config>::DisputeBond as Get<u128>>::get();
		assert_eq!(bond(), 100 * OPEN, "the bond every dispute held before spec 107");
		assert_eq!(bond(), crate::configs::attribution::DisputeBondBeforeV2::get());
		assert_noop!(set(origin(Origin::DisputeResolver), 5 * OPEN), DispatchError::BadOrigin);
		assert_ok!(set(origin(Origin::ParametersAdmin), 250 * OPEN));
		assert_eq!(bond(), 250 * OPEN);
		// A free dispute would let anyone freeze a worker's stake for nothing: the floor is 1 OPEN.
		assert_ok!(set(RuntimeOrigin::root(), 0));
		assert_eq!(bond(), OPEN);
		assert_ok!(set(RuntimeOrigin::root(), u128::MAX));
		assert_eq!(bond(), 100_000 * OPEN);
	});
}

/// Runs blocks up to `to`, returning the block number reached.
fn run_to(to: u32) {
	let mut n = System::block_number();
	while n < to {
		n += 1;
		start_block(n);
	}
}

/// Runs blocks until referendum `index` is decided (at most `max` blocks); returns the block.
fn run_until_decided(index: u32, max: u32) -> u32 {
	let until = System::block_number() + max;
	while matches!(pallet_referenda::ReferendumInfoFor::<Runtime>::get(index), Some(ReferendumInfo::Ongoing(_))) {
		assert!(System::block_number() < until, "referendum {index} undecided after {max} blocks");
		run_to(System::block_number() + 1);
	}
	System::block_number()
}

fn vote(who: &AccountId, index: u32, aye: bool, conviction: Conviction) {
	let balance = crate::Balances::free_balance(who) / 2;
	assert_ok!(crate::ConvictionVoting::vote(
		RuntimeOrigin::signed(who.clone()),
		index,
		AccountVote::Standard { vote: Vote { aye, conviction }, balance }
	));
}

/// Submits `call` on the parameters track with its decision deposit; returns its index.
fn propose(call: RuntimeCall) -> u32 {
	let alice = Sr25519Keyring::Alice.to_account_id();
	let index = pallet_referenda::ReferendumCount::<Runtime>::get();
	let bounded = Preimage::bound(call).expect("small call");
	assert_ok!(Referenda::submit(
		RuntimeOrigin::signed(alice.clone()),
		Box::new(OriginCaller::Origins(Origin::ParametersAdmin)),
		bounded,
		DispatchTime::After(1)
	));
	assert_ok!(Referenda::place_decision_deposit(RuntimeOrigin::signed(alice), index));
	index
}

#[test]
fn a_referendum_with_enough_ayes_changes_the_minimum_split_and_one_without_changes_nothing() {
	dev_ext().execute_with(|| {
		let before = pallet_models::MinSplit::<Runtime>::get();
		let wanted = RevenueSplit {
			owner: Perbill::zero(),
			data: Perbill::from_percent(25),
			worker: Perbill::from_percent(5),
			treasury: Perbill::from_percent(2),
		};
		let refused = RevenueSplit { data: Perbill::from_percent(29), ..wanted };
		let passing = propose(RuntimeCall::Models(pallet_models::Call::set_min_split { min: wanted }));
		let failing = propose(RuntimeCall::Models(pallet_models::Call::set_min_split { min: refused }));
		let voters = dev_accounts();
		for (i, who) in voters.iter().take(6).enumerate() {
			let conviction = if i % 2 == 0 { Conviction::Locked3x } else { Conviction::Locked1x };
			vote(who, passing, true, conviction);
			// Two of six for the other one: 1/3 approval never reaches the 50 % floor.
			vote(who, failing, i < 2, conviction);
		}
		// Support (aye OPEN without conviction: 5 % of the issuance) meets the falling curve
		// (25 % to 0.5 % over 8 blocks) after about 7 blocks of deciding.
		let decided_at = run_until_decided(passing, 20);
		assert!(matches!(pallet_referenda::ReferendumInfoFor::<Runtime>::get(passing), Some(ReferendumInfo::Approved(..))));
		assert!(decided_at >= 7, "decided at block {decided_at}: support cannot pass that early");
		// Enacted one block after approval.
		run_to(System::block_number() + 3);
		assert_eq!(pallet_models::MinSplit::<Runtime>::get(), wanted);
		assert_ne!(before, wanted);
		// The other one runs out its decision period and is rejected; the split stays.
		run_until_decided(failing, 20);
		assert!(matches!(pallet_referenda::ReferendumInfoFor::<Runtime>::get(failing), Some(ReferendumInfo::Rejected(..))));
		assert_eq!(pallet_models::MinSplit::<Runtime>::get(), wanted);
		// Deposits: both submission deposits and both decision deposits are still reserved
		// (refunds are claimed by call), and the invariants account for every one of them.
		let alice = Sr25519Keyring::Alice.to_account_id();
		let deposits = 2 * crate::configs::governance::SubmissionDeposit::get() + 2 * 10_000 * OPEN;
		assert_eq!(crate::Balances::reserved_balance(&alice), deposits);
		assert_ok!(invariants::check());
		// Reclaiming the passing one's decision deposit keeps them equal.
		assert_ok!(Referenda::refund_decision_deposit(RuntimeOrigin::signed(alice.clone()), passing));
		assert_eq!(crate::Balances::reserved_balance(&alice), deposits - 10_000 * OPEN);
		assert_ok!(invariants::check());
		// OPEN reserved without a deposit on record is caught.
		use frame_support::traits::ReservableCurrency;
		assert_ok!(<crate::Balances as ReservableCurrency<AccountId>>::reserve(&alice, OPEN));
		assert_eq!(invariants::check(), Err("reserved OPEN differs from the account's referendum deposits"));
	});
}
