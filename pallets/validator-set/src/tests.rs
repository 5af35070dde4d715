use sp_runtime::BuildStorage;
use crate::{mock::*, Error, Event, RemovalReason, SetChanged, Validators};
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
		// Unchanged since: the next session keeps the set it has.
		assert_eq!(<ValidatorSet as SessionManager<u64>>::new_session(1), None);
	});
}

#[test]
fn only_the_manager_origin_changes_the_set() {
	new_test_ext().execute_with(|| {
		assert_noop!(ValidatorSet::add_validator(RuntimeOrigin::signed(1), 4), DispatchError::BadOrigin);
		assert_noop!(ValidatorSet::remove_validator(RuntimeOrigin::signed(1), 3), DispatchError::BadOrigin);
		assert_eq!(set(), vec![1, 2, 3]);
		assert!(!SetChanged::<Test>::get());
	});
}

#[test]
fn an_added_validator_is_handed_over_at_the_next_session_once() {
	new_test_ext().execute_with(|| {
		assert_ok!(ValidatorSet::add_validator(RuntimeOrigin::root(), 4));
		System::assert_last_event(Event::ValidatorAdded { who: 4 }.into());
		assert_eq!(set(), vec![1, 2, 3, 4]);
		assert_eq!(<ValidatorSet as SessionManager<u64>>::new_session(1), Some(vec![1, 2, 3, 4]));
		assert_eq!(<ValidatorSet as SessionManager<u64>>::new_session(2), None);
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
		// One read and up to two writes per offender.
		use frame_support::traits::Get;
		assert_eq!(weight, <Test as frame_system::Config>::DbWeight::get().reads_writes(3, 6));
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
		assert_eq!(<ValidatorSet as Historical<u64, ()>>::new_session(1), None);
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
