use sp_runtime::BuildStorage;
use crate::{mock::*, Error, Event, RemovalReason, Validators};
use frame_support::{assert_noop, assert_ok};
use pallet_session::SessionManager;
use sp_runtime::{DispatchError, Perbill};
use sp_staking::offence::{OffenceDetails, OnOffenceHandler};

fn set() -> Vec<u64> {
	Validators::<Test>::get().into_inner()
}

fn offence(who: u64) -> OffenceDetails<u64, (u64, ())> {
	OffenceDetails { offender: (who, ()), reporters: vec![9] }
}

fn checked() {
	ValidatorSet::do_try_state().expect("invariants hold");
}

#[test]
fn genesis_hands_the_set_to_the_first_session() {
	new_test_ext().execute_with(|| {
		assert_eq!(<ValidatorSet as SessionManager<u64>>::new_session_genesis(0), Some(vec![1, 2, 3]));
		// Every session gets the whole set (members whose keys changed are picked up).
		assert_eq!(<ValidatorSet as SessionManager<u64>>::new_session(1), Some(vec![1, 2, 3]));
	});
}

#[test]
fn only_the_manager_origin_changes_the_set() {
	new_test_ext().execute_with(|| {
		assert_noop!(ValidatorSet::add_validator(RuntimeOrigin::signed(1), 4), DispatchError::BadOrigin);
		assert_noop!(ValidatorSet::remove_validator(RuntimeOrigin::signed(1), 3), DispatchError::BadOrigin);
		assert_eq!(set(), vec![1, 2, 3]);
	});
}

#[test]
fn an_added_validator_is_handed_over_at_the_next_session_once() {
	new_test_ext().execute_with(|| {
		assert_ok!(ValidatorSet::add_validator(RuntimeOrigin::root(), 4));
		System::assert_last_event(Event::ValidatorAdded { who: 4 }.into());
		assert_eq!(set(), vec![1, 2, 3, 4]);
		assert_eq!(<ValidatorSet as SessionManager<u64>>::new_session(1), Some(vec![1, 2, 3, 4]));
		checked();
	});
}

#[test]
fn duplicates_and_overflow_are_refused() {
	new_test_ext().execute_with(|| {
		assert_noop!(ValidatorSet::add_validator(RuntimeOrigin::root(), 2), Error::<Test>::AlreadyValidator);
		assert_ok!(ValidatorSet::add_validator(RuntimeOrigin::root(), 4));
		assert_noop!(ValidatorSet::add_validator(RuntimeOrigin::root(), 5), Error::<Test>::TooManyValidators);
		assert_eq!(set().len() as u32, MAX);
		checked();
	});
}

#[test]
fn removal_stops_at_the_minimum() {
	new_test_ext().execute_with(|| {
		assert_noop!(ValidatorSet::remove_validator(RuntimeOrigin::root(), 7), Error::<Test>::NotValidator);
		assert_ok!(ValidatorSet::remove_validator(RuntimeOrigin::root(), 2));
		System::assert_last_event(Event::ValidatorRemoved { who: 2, reason: RemovalReason::Governance }.into());
		assert_eq!(set(), vec![1, 3]);
		assert_noop!(ValidatorSet::remove_validator(RuntimeOrigin::root(), 1), Error::<Test>::TooFewValidators);
		assert_eq!(<ValidatorSet as SessionManager<u64>>::new_session(1), Some(vec![1, 3]));
		checked();
	});
}

#[test]
fn offenders_are_removed_down_to_the_minimum() {
	new_test_ext().execute_with(|| {
		// 9 is not a validator (already removed, say): nothing happens to the set for it.
		let weight = <ValidatorSet as OnOffenceHandler<u64, (u64, ()), _>>::on_offence(
			&[offence(3), offence(9), offence(1)],
			&[Perbill::zero(); 3],
			0,
		);
		// Each offender: the set and each member's keys read (MAX + 2 at most), one write.
		assert_eq!(weight, <<Test as frame_system::Config>::DbWeight as frame_support::traits::Get<frame_support::weights::RuntimeDbWeight>>::get().reads_writes(3 * (MAX as u64 + 2), 3));
		// 3 goes; 1 stays because only two are left.
		assert_eq!(set(), vec![1, 2]);
		let events: Vec<_> = System::events().into_iter().map(|r| r.event).collect();
		assert_eq!(
			events,
			vec![
				Event::ValidatorRemoved { who: 3, reason: RemovalReason::Offence }.into(),
				Event::OffenderKept { who: 1 }.into(),
			]
		);
		assert_eq!(<ValidatorSet as SessionManager<u64>>::new_session(1), Some(vec![1, 2]));
		checked();
	});
}

#[test]
fn historical_manager_reports_the_same_set() {
	new_test_ext().execute_with(|| {
		use pallet_session::historical::SessionManager as Historical;
		assert_eq!(<ValidatorSet as Historical<u64, ()>>::new_session(1), Some(vec![(1, ()), (2, ()), (3, ())]));
		assert_ok!(ValidatorSet::add_validator(RuntimeOrigin::root(), 4));
		assert_eq!(<ValidatorSet as Historical<u64, ()>>::new_session(2), Some(vec![(1, ()), (2, ()), (3, ()), (4, ())]));
	});
}

#[test]
#[should_panic(expected = "listed twice")]
fn genesis_refuses_duplicates() {
	let mut t = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	crate::GenesisConfig::<Test> { validators: vec![1, 1, 2] }.assimilate_storage(&mut t).unwrap();
}

#[test]
#[should_panic(expected = "fewer genesis validators")]
fn genesis_refuses_fewer_than_the_minimum() {
	let mut t = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	crate::GenesisConfig::<Test> { validators: vec![1] }.assimilate_storage(&mut t).unwrap();
}

#[test]
fn try_state_catches_a_short_or_duplicated_set() {
	new_test_ext().execute_with(|| {
		Validators::<Test>::put(frame_support::BoundedVec::truncate_from(vec![1, 2, 1]));
		assert!(ValidatorSet::do_try_state().is_err());
		Validators::<Test>::put(frame_support::BoundedVec::truncate_from(vec![1]));
		assert!(ValidatorSet::do_try_state().is_err());
	});
}

#[test]
fn only_an_account_with_session_keys_joins() {
	new_test_ext().execute_with(|| {
		assert_noop!(ValidatorSet::add_validator(RuntimeOrigin::root(), 8), Error::<Test>::NoSessionKeys);
		assert_eq!(set(), vec![1, 2, 3]);
	});
}

#[test]
fn removals_keep_enough_members_with_keys() {
	new_test_ext().execute_with(|| {
		// 3 purged its keys: of 1, 2 and 3 only two have keys, the minimum.
		purge_keys(3);
		assert_noop!(ValidatorSet::remove_validator(RuntimeOrigin::root(), 1), Error::<Test>::TooFewValidators);
		// Removing the keyless one leaves both keyed members.
		assert_ok!(ValidatorSet::remove_validator(RuntimeOrigin::root(), 3));
		assert_eq!(set(), vec![1, 2]);
		// An offence cannot take the last two keyed members either.
		<ValidatorSet as OnOffenceHandler<u64, (u64, ()), _>>::on_offence(&[offence(2)], &[Perbill::zero()], 0);
		assert_eq!(set(), vec![1, 2]);
		System::assert_last_event(Event::OffenderKept { who: 2 }.into());
	});
}
