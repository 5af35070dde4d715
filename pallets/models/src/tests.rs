//! Unit tests: every call and every error path.

use crate::{mock::*, *};
use frame_support::{assert_noop, assert_ok, traits::fungible::Inspect};
use sp_core::H256;
use sp_runtime::{DispatchError, Perbill, TokenError};

type Error = crate::Error<Test>;

fn signed(who: AccountId) -> RuntimeOrigin {
	RuntimeOrigin::signed(who)
}

fn h(i: u8) -> H256 {
	H256::repeat_byte(i)
}

fn entry(datanet: u32, version: u32, pct: u32) -> LineageEntry {
	LineageEntry { datanet, version, weight: Perbill::from_percent(pct) }
}

/// A bounded call argument.
fn bv<T, S: frame_support::traits::Get<u32>>(v: Vec<T>) -> frame_support::BoundedVec<T, S> {
	v.try_into().ok().expect("within the bound")
}

fn modules(names: Vec<Vec<u8>>) -> TargetModulesOf<Test> {
	bv(names.into_iter().map(bv).collect())
}

fn base(owner: AccountId, weights: u8) -> ModelId {
	let id = NextModelId::<Test>::get();
	assert_ok!(Registry::register_base(signed(owner), b"tiny-llama".to_vec(), b"apache-2.0".to_vec(), b"llama".to_vec(), h(weights), b"hf://tiny".to_vec(), bv(vec![]), h(0)));
	id
}

fn adapter(owner: AccountId, base: ModelId, weights: u8, lineage: Vec<LineageEntry>) -> Result<ModelId, sp_runtime::DispatchError> {
	let id = NextModelId::<Test>::get();
	Registry::register_adapter(
		signed(owner),
		base,
		b"medical-lora".to_vec(),
		b"cc-by-4.0".to_vec(),
		16,
		32,
		modules(vec![b"q_proj".to_vec(), b"v_proj".to_vec()]),
		h(weights),
		b"store://adapter".to_vec(),
		bv(lineage),
		h(9),
	)
	.map(|_| id)
}

fn check() {
	assert_ok!(Registry::do_try_state());
	let sum: Balance = [ALICE, BOB, POOR, TREASURY].iter().map(|w| Balances::total_balance(w)).sum();
	assert_eq!(sum, Balances::total_issuance());
}

fn last_event() -> RuntimeEvent {
	System::events().pop().expect("event").event
}

#[test]
fn register_base_charges_the_fee_to_the_treasury() {
	new_test_ext().execute_with(|| {
		let m = base(ALICE, 1);
		assert_eq!(Balances::balance(&ALICE), 10_000 - REGISTRATION_FEE);
		assert_eq!(Balances::balance(&TREASURY), 1 + REGISTRATION_FEE);
		assert_eq!(last_event(), RuntimeEvent::Registry(Event::BaseRegistered { model: m, owner: ALICE, weights_hash: h(1), fee: REGISTRATION_FEE }));
		let info = crate::Models::<Test>::get(m).unwrap();
		assert!(matches!(info.kind, ModelKind::Base { .. }));
		assert_eq!(info.latest_version, 1);
		assert_eq!(info.split, DefaultSplit::get());
		assert_eq!(ByWeightsHash::<Test>::get(h(1)), Some((m, 1)));
		assert_eq!(Registry::models_of_owner(&ALICE, None, 10), vec![m]);
		check();
	});
}

#[test]
fn register_base_rejects_bad_input() {
	new_test_ext().execute_with(|| {
		let reg = |name: Vec<u8>, arch: Vec<u8>, uri: Vec<u8>, lineage: Vec<LineageEntry>| {
			Registry::register_base(signed(ALICE), name, vec![], arch, h(1), uri, bv(lineage), h(0))
		};
		assert_noop!(reg(vec![], b"llama".to_vec(), vec![], vec![]), Error::EmptyName);
		assert_noop!(reg(vec![1; 33], vec![], vec![], vec![]), Error::TooLong);
		assert_noop!(reg(b"m".to_vec(), vec![1; 33], vec![], vec![]), Error::TooLong);
		assert_noop!(reg(b"m".to_vec(), vec![], vec![1; 65], vec![]), Error::TooLong);
		assert_noop!(reg(b"m".to_vec(), vec![], vec![], vec![entry(7, 1, 100)]), Error::UnknownSnapshot);
		assert_noop!(reg(b"m".to_vec(), vec![], vec![], vec![entry(0, 1, 60)]), Error::BadLineageWeights);
		assert_noop!(
			Registry::register_base(signed(POOR), b"m".to_vec(), vec![], vec![], h(1), vec![], bv(vec![]), h(0)),
			TokenError::FundsUnavailable
		);
		base(ALICE, 1);
		assert_noop!(reg(b"again".to_vec(), vec![], vec![], vec![]), Error::DuplicateWeights);
		check();
	});
}

#[test]
fn adapter_lineage_must_exist_be_unique_and_sum_to_one_hundred_percent() {
	new_test_ext().execute_with(|| {
		let b = base(ALICE, 1);
		assert_noop!(adapter(BOB, b, 2, vec![]), Error::EmptyLineage);
		assert_noop!(adapter(BOB, b, 2, vec![entry(0, 3, 100)]), Error::UnknownSnapshot);
		assert_noop!(adapter(BOB, b, 2, vec![entry(0, 1, 50), entry(0, 1, 50)]), Error::DuplicateLineage);
		assert_noop!(adapter(BOB, b, 2, vec![entry(0, 1, 50), entry(1, 1, 40)]), Error::BadLineageWeights);
		assert_noop!(
			adapter(BOB, b, 2, vec![entry(0, 1, 25), entry(0, 2, 25), entry(1, 1, 25), entry(1, 1, 25)]),
			Error::DuplicateLineage
		);
		let a = adapter(BOB, b, 2, vec![entry(0, 1, 70), entry(1, 1, 30)]).unwrap();
		assert_eq!(last_event(), RuntimeEvent::Registry(Event::AdapterRegistered { model: a, base: b, owner: BOB, weights_hash: h(2), fee: REGISTRATION_FEE }));
		let (info, versions) = Registry::model_with_versions(a).unwrap();
		match info.kind {
			ModelKind::Adapter(spec) => {
				assert_eq!((spec.base, spec.rank, spec.alpha), (b, 16, 32));
				assert_eq!(spec.target_modules.len(), 2);
			},
			_ => panic!("an adapter"),
		}
		assert_eq!(versions[0].1.lineage.to_vec(), vec![entry(0, 1, 70), entry(1, 1, 30)]);
		assert_eq!(Registry::adapters_of_base(b, None, 10), vec![a]);
		assert_eq!(Registry::models_of_datanet(0, None, 10), vec![a]);
		assert_eq!(Registry::models_of_datanet(1, None, 10), vec![a]);
		check();
	});
}

#[test]
fn adapter_needs_a_base_model_and_a_shape() {
	new_test_ext().execute_with(|| {
		assert_noop!(adapter(BOB, 5, 2, vec![entry(0, 1, 100)]), Error::UnknownModel);
		let b = base(ALICE, 1);
		let a = adapter(BOB, b, 2, vec![entry(0, 1, 100)]).unwrap();
		assert_noop!(adapter(BOB, a, 3, vec![entry(0, 1, 100)]), Error::NotABaseModel);
		let bad = |rank, alpha, names: Vec<Vec<u8>>| {
			Registry::register_adapter(signed(BOB), b, b"x".to_vec(), vec![], rank, alpha, modules(names), h(4), vec![], bv(vec![entry(0, 1, 100)]), h(0))
		};
		assert_noop!(bad(0, 8, vec![b"q".to_vec()]), Error::BadAdapterShape);
		assert_noop!(bad(8, 0, vec![b"q".to_vec()]), Error::BadAdapterShape);
		assert_noop!(bad(8, 8, vec![]), Error::BadAdapterShape);
		// Modules or a lineage beyond their bounds are not even a call: it does not decode.
		let encoded = |names: Vec<Vec<u8>>, lineage: Vec<LineageEntry>| {
			use codec::Encode;
			let mut bytes = RuntimeCall::Registry(crate::Call::deprecate_version { model: 0, version: 0 }).encode()[..1].to_vec();
			bytes.push(1); // register_adapter
			bytes.extend((b, b"x".to_vec(), Vec::<u8>::new(), 8u16, 8u16, names, h(4), Vec::<u8>::new(), lineage, h(0)).encode());
			bytes
		};
		let decodes = |bytes: Vec<u8>| <RuntimeCall as codec::Decode>::decode(&mut &bytes[..]).is_ok();
		assert!(decodes(encoded(vec![vec![b'q'; 16]; 4], vec![entry(0, 1, 100)])), "at the bounds: a call");
		assert!(!decodes(encoded(vec![vec![b'q'; 17]], vec![entry(0, 1, 100)])), "module name too long");
		assert!(!decodes(encoded(vec![b"q".to_vec(); 5], vec![entry(0, 1, 100)])), "too many modules");
		let max_lineage = <<Test as Config>::MaxLineage as frame_support::traits::Get<u32>>::get() as usize;
		assert!(!decodes(encoded(vec![b"q".to_vec()], vec![entry(0, 1, 100); max_lineage + 1])), "lineage too long");
		check();
	});
}

#[test]
fn versions_keep_identity_and_old_ones_stay_queryable() {
	new_test_ext().execute_with(|| {
		let b = base(ALICE, 1);
		let a = adapter(BOB, b, 2, vec![entry(0, 1, 100)]).unwrap();
		assert_noop!(Registry::publish_version(signed(ALICE), a, h(3), vec![], bv(vec![entry(0, 2, 100)]), h(0)), Error::NotOwner);
		assert_noop!(Registry::publish_version(signed(BOB), a, h(2), vec![], bv(vec![entry(0, 2, 100)]), h(0)), Error::DuplicateWeights);
		assert_noop!(Registry::publish_version(signed(BOB), a, h(3), vec![], bv(vec![]), h(0)), Error::EmptyLineage);
		assert_noop!(Registry::publish_version(signed(BOB), 9, h(3), vec![], bv(vec![]), h(0)), Error::UnknownModel);
		let treasury0 = Balances::balance(&TREASURY);
		assert_ok!(Registry::publish_version(signed(BOB), a, h(3), b"store://v2".to_vec(), bv(vec![entry(0, 2, 100)]), h(8)));
		assert_eq!(last_event(), RuntimeEvent::Registry(Event::VersionPublished { model: a, version: 2, weights_hash: h(3), fee: VERSION_FEE }));
		assert_eq!(Balances::balance(&TREASURY), treasury0 + VERSION_FEE);
		assert_eq!(ByWeightsHash::<Test>::get(h(3)), Some((a, 2)));
		assert_noop!(Registry::deprecate_version(signed(ALICE), a, 1), Error::NotOwner);
		assert_noop!(Registry::deprecate_version(signed(BOB), a, 3), Error::UnknownVersion);
		assert_ok!(Registry::deprecate_version(signed(BOB), a, 1));
		assert_eq!(last_event(), RuntimeEvent::Registry(Event::VersionDeprecated { model: a, version: 1 }));
		assert_noop!(Registry::deprecate_version(signed(BOB), a, 1), Error::AlreadyDeprecated);
		let (info, versions) = Registry::model_with_versions(a).unwrap();
		assert_eq!(info.latest_version, 2);
		assert!(versions[0].1.deprecated && !versions[1].1.deprecated);
		// Base models publish versions too, with an empty lineage allowed.
		assert_ok!(Registry::publish_version(signed(ALICE), b, h(4), vec![], bv(vec![]), h(0)));
		check();
	});
}

#[test]
fn pricing_split_and_ownership() {
	new_test_ext().execute_with(|| {
		let m = base(ALICE, 1);
		let pricing = Pricing { per_1k_tokens: 7, per_request: 1 };
		assert_noop!(Registry::set_pricing(signed(BOB), m, pricing), Error::NotOwner);
		assert_ok!(Registry::set_pricing(signed(ALICE), m, pricing));
		assert_eq!(crate::Models::<Test>::get(m).unwrap().pricing, pricing);

		let split = |o, d, w, t| RevenueSplit {
			owner: Perbill::from_percent(o),
			data: Perbill::from_percent(d),
			worker: Perbill::from_percent(w),
			treasury: Perbill::from_percent(t),
		};
		assert_noop!(Registry::set_revenue_split(signed(ALICE), m, split(50, 30, 20, 10)), Error::SplitNotComplete);
		assert_noop!(Registry::set_revenue_split(signed(ALICE), m, split(50, 30, 10, 0)), Error::SplitNotComplete);
		assert_noop!(Registry::set_revenue_split(signed(BOB), m, split(50, 30, 15, 5)), Error::NotOwner);
		// Minimums hold from genesis, before governance ever sets one: data cannot be cut to 0 %.
		assert_noop!(Registry::set_revenue_split(signed(ALICE), m, split(80, 0, 15, 5)), Error::SplitBelowMinimum);
		assert_noop!(Registry::set_revenue_split(signed(ALICE), m, split(80, 20, 0, 0)), Error::SplitBelowMinimum);
		assert_ok!(Registry::set_revenue_split(signed(ALICE), m, split(50, 30, 15, 5)));
		assert_eq!(last_event(), RuntimeEvent::Registry(Event::SplitSet { model: m, split: split(50, 30, 15, 5) }));

		// Governance sets minimums; signed accounts cannot.
		assert_noop!(Registry::set_min_split(signed(ALICE), split(0, 40, 0, 0)), DispatchError::BadOrigin);
		assert_noop!(Registry::set_min_split(RuntimeOrigin::root(), split(60, 50, 0, 0)), Error::MinSplitTooHigh);
		// Not above the default split new models get (data 30 % here).
		assert_noop!(Registry::set_min_split(RuntimeOrigin::root(), split(0, 40, 0, 5)), Error::MinSplitTooHigh);
		assert_ok!(Registry::set_min_split(RuntimeOrigin::root(), split(0, 30, 15, 5)));
		assert_noop!(Registry::set_revenue_split(signed(ALICE), m, split(55, 25, 15, 5)), Error::SplitBelowMinimum);
		assert_ok!(Registry::set_revenue_split(signed(ALICE), m, split(40, 40, 15, 5)));

		assert_noop!(Registry::transfer_ownership(signed(BOB), m, BOB), Error::NotOwner);
		assert_ok!(Registry::transfer_ownership(signed(ALICE), m, BOB));
		assert_eq!(Registry::models_of_owner(&BOB, None, 10), vec![m]);
		assert!(Registry::models_of_owner(&ALICE, None, 10).is_empty());
		assert_ok!(Registry::set_pricing(signed(BOB), m, Pricing::default()));
		check();
	});
}

#[test]
fn listings_page() {
	new_test_ext().execute_with(|| {
		let b = base(ALICE, 1);
		let mut ids: Vec<_> = (2..9).map(|i| adapter(BOB, b, i, vec![entry(0, 1, 100)]).unwrap()).collect();
		let mut seen = Vec::new();
		let mut after = None;
		loop {
			let page = Registry::adapters_of_base(b, after, 3);
			if page.is_empty() {
				break;
			}
			after = page.last().copied();
			seen.extend(page);
		}
		seen.sort();
		ids.sort();
		assert_eq!(seen, ids);
		check();
	});
}

#[test]
fn try_state_detects_a_broken_index() {
	new_test_ext().execute_with(|| {
		let m = base(ALICE, 1);
		assert_ok!(Registry::do_try_state());
		ByWeightsHash::<Test>::remove(h(1));
		assert!(Registry::do_try_state().is_err());
		ByWeightsHash::<Test>::insert(h(1), (m, 1));
		ModelsByOwner::<Test>::insert(BOB, m, ());
		assert!(Registry::do_try_state().is_err());
	});
}

/// Changing the price or split keeps the previous terms valid for `TermsGrace` blocks (for
/// vouchers signed under them).
#[test]
fn a_terms_change_keeps_the_previous_terms_for_the_grace_period() {
	new_test_ext().execute_with(|| {
		let m = base(ALICE, 1);
		let before = crate::Models::<Test>::get(m).unwrap();
		let pricing = Pricing { per_1k_tokens: 7, per_request: 3 };
		assert_ok!(Registry::set_pricing(signed(ALICE), m, pricing));
		assert_eq!(PreviousTerms::<Test>::get(m).to_vec(), vec![(before.pricing, before.split, 1 + 20)]);
		// The same price again changes nothing and keeps nothing.
		assert_ok!(Registry::set_pricing(signed(ALICE), m, pricing));
		assert_eq!(PreviousTerms::<Test>::get(m).len(), 1);
		System::set_block_number(5);
		let split = RevenueSplit {
			owner: Perbill::from_percent(30),
			data: Perbill::from_percent(50),
			worker: Perbill::from_percent(15),
			treasury: Perbill::from_percent(5),
		};
		assert_ok!(Registry::set_revenue_split(signed(ALICE), m, split));
		// Both earlier terms stay valid: a second change does not void vouchers of the first.
		assert_eq!(PreviousTerms::<Test>::get(m).to_vec(), vec![(before.pricing, before.split, 21), (pricing, before.split, 25)]);
		// At most MAX_PREVIOUS_TERMS within the grace: more changes wait.
		assert_ok!(Registry::set_pricing(signed(ALICE), m, Pricing { per_1k_tokens: 8, per_request: 3 }));
		assert_ok!(Registry::set_pricing(signed(ALICE), m, Pricing { per_1k_tokens: 9, per_request: 3 }));
		assert_noop!(Registry::set_pricing(signed(ALICE), m, Pricing { per_1k_tokens: 10, per_request: 3 }), Error::TooManyTermsChanges);
		// Once the first have expired, they make room.
		System::set_block_number(22);
		assert_ok!(Registry::set_pricing(signed(ALICE), m, Pricing { per_1k_tokens: 10, per_request: 3 }));
		assert_eq!(PreviousTerms::<Test>::get(m).len(), 4);
		check();
	});
}
