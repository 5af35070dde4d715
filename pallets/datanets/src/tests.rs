//! Unit tests: every call, every error path, deposit accounting and Merkle proofs.

use crate::{
	merkle, mock::*, ContentIndex, ContributionId, ContributionStatus, Contributions, CurationMode,
	DatanetId, DatanetOf, DatanetStatus, DepositPolicy, Event, HoldReason, Leaf, Leaves,
	NextContributionId, NextDatanetId, Snapshots,
};
use crate::weights::WeightInfo;

/// `e` refused after `reads` storage reads, before any write: charged for those reads only.
fn refused(e: crate::Error<Test>, reads: u64) -> frame_support::dispatch::DispatchErrorWithPostInfo {
	let w = <<Test as frame_system::Config>::DbWeight as frame_support::traits::Get<frame_support::weights::RuntimeDbWeight>>::get();
	DispatchError::from(e).with_weight(w.reads(reads))
}
use codec::Encode;
use frame_support::{
	assert_noop, assert_ok,
	dispatch::WithPostDispatchInfo,
	traits::fungible::{Inspect, InspectHold},
};
use sp_core::H256;
use sp_runtime::{DispatchError, TokenError};

type Error = crate::Error<Test>;

fn signed(who: AccountId) -> RuntimeOrigin {
	RuntimeOrigin::signed(who)
}

fn policy() -> DepositPolicy<Balance> {
	DepositPolicy { base: MIN_BASE, per_byte: MIN_PER_BYTE }
}

fn create(owner: AccountId, curation: CurationMode) -> DatanetId {
	let id = NextDatanetId::<Test>::get();
	assert_ok!(Datanets::create_datanet(signed(owner), b"medical-qa".to_vec(), b"ipfs://meta".to_vec(), b"CC-BY-4.0".to_vec(), curation, policy()));
	id
}

fn info(d: DatanetId) -> DatanetOf<Test> {
	crate::Datanets::<Test>::get(d).expect("datanet exists")
}

fn h(i: u8) -> H256 {
	H256::repeat_byte(i)
}

fn contribute(who: AccountId, d: DatanetId, i: u8) -> ContributionId {
	let id = NextContributionId::<Test>::get();
	assert_ok!(Datanets::contribute(signed(who), d, h(i), 100, 25, b"store://x".to_vec(), None, None));
	id
}

fn held(who: AccountId, reason: HoldReason) -> Balance {
	Balances::balance_on_hold(&RuntimeHoldReason::Datanets(reason), &who)
}

fn last_event() -> RuntimeEvent {
	System::events().pop().expect("an event").event
}

fn has_event(e: Event<Test>) -> bool {
	System::events().iter().any(|r| r.event == RuntimeEvent::Datanets(e.clone()))
}

/// Invariants and conservation, run at the end of every test.
fn check() {
	assert_ok!(Datanets::do_try_state());
	let sum: Balance = [ALICE, BOB, CHARLIE, DAVE, POOR, TREASURY]
		.iter()
		.map(|w| Balances::total_balance(w))
		.sum();
	assert_eq!(sum, Balances::total_issuance(), "OPEN is neither created nor destroyed");
}

// ---- create / metadata / curators / archive -------------------------------------------------

#[test]
fn create_datanet_holds_deposit_and_emits_event() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Curated);
		assert_eq!(d, 0);
		let info = info(0);
		assert_eq!(info.owner, ALICE);
		assert_eq!(info.name.to_vec(), b"medical-qa".to_vec());
		assert_eq!(info.status, DatanetStatus::Active);
		assert_eq!(held(ALICE, HoldReason::DatanetDeposit), DATANET_DEPOSIT);
		assert_eq!(last_event(), RuntimeEvent::Datanets(Event::DatanetCreated { datanet: 0, owner: ALICE, curation: CurationMode::Curated, deposit: DATANET_DEPOSIT }));
		assert_eq!(create(BOB, CurationMode::Open), 1);
		check();
	});
}

#[test]
fn create_datanet_rejects_bad_input() {
	new_test_ext().execute_with(|| {
		let long = |n: usize| vec![b'a'; n];
		let mk = |name: Vec<u8>, uri: Vec<u8>, lic: Vec<u8>, p: DepositPolicy<Balance>| {
			Datanets::create_datanet(signed(ALICE), name, uri, lic, CurationMode::Open, p)
		};
		assert_noop!(mk(vec![], vec![], vec![], policy()), Error::EmptyName);
		assert_noop!(mk(long(33), vec![], vec![], policy()), Error::TooLong);
		assert_noop!(mk(long(1), long(65), vec![], policy()), Error::TooLong);
		assert_noop!(mk(long(1), vec![], long(17), policy()), Error::TooLong);
		assert_noop!(mk(long(1), vec![], vec![], DepositPolicy { base: MIN_BASE - 1, per_byte: MIN_PER_BYTE }), Error::DepositBelowMinimum);
		assert_noop!(mk(long(1), vec![], vec![], DepositPolicy { base: MIN_BASE, per_byte: 0 }), Error::DepositBelowMinimum);
		assert_noop!(
			Datanets::create_datanet(signed(POOR), long(1), vec![], vec![], CurationMode::Open, policy()),
			TokenError::FundsUnavailable
		);
		assert_eq!(NextDatanetId::<Test>::get(), 0);
		check();
	});
}

#[test]
fn update_metadata_by_owner_only() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Open);
		assert_noop!(Datanets::update_metadata(signed(BOB), d, Some(b"x".to_vec()), None, None), Error::NotOwner);
		assert_noop!(Datanets::update_metadata(signed(ALICE), 9, None, None, None), Error::UnknownDatanet);
		assert_noop!(Datanets::update_metadata(signed(ALICE), d, Some(vec![]), None, None), Error::EmptyName);
		assert_noop!(Datanets::update_metadata(signed(ALICE), d, None, Some(vec![0; 65]), None), Error::TooLong);
		assert_ok!(Datanets::update_metadata(signed(ALICE), d, None, Some(b"ipfs://v2".to_vec()), Some(b"MIT".to_vec())));
		let info = info(d);
		assert_eq!(info.name.to_vec(), b"medical-qa".to_vec(), "None keeps the field");
		assert_eq!(info.metadata_uri.to_vec(), b"ipfs://v2".to_vec());
		assert_eq!(info.license.to_vec(), b"MIT".to_vec());
		assert_eq!(last_event(), RuntimeEvent::Datanets(Event::MetadataUpdated { datanet: d }));
		check();
	});
}

#[test]
fn curators_are_managed_by_the_owner_and_bounded() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Curated);
		assert_noop!(Datanets::add_curator(signed(BOB), d, CHARLIE), Error::NotOwner);
		assert_noop!(Datanets::add_curator(signed(ALICE), 7, CHARLIE), Error::UnknownDatanet);
		assert_ok!(Datanets::add_curator(signed(ALICE), d, CHARLIE));
		assert!(has_event(Event::CuratorAdded { datanet: d, curator: CHARLIE }));
		assert_noop!(Datanets::add_curator(signed(ALICE), d, CHARLIE), Error::AlreadyCurator);
		assert_ok!(Datanets::add_curator(signed(ALICE), d, DAVE));
		assert_ok!(Datanets::add_curator(signed(ALICE), d, BOB));
		assert_noop!(Datanets::add_curator(signed(ALICE), d, 77), Error::TooManyCurators);
		assert_noop!(Datanets::remove_curator(signed(BOB), d, DAVE), Error::NotOwner);
		assert_ok!(Datanets::remove_curator(signed(ALICE), d, DAVE));
		assert!(has_event(Event::CuratorRemoved { datanet: d, curator: DAVE }));
		assert_noop!(Datanets::remove_curator(signed(ALICE), d, DAVE), Error::UnknownCurator);
		assert_eq!(info(d).curator_count, 2);
		check();
	});
}

#[test]
fn archived_datanet_takes_no_contributions() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Curated);
		let pending = contribute(BOB, d, 1);
		assert_noop!(Datanets::archive(signed(BOB), d), Error::NotOwner);
		assert_ok!(Datanets::archive(signed(ALICE), d));
		assert_eq!(last_event(), RuntimeEvent::Datanets(Event::DatanetArchived { datanet: d }));
		assert_noop!(Datanets::archive(signed(ALICE), d), Error::Archived);
		assert_noop!(
			Datanets::contribute(signed(BOB), d, h(2), 1, 1, b"u".to_vec(), None, None),
			refused(Error::Archived, 1)
		);
		// Pending work can still be finished.
		assert_ok!(Datanets::accept(signed(ALICE), pending));
		assert_ok!(Datanets::snapshot(signed(ALICE), d));
		check();
	});
}

// ---- contribute ------------------------------------------------------------------------------

#[test]
fn open_datanet_accepts_at_once_and_holds_the_computed_deposit() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Open);
		let free0 = Balances::balance(&BOB);
		let c = contribute(BOB, d, 1);
		let record = Contributions::<Test>::get(c).unwrap();
		assert_eq!(record.status, ContributionStatus::Accepted { leaf: 0 });
		let expected = MIN_BASE + MIN_PER_BYTE * record.encoded_size() as Balance;
		assert_eq!(record.deposit, expected);
		assert_eq!(held(BOB, HoldReason::ContributionDeposit), expected);
		assert_eq!(Balances::balance(&BOB), free0 - expected);
		assert!(has_event(Event::Contributed { datanet: d, contribution: c, contributor: BOB, content_hash: h(1), deposit: expected }));
		assert!(has_event(Event::Accepted { datanet: d, contribution: c, leaf: 0 }));
		let dn = info(d);
		assert_eq!((dn.leaf_count, dn.pending_count, dn.accepted_bytes, dn.accepted_tokens), (1, 0, 100, 25));
		check();
	});
}

#[test]
fn deposit_grows_with_the_record() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Open);
		let small = contribute(BOB, d, 1);
		assert_ok!(Datanets::contribute(signed(BOB), d, h(2), 100, 25, vec![b'u'; 64], Some(b"MIT".to_vec()), Some(vec![b'{'; 64])));
		let (s, b) = (Contributions::<Test>::get(small).unwrap(), Contributions::<Test>::get(small + 1).unwrap());
		assert!(b.encoded_size() > s.encoded_size() + 100);
		assert_eq!(b.deposit - s.deposit, MIN_PER_BYTE * (b.encoded_size() - s.encoded_size()) as Balance);
		check();
	});
}

#[test]
fn duplicate_content_is_refused_and_the_first_contributor_keeps_it() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Open);
		let c = contribute(BOB, d, 1);
		assert_noop!(
			Datanets::contribute(signed(CHARLIE), d, h(1), 100, 25, b"store://y".to_vec(), None, None),
			refused(Error::DuplicateContent, 2)
		);
		assert_noop!(
			Datanets::contribute(signed(BOB), d, h(1), 100, 25, b"store://y".to_vec(), None, None),
			refused(Error::DuplicateContent, 2)
		);
		assert_eq!(ContentIndex::<Test>::get(d, h(1)), Some(c));
		assert_eq!(Contributions::<Test>::get(c).unwrap().contributor, BOB);
		// The same content in another Datanet is a different contribution.
		let other = create(ALICE, CurationMode::Open);
		contribute(CHARLIE, other, 1);
		check();
	});
}

#[test]
fn contribute_rejects_bad_input_and_changes_nothing() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Open);
		let c = |hash, size, tokens, uri: Vec<u8>, lic: Option<Vec<u8>>, meta: Option<Vec<u8>>| {
			Datanets::contribute(signed(BOB), d, hash, size, tokens, uri, lic, meta)
		};
		assert_noop!(Datanets::contribute(signed(BOB), 5, h(1), 1, 1, b"u".to_vec(), None, None), refused(Error::UnknownDatanet, 1));
		// Those refusals are charged well below the call's declared weight.
		let most = refused(Error::Overflow, 3).post_info.actual_weight.unwrap();
		assert!(most.all_lt(<() as WeightInfo>::contribute()), "{most:?}");
		assert_noop!(c(h(1), 0, 1, b"u".to_vec(), None, None), refused(Error::EmptyContent, 1));
		assert_noop!(c(h(1), 1, 0, b"u".to_vec(), None, None), refused(Error::EmptyContent, 1));
		assert_noop!(c(h(1), 1, 1, vec![], None, None), refused(Error::EmptyUri, 1));
		assert_noop!(c(h(1), 1, 1, vec![1; 65], None, None), refused(Error::TooLong, 1));
		assert_noop!(c(h(1), 1, 1, b"u".to_vec(), Some(vec![1; 17]), None), refused(Error::TooLong, 1));
		assert_noop!(c(h(1), 1, 1, b"u".to_vec(), None, Some(vec![1; 65])), refused(Error::TooLong, 1));
		assert_noop!(
			Datanets::contribute(signed(POOR), d, h(1), 1, 1, vec![b'u'; 64], None, None),
			TokenError::FundsUnavailable
		);
		check();
	});
}

#[test]
fn accepted_and_pending_lists_are_bounded() {
	new_test_ext().execute_with(|| {
		let open = create(ALICE, CurationMode::Open);
		for i in 0..16 {
			contribute(BOB, open, i);
		}
		assert_noop!(
			Datanets::contribute(signed(BOB), open, h(200), 1, 1, b"u".to_vec(), None, None),
			refused(Error::TooManyLeaves, 2)
		);
		let curated = create(ALICE, CurationMode::Curated);
		for i in 0..8 {
			contribute(BOB, curated, i);
		}
		assert_noop!(
			Datanets::contribute(signed(BOB), curated, h(200), 1, 1, b"u".to_vec(), None, None),
			refused(Error::TooManyPending, 2)
		);
		check();
	});
}

// ---- curation --------------------------------------------------------------------------------

#[test]
fn curator_accepts_pending_contribution() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Curated);
		assert_ok!(Datanets::add_curator(signed(ALICE), d, CHARLIE));
		let c = contribute(BOB, d, 1);
		assert_eq!(Contributions::<Test>::get(c).unwrap().status, ContributionStatus::Pending);
		assert_eq!(info(d).pending_count, 1);
		assert_noop!(Datanets::accept(signed(DAVE), c), refused(Error::NotCurator, 3));
		assert_noop!(Datanets::accept(signed(BOB), c), refused(Error::NotCurator, 3));
		assert_noop!(Datanets::accept(signed(CHARLIE), 99), refused(Error::UnknownContribution, 1));
		assert_ok!(Datanets::accept(signed(CHARLIE), c));
		assert_eq!(last_event(), RuntimeEvent::Datanets(Event::Accepted { datanet: d, contribution: c, leaf: 0 }));
		assert_eq!(Contributions::<Test>::get(c).unwrap().status, ContributionStatus::Accepted { leaf: 0 });
		assert_noop!(Datanets::accept(signed(CHARLIE), c), refused(Error::NotPending, 3));
		assert_noop!(Datanets::reject(signed(CHARLIE), c, 1), refused(Error::NotPending, 3));
		// The owner curates too.
		let c2 = contribute(BOB, d, 2);
		assert_ok!(Datanets::accept(signed(ALICE), c2));
		assert_eq!(info(d).pending_count, 0);
		check();
	});
}

#[test]
fn rejection_forfeits_part_of_the_deposit_to_the_treasury() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Curated);
		assert_ok!(Datanets::add_curator(signed(ALICE), d, CHARLIE));
		let c = contribute(BOB, d, 1);
		let deposit = Contributions::<Test>::get(c).unwrap().deposit;
		let (bob0, treasury0) = (Balances::total_balance(&BOB), Balances::total_balance(&TREASURY));
		assert_noop!(Datanets::reject(signed(DAVE), c, 3), refused(Error::NotCurator, 3));
		assert_ok!(Datanets::reject(signed(CHARLIE), c, 3));
		let forfeited = deposit / 5;
		assert_eq!(last_event(), RuntimeEvent::Datanets(Event::Rejected { datanet: d, contribution: c, reason: 3, forfeited, released: deposit - forfeited }));
		assert_eq!(Balances::total_balance(&BOB), bob0 - forfeited);
		assert_eq!(Balances::total_balance(&TREASURY), treasury0 + forfeited);
		assert_eq!(held(BOB, HoldReason::ContributionDeposit), 0);
		assert!(Contributions::<Test>::get(c).is_none());
		assert_eq!(info(d).pending_count, 0);
		// The content hash is free again.
		contribute(DAVE, d, 1);
		check();
	});
}

// ---- withdraw --------------------------------------------------------------------------------

#[test]
fn withdraw_pending_releases_the_whole_deposit() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Curated);
		let c = contribute(BOB, d, 1);
		let bob0 = Balances::total_balance(&BOB);
		assert_noop!(Datanets::withdraw(signed(CHARLIE), c), refused(Error::NotContributor, 1));
		assert_noop!(Datanets::withdraw(signed(BOB), 42), refused(Error::UnknownContribution, 1));
		let deposit = Contributions::<Test>::get(c).unwrap().deposit;
		assert_ok!(Datanets::withdraw(signed(BOB), c));
		assert_eq!(last_event(), RuntimeEvent::Datanets(Event::Withdrawn { datanet: d, contribution: c, released: deposit }));
		assert_eq!(Balances::total_balance(&BOB), bob0);
		assert_eq!(Balances::balance(&BOB), START_BALANCE);
		assert_eq!(info(d).pending_count, 0);
		check();
	});
}

#[test]
fn withdraw_accepted_moves_the_last_leaf_until_a_snapshot_freezes_it() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Open);
		let a = contribute(BOB, d, 1);
		let b = contribute(CHARLIE, d, 2);
		let c = contribute(DAVE, d, 3);
		assert_ok!(Datanets::withdraw(signed(BOB), a));
		assert!(has_event(Event::LeafMoved { datanet: d, contribution: c, from: 2, to: 0 }));
		assert_eq!(Contributions::<Test>::get(c).unwrap().status, ContributionStatus::Accepted { leaf: 0 });
		assert_eq!(Leaves::<Test>::get(d, 0).unwrap().contribution, c);
		assert_eq!(info(d).leaf_count, 2);
		assert_eq!(info(d).accepted_bytes, 200);
		check();
		// Once frozen, leaves stay.
		assert_ok!(Datanets::snapshot(signed(ALICE), d));
		assert_noop!(Datanets::withdraw(signed(CHARLIE), b), refused(Error::InSnapshot, 2));
		// A later leaf, not yet frozen, can still go (it is the last: nothing moves).
		let e = contribute(BOB, d, 4);
		assert_ok!(Datanets::withdraw(signed(BOB), e));
		check();
	});
}

// ---- snapshots and proofs --------------------------------------------------------------------

#[test]
fn snapshot_of_an_empty_datanet_is_refused() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Curated);
		contribute(BOB, d, 1); // pending only
		// Refused before any leaf is read: charged for none, not for the largest Datanet.
		let early = |e: Error| DispatchError::from(e).with_weight(<() as WeightInfo>::snapshot(0));
		assert_noop!(Datanets::snapshot(signed(ALICE), d), early(Error::NothingToSnapshot));
		assert_noop!(Datanets::snapshot(signed(ALICE), 3), early(Error::UnknownDatanet));
		assert_noop!(Datanets::snapshot(signed(BOB), d), early(Error::NotCurator));
		assert!(<() as WeightInfo>::snapshot(0).all_lt(<() as WeightInfo>::snapshot(<<Test as crate::Config>::MaxLeaves as frame_support::traits::Get<u32>>::get())));
		check();
	});
}

#[test]
fn snapshot_freezes_versions_with_merkle_roots() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Open);
		assert_ok!(Datanets::add_curator(signed(ALICE), d, CHARLIE));
		let ids: Vec<_> = (1..=5).map(|i| contribute(BOB, d, i)).collect();
		assert_noop!(
			Datanets::snapshot(signed(DAVE), d),
			DispatchError::from(Error::NotCurator).with_weight(<() as WeightInfo>::snapshot(0))
		);
		assert_eq!(
			Datanets::snapshot(signed(CHARLIE), d).map(|i| i.actual_weight),
			Ok(Some(<() as WeightInfo>::snapshot(5))),
			"charged for the five leaves it froze"
		);
		let leaves: Vec<Leaf> = ids.iter().zip(1..).map(|(&c, i)| Leaf { contribution: c, content_hash: h(i) }).collect();
		let root = merkle::root(leaves.iter().copied());
		assert_eq!(last_event(), RuntimeEvent::Datanets(Event::SnapshotTaken { datanet: d, version: 1, root, leaf_count: 5 }));
		let s = Snapshots::<Test>::get(d, 1).unwrap();
		assert_eq!((s.root, s.leaf_count, s.total_bytes, s.total_tokens), (root, 5, 500, 125));
		// Refused after reading and hashing the five leaves: charged for them.
		assert_noop!(
			Datanets::snapshot(signed(ALICE), d),
			DispatchError::from(Error::NoChangeSinceSnapshot).with_weight(<() as WeightInfo>::snapshot(5))
		);

		contribute(DAVE, d, 6);
		assert_ok!(Datanets::snapshot(signed(ALICE), d));
		let d_info = info(d);
		assert_eq!((d_info.latest_snapshot, d_info.frozen_leaves), (2, 6));
		assert_ne!(Snapshots::<Test>::get(d, 2).unwrap().root, root);

		// Proofs of version 1 still verify against version 1's root after version 2.
		for i in 0..5 {
			let p = Datanets::snapshot_proof(d, 1, i).unwrap();
			assert_eq!(p.root, root);
			assert_eq!(p.leaf, leaves[i as usize]);
			assert!(merkle::verify(&root, &p));
		}
		assert!(Datanets::snapshot_proof(d, 1, 5).is_none());
		assert!(Datanets::snapshot_proof(d, 3, 0).is_none());
		let p = Datanets::snapshot_proof(d, 2, 5).unwrap();
		assert!(merkle::verify(&Snapshots::<Test>::get(d, 2).unwrap().root, &p));
		// A tampered proof does not verify.
		let mut bad = p.clone();
		bad.leaf.content_hash = h(99);
		assert!(!merkle::verify(&p.root, &bad));
		assert_eq!(Datanets::contribution_at(d, 1, 2).map(|(id, _)| id), Some(ids[2]));
		assert!(Datanets::contribution_at(d, 1, 5).is_none());
		check();
	});
}

#[test]
fn listings_page_through_datanet_and_account() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Curated);
		let mut all: Vec<_> = (0..7).map(|i| contribute(if i % 2 == 0 { BOB } else { CHARLIE }, d, i)).collect();
		let mut seen = Vec::new();
		let mut after = None;
		loop {
			let page = Datanets::contributions_of_datanet(d, after, 3);
			if page.is_empty() {
				break;
			}
			assert!(page.len() <= 3);
			after = page.last().map(|(id, _)| *id);
			seen.extend(page.into_iter().map(|(id, _)| id));
		}
		seen.sort();
		all.sort();
		assert_eq!(seen, all);
		let bobs: Vec<_> = Datanets::contributions_of_account(&BOB, None, 100).into_iter().map(|(id, _)| id).collect();
		assert_eq!(bobs.len(), 4);
		assert!(Datanets::contributions_of_datanet(1, None, 10).is_empty());
		check();
	});
}

#[test]
fn try_state_detects_a_hold_that_does_not_match() {
	new_test_ext().execute_with(|| {
		let d = create(ALICE, CurationMode::Open);
		contribute(BOB, d, 1);
		assert_ok!(Datanets::do_try_state());
		Contributions::<Test>::mutate(0, |c| c.as_mut().unwrap().deposit += 1);
		assert!(Datanets::do_try_state().is_err());
	});
}

#[test]
fn every_failed_call_leaves_storage_untouched() {
	// Every call's error paths, one after another on the same state: each fails with its own
	// error, and neither storage (the state root) nor the events change. The hold-failure path
	// (a contributor who cannot pay the deposit) fails after reads, inside the call.
	new_test_ext().execute_with(|| {
		let open = create(ALICE, CurationMode::Open);
		let curated = create(ALICE, CurationMode::Curated);
		assert_ok!(Datanets::add_curator(signed(ALICE), curated, CHARLIE));
		let accepted = contribute(BOB, open, 1);
		assert_ok!(Datanets::snapshot(signed(ALICE), open));
		let pending = contribute(BOB, curated, 2);
		let archived = create(DAVE, CurationMode::Open);
		assert_ok!(Datanets::archive(signed(DAVE), archived));
		let long = |n: usize| vec![b'x'; n];
		let cases: Vec<(&str, Box<dyn Fn() -> sp_runtime::DispatchResult>, DispatchError)> = vec![
			("create: empty name", Box::new(|| Datanets::create_datanet(signed(BOB), vec![], vec![], vec![], CurationMode::Open, policy())), Error::EmptyName.into()),
			("create: long name", Box::new(move || Datanets::create_datanet(signed(BOB), long(33), vec![], vec![], CurationMode::Open, policy())), Error::TooLong.into()),
			("create: long license", Box::new(move || Datanets::create_datanet(signed(BOB), b"n".to_vec(), vec![], long(17), CurationMode::Open, policy())), Error::TooLong.into()),
			(
				"create: deposit policy below the minimum",
				Box::new(|| Datanets::create_datanet(signed(BOB), b"n".to_vec(), vec![], vec![], CurationMode::Open, DepositPolicy { base: MIN_BASE - 1, per_byte: MIN_PER_BYTE })),
				Error::DepositBelowMinimum.into(),
			),
			("create: cannot pay the deposit", Box::new(|| Datanets::create_datanet(signed(POOR), b"n".to_vec(), vec![], vec![], CurationMode::Open, policy())), TokenError::FundsUnavailable.into()),
			("update: not the owner", Box::new(move || Datanets::update_metadata(signed(BOB), open, Some(b"x".to_vec()), None, None)), Error::NotOwner.into()),
			("update: unknown", Box::new(|| Datanets::update_metadata(signed(ALICE), 77, Some(b"x".to_vec()), None, None)), Error::UnknownDatanet.into()),
			("update: empty name", Box::new(move || Datanets::update_metadata(signed(ALICE), open, Some(vec![]), None, None)), Error::EmptyName.into()),
			("update: long uri", Box::new(move || Datanets::update_metadata(signed(ALICE), open, None, Some(long(65)), None)), Error::TooLong.into()),
			("add curator: not the owner", Box::new(move || Datanets::add_curator(signed(BOB), curated, DAVE)), Error::NotOwner.into()),
			("add curator: twice", Box::new(move || Datanets::add_curator(signed(ALICE), curated, CHARLIE)), Error::AlreadyCurator.into()),
			("remove curator: unknown", Box::new(move || Datanets::remove_curator(signed(ALICE), curated, DAVE)), Error::UnknownCurator.into()),
			("archive: not the owner", Box::new(move || Datanets::archive(signed(BOB), open)), Error::NotOwner.into()),
			("contribute: unknown datanet", Box::new(|| Datanets::contribute(signed(BOB), 77, h(9), 1, 1, b"u".to_vec(), None, None).map(|_| ()).map_err(|e| e.error)), Error::UnknownDatanet.into()),
			("contribute: archived", Box::new(move || Datanets::contribute(signed(BOB), archived, h(9), 1, 1, b"u".to_vec(), None, None).map(|_| ()).map_err(|e| e.error)), Error::Archived.into()),
			("contribute: empty content", Box::new(move || Datanets::contribute(signed(BOB), open, h(9), 0, 1, b"u".to_vec(), None, None).map(|_| ()).map_err(|e| e.error)), Error::EmptyContent.into()),
			("contribute: empty uri", Box::new(move || Datanets::contribute(signed(BOB), open, h(9), 1, 1, vec![], None, None).map(|_| ()).map_err(|e| e.error)), Error::EmptyUri.into()),
			("contribute: long uri", Box::new(move || Datanets::contribute(signed(BOB), open, h(9), 1, 1, long(65), None, None).map(|_| ()).map_err(|e| e.error)), Error::TooLong.into()),
			("contribute: duplicate content", Box::new(move || Datanets::contribute(signed(CHARLIE), open, h(1), 1, 1, b"u".to_vec(), None, None).map(|_| ()).map_err(|e| e.error)), Error::DuplicateContent.into()),
			("contribute: cannot pay the deposit", Box::new(move || Datanets::contribute(signed(POOR), open, h(9), 1, 1, long(64), None, None).map(|_| ()).map_err(|e| e.error)), TokenError::FundsUnavailable.into()),
			("accept: not a curator", Box::new(move || Datanets::accept(signed(BOB), pending).map(|_| ()).map_err(|e| e.error)), Error::NotCurator.into()),
			("accept: unknown", Box::new(|| Datanets::accept(signed(ALICE), 777).map(|_| ()).map_err(|e| e.error)), Error::UnknownContribution.into()),
			("accept: not pending", Box::new(move || Datanets::accept(signed(ALICE), accepted).map(|_| ()).map_err(|e| e.error)), Error::NotPending.into()),
			("reject: not pending", Box::new(move || Datanets::reject(signed(ALICE), accepted, 1).map(|_| ()).map_err(|e| e.error)), Error::NotPending.into()),
			("withdraw: not the contributor", Box::new(move || Datanets::withdraw(signed(CHARLIE), pending).map(|_| ()).map_err(|e| e.error)), Error::NotContributor.into()),
			("withdraw: in a snapshot", Box::new(move || Datanets::withdraw(signed(BOB), accepted).map(|_| ()).map_err(|e| e.error)), Error::InSnapshot.into()),
			("snapshot: not a curator", Box::new(move || Datanets::snapshot(signed(BOB), open).map(|_| ()).map_err(|e| e.error)), Error::NotCurator.into()),
			("snapshot: nothing new", Box::new(move || Datanets::snapshot(signed(ALICE), open).map(|_| ()).map_err(|e| e.error)), Error::NoChangeSinceSnapshot.into()),
			("snapshot: nothing to snapshot", Box::new(move || Datanets::snapshot(signed(ALICE), curated).map(|_| ()).map_err(|e| e.error)), Error::NothingToSnapshot.into()),
		];
		let mut errors = std::collections::BTreeSet::new();
		for (what, call, expected) in cases {
			let root = sp_io::storage::root(sp_runtime::StateVersion::V1);
			let events = System::events().len();
			assert_eq!(call(), Err(expected), "{what}");
			assert_eq!(root, sp_io::storage::root(sp_runtime::StateVersion::V1), "{what} changed storage");
			assert_eq!(System::events().len(), events, "{what} emitted an event");
			errors.insert(format!("{expected:?}"));
		}
		assert_eq!(errors.len(), 19, "distinct errors covered: {errors:?}");
		check();
	});
}
