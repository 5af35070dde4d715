//! Runtime tests: genesis supply, fees in OPEN, existential deposit, invariants.

use crate::{
	configs::{EcosystemAccount, TreasuryAccount},
	currency::*,
	genesis_config_presets::{self, dev_accounts, genesis_allocations},
	invariants, AccountId, Balance, Balances, BalancesCall, BuildStorage, Executive, Header,
	Runtime, RuntimeCall, RuntimeEvent, SignedPayload, System,
	TransactionPayment, TxExtension, UncheckedExtrinsic,
};
mod governance;

use codec::{Decode, Encode};
use frame_support::{
	assert_noop, assert_ok,
	dispatch::GetDispatchInfo,
	traits::fungible::{InspectHold, Mutate},
};
use sp_keyring::Sr25519Keyring;
use sp_runtime::{
	generic::Era,
	traits::{Header as _, StaticLookup},
	DispatchError, TokenError,
};

pub(crate) fn ext_from_preset(name: &str) -> sp_io::TestExternalities {
	let config = genesis_config_presets::preset_config(name).expect("preset exists");
	let mut ext = sp_io::TestExternalities::new(config.build_storage().unwrap());
	ext.execute_with(|| {
		System::set_block_number(1);
	});
	ext
}

pub(crate) fn dev_ext() -> sp_io::TestExternalities {
	ext_from_preset(sp_genesis_builder::DEV_RUNTIME_PRESET)
}

fn free(who: &AccountId) -> Balance {
	Balances::free_balance(who)
}

/// The transaction extensions a wallet attaches: immortal era, `nonce`, `tip`, no metadata hash.
fn wallet_extension(nonce: u32, tip: Balance) -> TxExtension {
	(
		frame_system::CheckNonZeroSender::new(),
		frame_system::CheckSpecVersion::new(),
		frame_system::CheckTxVersion::new(),
		frame_system::CheckGenesis::new(),
		frame_system::CheckEra::from(Era::Immortal),
		frame_system::CheckNonce::from(nonce),
		frame_system::CheckWeight::new(),
		pallet_transaction_payment::ChargeTransactionPayment::from(tip),
		frame_metadata_hash_extension::CheckMetadataHash::new(false),
		frame_system::WeightReclaim::new(),
	)
}

/// A signed, immortal extrinsic from `signer` carrying `call`, as a wallet would build it.
fn signed_xt(signer: Sr25519Keyring, call: RuntimeCall, tip: Balance) -> UncheckedExtrinsic {
	let who = signer.to_account_id();
	let tx_ext = wallet_extension(System::account_nonce(&who), tip);
	let payload = SignedPayload::new(call.clone(), tx_ext.clone()).expect("valid extension");
	let signature = payload.using_encoded(|bytes| signer.sign(bytes));
	UncheckedExtrinsic::new_signed(
		call,
		<Runtime as frame_system::Config>::Lookup::unlookup(who),
		signature.into(),
		tx_ext,
	)
}

pub(crate) fn start_block(n: u32) {
	let header = Header::new(n, Default::default(), Default::default(), System::parent_hash(), Default::default());
	Executive::initialize_block(&header);
}

#[test]
fn every_preset_mints_exactly_one_billion_open() {
	for preset in genesis_config_presets::preset_names() {
		let name = core::str::from_utf8(preset.as_ref()).unwrap().to_owned();
		ext_from_preset(&name).execute_with(|| {
			assert_eq!(Balances::total_issuance(), 1_000_000_000 * OPEN, "preset {name}");
			assert_eq!(Balances::total_issuance(), TOTAL_SUPPLY);
			// 40 %, plus the few units left when the operators' 20 % does not divide evenly.
			let treasury = free(&TreasuryAccount::get());
			let base = TOTAL_SUPPLY * 40 / 100 - EXISTENTIAL_DEPOSIT;
			assert!(treasury >= base && treasury < base + 100, "{treasury}");
			assert_eq!(free(&crate::configs::AttributionPot::get()), EXISTENTIAL_DEPOSIT);
			assert_eq!(free(&EcosystemAccount::get()), TOTAL_SUPPLY * 40 / 100);
			assert_ok!(invariants::check());
		});
	}
}

#[test]
fn allocations_sum_to_supply_for_any_operator_count() {
	let accounts = dev_accounts();
	for n in 0..accounts.len() {
		let alloc = genesis_allocations(&accounts[..n]);
		assert_eq!(alloc.iter().map(|(_, b)| *b).sum::<Balance>(), TOTAL_SUPPLY, "n = {n}");
	}
	// 7 operators do not divide 200M OPEN evenly: the remainder goes to the treasury.
	let seven: alloc::vec::Vec<AccountId> = accounts.iter().take(7).cloned().collect();
	let alloc = genesis_allocations(&seven);
	assert_eq!(alloc.iter().map(|(_, b)| *b).sum::<Balance>(), TOTAL_SUPPLY);
	assert!(alloc[0].1 > TOTAL_SUPPLY * 40 / 100 - EXISTENTIAL_DEPOSIT);
}

#[test]
fn dev_accounts_are_endowed_and_alice_is_sudo() {
	dev_ext().execute_with(|| {
		let each = TOTAL_SUPPLY / 5 / dev_accounts().len() as u128;
		for who in dev_accounts() {
			assert_eq!(free(&who), each);
		}
		let sudo_key = frame_support::storage::storage_prefix(b"Sudo", b"Key");
		assert_eq!(
			frame_support::storage::unhashed::get::<AccountId>(&sudo_key),
			Some(Sr25519Keyring::Alice.to_account_id())
		);
		assert_eq!(pallet_aura::Authorities::<Runtime>::get().len(), 1);
	});
	ext_from_preset(sp_genesis_builder::LOCAL_TESTNET_RUNTIME_PRESET).execute_with(|| {
		assert_eq!(pallet_aura::Authorities::<Runtime>::get().len(), 2);
		assert_eq!(pallet_grandpa::Pallet::<Runtime>::grandpa_authorities().len(), 2);
	});
}

#[test]
fn signed_transfer_pays_fee_in_open_to_treasury() {
	dev_ext().execute_with(|| {
		start_block(1);
		let alice = Sr25519Keyring::Alice.to_account_id();
		let bob = Sr25519Keyring::Bob.to_account_id();
		let (alice0, bob0, treasury0) = (free(&alice), free(&bob), free(&TreasuryAccount::get()));
		let amount = 12 * OPEN;
		let call = RuntimeCall::Balances(BalancesCall::transfer_keep_alive {
			dest: bob.clone().into(),
			value: amount,
		});
		let xt = signed_xt(Sr25519Keyring::Alice, call.clone(), 0);
		let len = xt.encoded_size() as u32;
		let info = xt.get_dispatch_info();
		let expected_fee = TransactionPayment::compute_fee(len, &info, 0);
		// A transfer costs a visible fraction of an OPEN, not dust.
		assert!(expected_fee > MICRO_OPEN && expected_fee < OPEN / 10, "fee {expected_fee}");

		assert_ok!(Executive::apply_extrinsic(xt).expect("valid transaction"));

		let paid = alice0 - free(&alice) - amount;
		assert!(paid > 0 && paid <= expected_fee, "paid {paid}, expected at most {expected_fee}");
		assert_eq!(free(&bob), bob0 + amount);
		assert_eq!(free(&TreasuryAccount::get()), treasury0 + paid, "fee goes to the treasury");
		assert_eq!(Balances::total_issuance(), TOTAL_SUPPLY, "fees neither mint nor burn");
		assert!(System::events().iter().any(|r| matches!(
			&r.event,
			RuntimeEvent::TransactionPayment(pallet_transaction_payment::Event::TransactionFeePaid { who, actual_fee, .. })
				if *who == alice && *actual_fee == paid
		)));
		assert!(System::events().iter().any(|r| matches!(
			&r.event,
			RuntimeEvent::Balances(pallet_balances::Event::Transfer { from, to, amount: a })
				if *from == alice && *to == bob && *a == amount
		)));
		assert_ok!(invariants::check());
	});
}

#[test]
fn tip_also_goes_to_treasury() {
	dev_ext().execute_with(|| {
		start_block(1);
		let treasury0 = free(&TreasuryAccount::get());
		let alice0 = free(&Sr25519Keyring::Alice.to_account_id());
		let call = RuntimeCall::System(frame_system::Call::remark { remark: b"hello".to_vec() });
		let xt = signed_xt(Sr25519Keyring::Alice, call, MILLI_OPEN);
		assert_ok!(Executive::apply_extrinsic(xt).expect("valid transaction"));
		let paid = alice0 - free(&Sr25519Keyring::Alice.to_account_id());
		assert!(paid > MILLI_OPEN);
		assert_eq!(free(&TreasuryAccount::get()), treasury0 + paid);
		assert_ok!(invariants::check());
	});
}

#[test]
fn transfer_below_existential_deposit_to_new_account_fails() {
	dev_ext().execute_with(|| {
		let alice = Sr25519Keyring::Alice.to_account_id();
		let fresh = Sr25519Keyring::One.to_account_id();
		assert_eq!(free(&fresh), 0);
		assert_noop!(
			Balances::transfer_allow_death(
				crate::RuntimeOrigin::signed(alice.clone()),
				fresh.clone().into(),
				EXISTENTIAL_DEPOSIT - 1,
			),
			DispatchError::Token(TokenError::BelowMinimum)
		);
		// Exactly the existential deposit creates the account.
		assert_ok!(Balances::transfer_allow_death(
			crate::RuntimeOrigin::signed(alice),
			fresh.clone().into(),
			EXISTENTIAL_DEPOSIT,
		));
		assert_eq!(free(&fresh), EXISTENTIAL_DEPOSIT);
		assert_ok!(invariants::check());
	});
}

#[test]
fn signed_transfer_below_existential_deposit_fails_but_pays_fee() {
	dev_ext().execute_with(|| {
		start_block(1);
		let alice = Sr25519Keyring::Alice.to_account_id();
		let fresh = Sr25519Keyring::Two.to_account_id();
		let alice0 = free(&alice);
		let call = RuntimeCall::Balances(BalancesCall::transfer_allow_death {
			dest: fresh.clone().into(),
			value: EXISTENTIAL_DEPOSIT / 2,
		});
		let outcome = Executive::apply_extrinsic(signed_xt(Sr25519Keyring::Alice, call, 0))
			.expect("valid transaction");
		assert_eq!(outcome, Err(DispatchError::Token(TokenError::BelowMinimum)));
		assert_eq!(free(&fresh), 0);
		assert!(free(&alice) < alice0, "the failed call still paid its fee");
		assert_eq!(Balances::total_issuance(), TOTAL_SUPPLY);
		assert_ok!(invariants::check());
	});
}

#[test]
fn transaction_from_account_without_funds_is_invalid() {
	dev_ext().execute_with(|| {
		start_block(1);
		let call = RuntimeCall::System(frame_system::Call::remark { remark: vec![] });
		let outcome = Executive::apply_extrinsic(signed_xt(Sr25519Keyring::One, call, 0));
		assert_eq!(
			outcome,
			Err(sp_runtime::transaction_validity::TransactionValidityError::Invalid(
				sp_runtime::transaction_validity::InvalidTransaction::Payment
			))
		);
	});
}

#[test]
fn tampered_signature_is_rejected() {
	dev_ext().execute_with(|| {
		start_block(1);
		let bob = Sr25519Keyring::Bob.to_account_id();
		let bob0 = free(&bob);
		let call = RuntimeCall::Balances(BalancesCall::transfer_keep_alive { dest: bob.clone().into(), value: OPEN });
		let mut xt = signed_xt(Sr25519Keyring::Alice, call, 0);
		// Change the amount after signing.
		xt.function = RuntimeCall::Balances(BalancesCall::transfer_keep_alive { dest: bob.clone().into(), value: 2 * OPEN });
		let encoded = xt.encode();
		let decoded = <UncheckedExtrinsic as codec::Decode>::decode(&mut &encoded[..]).unwrap();
		assert_eq!(
			Executive::apply_extrinsic(decoded),
			Err(sp_runtime::transaction_validity::TransactionValidityError::Invalid(
				sp_runtime::transaction_validity::InvalidTransaction::BadProof
			))
		);
		assert_eq!(free(&bob), bob0);
	});
}

#[test]
fn invariants_catch_unbacked_issuance() {
	dev_ext().execute_with(|| {
		assert_ok!(invariants::check());
		// Minting through the fungible API keeps the books straight...
		assert_ok!(<Balances as Mutate<AccountId>>::mint_into(&Sr25519Keyring::Bob.to_account_id(), OPEN));
		assert_ok!(invariants::check());
		// ...writing an issuance that no account backs does not.
		pallet_balances::TotalIssuance::<Runtime>::mutate(|i| *i += 1);
		assert!(invariants::check().is_err());
	});
}

#[test]
fn invariants_catch_a_challenge_bond_left_on_hold() {
	use frame_support::traits::fungible::MutateHold;
	dev_ext().execute_with(|| {
		assert_ok!(invariants::check_challenge_bonds());
		// A bond held with no challenge or dispute open: the pallet's per-challenger check sees
		// nothing (the account has nothing open); the runtime-wide sum does.
		let reason = crate::RuntimeHoldReason::Attribution(pallet_attribution::HoldReason::ChallengeBond);
		assert_ok!(<Balances as MutateHold<AccountId>>::hold(&reason, &Sr25519Keyring::Bob.to_account_id(), OPEN));
		assert_ok!(pallet_attribution::Pallet::<Runtime>::do_try_state());
		assert_eq!(
			invariants::check_challenge_bonds(),
			Err("OPEN held as challenge bonds differs from the bonds of open challenges and disputes")
		);
	});
}

#[test]
fn token_info_reports_open() {
	dev_ext().execute_with(|| {
		let info = crate::apis::token_info();
		assert_eq!(&info.symbol, b"OPEN");
		assert_eq!(info.decimals, 18);
		assert_eq!(info.total_issuance, TOTAL_SUPPLY);
		assert_eq!(info.existential_deposit, EXISTENTIAL_DEPOSIT);
	});
}

#[test]
fn batch_is_available() {
	dev_ext().execute_with(|| {
		let alice = Sr25519Keyring::Alice.to_account_id();
		let bob = Sr25519Keyring::Bob.to_account_id();
		let bob0 = free(&bob);
		let transfer = |value| RuntimeCall::Balances(BalancesCall::transfer_keep_alive { dest: bob.clone().into(), value });
		assert_ok!(crate::Utility::batch_all(crate::RuntimeOrigin::signed(alice), vec![transfer(OPEN), transfer(2 * OPEN)]));
		assert_eq!(free(&bob), bob0 + 3 * OPEN);
	});
}

#[test]
fn datanet_deposits_are_holds_and_forfeits_reach_the_treasury() {
	use pallet_datanets::{CurationMode, DepositPolicy};
	dev_ext().execute_with(|| {
		let (alice, bob) = (Sr25519Keyring::Alice.to_account_id(), Sr25519Keyring::Bob.to_account_id());
		let policy = DepositPolicy {
			base: crate::configs::MIN_CONTRIBUTION_DEPOSIT_BASE,
			per_byte: crate::configs::MIN_CONTRIBUTION_DEPOSIT_PER_BYTE,
		};
		assert_ok!(crate::Datanets::create_datanet(
			crate::RuntimeOrigin::signed(alice.clone()),
			b"medical-qa".to_vec(),
			vec![],
			b"CC-BY-4.0".to_vec(),
			CurationMode::Curated,
			policy,
		));
		assert_eq!(Balances::total_balance_on_hold(&alice), 10 * OPEN);
		assert_ok!(crate::Datanets::contribute(
			crate::RuntimeOrigin::signed(bob.clone()),
			0,
			sp_core::H256::repeat_byte(1),
			100,
			20,
			b"store://x".to_vec(),
			None,
			None,
		));
		let deposit = pallet_datanets::Contributions::<Runtime>::get(0).unwrap().deposit;
		assert!(deposit > crate::configs::MIN_CONTRIBUTION_DEPOSIT_BASE);
		assert_eq!(Balances::total_balance_on_hold(&bob), deposit);
		assert_ok!(invariants::check());
		let treasury0 = free(&TreasuryAccount::get());
		assert_ok!(crate::Datanets::reject(crate::RuntimeOrigin::signed(alice), 0, 1));
		assert_eq!(free(&TreasuryAccount::get()), treasury0 + deposit / 5);
		assert_eq!(Balances::total_balance_on_hold(&bob), 0);
		assert_eq!(Balances::total_issuance(), TOTAL_SUPPLY);
		assert_ok!(invariants::check());
	});
}

/// The inference worker builds `submit_receipts` extrinsics and reads its worker record with
/// `openledger_primitives::tx` instead of linking the runtime: the bytes must be the runtime's.
#[test]
fn off_chain_extrinsics_and_worker_record_match_the_runtime() {
	use openledger_primitives::tx;
	dev_ext().execute_with(|| {
		start_block(1);
		let charlie = Sr25519Keyring::Charlie;
		let receipts = frame_support::BoundedVec::new();
		let call = RuntimeCall::Attribution(pallet_attribution::Call::submit_receipts { receipts });
		let ours = tx::encode_call(tx::ATTRIBUTION_PALLET, tx::SUBMIT_RECEIPTS_CALL, &Vec::<u8>::new());
		assert_eq!(ours, call.encode(), "pallet and call index");
		// The worker's answer to a dispute: `(request id, evidence)` after the indices.
		let (id, evidence) = (sp_core::H256::repeat_byte(5), frame_support::BoundedVec::new());
		let c = openledger_primitives::evidence::DisputeKind::Omission {
			contribution: openledger_primitives::receipt::ContributionRef { datanet: 1, version: 2, index: 3 },
			output_start: 7,
			len: 99,
		};
		let answer = RuntimeCall::Attribution(pallet_attribution::Call::answer { request_id: id, dispute: c, evidence: evidence.clone() });
		assert_eq!(tx::encode_call(tx::ATTRIBUTION_PALLET, tx::ANSWER_CALL, &(id, c, evidence.into_inner())), answer.encode());

		let ctx = tx::TxContext {
			genesis: System::block_hash(0),
			spec_version: crate::VERSION.spec_version,
			tx_version: crate::VERSION.transaction_version,
			nonce: System::account_nonce(charlie.to_account_id()),
		};
		let payload = SignedPayload::new(call.clone(), wallet_extension(ctx.nonce, 0)).expect("valid extension");
		assert_eq!(payload.using_encoded(|b| b.to_vec()), tx::signing_payload(&ours, &ctx));

		let bytes = tx::signed_extrinsic(&ours, &charlie.pair(), &ctx);
		let xt = UncheckedExtrinsic::decode(&mut &bytes[..]).expect("decodes as the runtime's extrinsic");
		assert_eq!(xt.encode(), bytes, "canonical encoding");
		assert_eq!(xt.function, call);
		assert_ok!(Executive::apply_extrinsic(xt).expect("valid signature, nonce and extensions"));
		assert_eq!(System::account_nonce(charlie.to_account_id()), ctx.nonce + 1);

		// A worker record read back through the off-chain key and head decoder.
		let worker = pallet_open_staking::WorkerInfo::<Runtime> {
			signing_key: [7; 32],
			endpoint: b"http://w".to_vec().try_into().unwrap(),
			models: vec![3, 5].try_into().unwrap(),
			self_bond: 1,
			delegated: 2,
			delegators: 3,
			commission: sp_runtime::Perbill::from_percent(4),
			pending_commission: None,
			status: pallet_open_staking::WorkerStatus::Active,
			registered_at: 9,
		};
		pallet_open_staking::Workers::<Runtime>::insert(charlie.to_account_id(), worker);
		let raw = sp_io::storage::get(&tx::worker_storage_key(&charlie.to_account_id())).expect("stored under that key");
		let head = tx::WorkerRecordHead::decode(&mut &raw[..]).unwrap();
		assert_eq!(head, tx::WorkerRecordHead { signing_key: [7; 32], endpoint: b"http://w".to_vec(), models: vec![3, 5] });
	});
}

/// The factory registers adapters and the worker updates its record with calls encoded from
/// `openledger_primitives::tx`'s indices and argument tuples: they must decode as the runtime's.
#[test]
fn off_chain_register_adapter_and_update_worker_calls_match_the_runtime() {
	use openledger_primitives::tx;
	let lineage: Vec<(u32, u32, u32)> = vec![(1, 2, 600_000_000), (3, 1, 400_000_000)];
	let args = (
		7u32,
		b"legal".to_vec(),
		b"cc-by-4.0".to_vec(),
		8u16,
		16u16,
		vec![b"q_proj".to_vec(), b"v_proj".to_vec()],
		[1u8; 32],
		b"store://legal".to_vec(),
		lineage,
		[2u8; 32],
	);
	let ours = tx::encode_call(tx::MODELS_PALLET, tx::REGISTER_ADAPTER_CALL, &args);
	let call = RuntimeCall::Models(pallet_models::Call::register_adapter {
		base: 7,
		name: b"legal".to_vec(),
		license: b"cc-by-4.0".to_vec(),
		rank: 8,
		alpha: 16,
		target_modules: vec![b"q_proj".to_vec().try_into().unwrap(), b"v_proj".to_vec().try_into().unwrap()].try_into().unwrap(),
		weights_hash: [1u8; 32].into(),
		uri: b"store://legal".to_vec(),
		lineage: vec![
			pallet_models::LineageEntry { datanet: 1, version: 2, weight: sp_runtime::Perbill::from_percent(60) },
			pallet_models::LineageEntry { datanet: 3, version: 1, weight: sp_runtime::Perbill::from_percent(40) },
		]
		.try_into()
		.unwrap(),
		training_config_hash: [2u8; 32].into(),
	});
	assert_eq!(ours, call.encode());

	let args = (Option::<[u8; 32]>::None, Option::<Vec<u8>>::None, Some(vec![3u32, 9]), Option::<u32>::None);
	let ours = tx::encode_call(tx::STAKING_PALLET, tx::UPDATE_WORKER_CALL, &args);
	let call = RuntimeCall::OpenStaking(pallet_open_staking::Call::update_worker {
		signing_key: None,
		endpoint: None,
		models: Some(vec![3, 9].try_into().unwrap()),
		commission: None,
	});
	assert_eq!(ours, call.encode());
}

/// Fees follow demand: a full block raises the next block's fee multiplier (and so every fee),
/// an empty one lowers it slowly, never below a tenth of the base fee.
#[test]
fn fees_rise_in_full_blocks_and_fall_in_empty_ones() {
	use frame_support::{dispatch::DispatchClass, traits::Hooks, weights::Weight};
	use sp_runtime::{traits::One, FixedPointNumber};
	dev_ext().execute_with(|| {
		start_block(1);
		let start = pallet_transaction_payment::NextFeeMultiplier::<Runtime>::get();
		assert_eq!(start, pallet_transaction_payment::Multiplier::one(), "1 at genesis");
		let call = RuntimeCall::System(frame_system::Call::remark { remark: b"x".to_vec() });
		let info = signed_xt(Sr25519Keyring::Alice, call.clone(), 0).get_dispatch_info();
		let fee_before = TransactionPayment::compute_fee(100, &info, 0);
		// Ten blocks filled to their normal capacity.
		let normal = <Runtime as frame_system::Config>::BlockWeights::get()
			.get(DispatchClass::Normal)
			.max_total
			.unwrap_or(Weight::MAX);
		for n in 1..=10u32 {
			frame_system::BlockWeight::<Runtime>::mutate(|w| w.set(normal, DispatchClass::Normal));
			TransactionPayment::on_finalize(n);
		}
		let full = pallet_transaction_payment::NextFeeMultiplier::<Runtime>::get();
		assert!(full > start, "full blocks raise the multiplier: {full:?}");
		assert!(TransactionPayment::compute_fee(100, &info, 0) > fee_before, "and the fee of the same call");
		// Empty blocks bring it down again...
		for n in 11..=20u32 {
			frame_system::BlockWeight::<Runtime>::kill();
			TransactionPayment::on_finalize(n);
		}
		assert!(pallet_transaction_payment::NextFeeMultiplier::<Runtime>::get() < full);
		// ...but never below a tenth: at the floor, empty blocks leave it there.
		let floor = pallet_transaction_payment::Multiplier::saturating_from_rational(1, 10);
		pallet_transaction_payment::NextFeeMultiplier::<Runtime>::put(floor);
		for n in 21..=30u32 {
			frame_system::BlockWeight::<Runtime>::kill();
			TransactionPayment::on_finalize(n);
		}
		assert_eq!(pallet_transaction_payment::NextFeeMultiplier::<Runtime>::get(), floor);
	});
}

/// The attribution pallet driven through the real staking, models and Datanets pallets (not
/// mocks): a span receipt crediting a contribution with a span it does not contain is disputed
/// by an outsider, its worker cannot answer with evidence, and at the deadline `on_idle` (no
/// root call) slashes the worker, its delegator and an ex-delegator's unbonding stake by the
/// same fraction into the treasury and refunds exactly its fee; an honest receipt
/// vests after the challenge window in `on_idle` and the worker's claim shares it with its
/// delegator by stake after commission. Every runtime invariant holds after every step.
#[test]
fn attribution_through_real_staking_slashes_refunds_vests_and_shares() {
	use frame_support::traits::Hooks;
	use openledger_primitives::receipt::{AttributionMethod, ContributionRef, Receipt, Share, SignedReceipt, Voucher};
	use sp_core::{Pair, H256};
	use sp_runtime::{traits::AccountIdConversion, Perbill};
	let origin = |k: Sr25519Keyring| crate::RuntimeOrigin::signed(k.to_account_id());
	let staking_held = |who: &AccountId| {
		Balances::balance_on_hold(&crate::RuntimeHoldReason::OpenStaking(pallet_open_staking::HoldReason::Staking), who)
	};
	dev_ext().execute_with(|| {
		start_block(1);
		let (alice, bob, charlie, dave, eve, ferdie) = (
			Sr25519Keyring::Alice,
			Sr25519Keyring::Bob,
			Sr25519Keyring::Charlie,
			Sr25519Keyring::Dave,
			Sr25519Keyring::Eve,
			Sr25519Keyring::Ferdie,
		);
		// Data: Bob contributes two records to Alice's open Datanet; a snapshot; an adapter on it.
		let policy = pallet_datanets::DepositPolicy {
			base: crate::configs::MIN_CONTRIBUTION_DEPOSIT_BASE,
			per_byte: crate::configs::MIN_CONTRIBUTION_DEPOSIT_PER_BYTE,
		};
		assert_ok!(crate::Datanets::create_datanet(origin(alice), b"law".to_vec(), vec![], vec![], pallet_datanets::CurationMode::Open, policy));
		use openledger_primitives::evidence as ev;
		let texts: [&[u8]; 2] = [b"The court held that the contract was void for fraud.", b"Rivers freeze early in the northern valleys."];
		for t in texts {
			assert_ok!(crate::Datanets::contribute(origin(bob), 0, ev::content_root(t), t.len() as u64, 2, b"u".to_vec(), None, None));
		}
		assert_ok!(crate::Datanets::snapshot(origin(alice), 0));
		assert_ok!(crate::Models::register_base(origin(alice), b"b".to_vec(), vec![], vec![], H256::repeat_byte(0xb0), vec![], Default::default(), H256::zero()));
		let lineage = vec![pallet_models::LineageEntry { datanet: 0, version: 1, weight: Perbill::one() }];
		let modules = vec![b"q".to_vec().try_into().unwrap()].try_into().unwrap();
		assert_ok!(crate::Models::register_adapter(origin(alice), 0, b"a".to_vec(), vec![], 8, 16, modules, H256::repeat_byte(0xad), vec![], lineage.try_into().unwrap(), H256::zero()));
		// Priced at up to 2 OPEN a request (a receipt may charge no more).
		assert_ok!(crate::Models::set_pricing(origin(alice), 1, pallet_models::Pricing { per_request: 2 * OPEN, per_1k_tokens: 0 }));
		// Charlie serves it with its own receipt key, 10 % commission; Dave delegates; Eve
		// delegated and left before any receipt (her stake is unbonding, still bonded to
		// Charlie); Bob delegates now and leaves after the receipts settle.
		let key = sp_core::sr25519::Pair::from_string("//Charlie//receipts", None).unwrap();
		let bond = 2_000 * OPEN;
		assert_ok!(crate::OpenStaking::bond_worker(origin(charlie), bond, key.public().0, Default::default(), vec![1].try_into().unwrap(), Perbill::from_percent(10)));
		assert_ok!(crate::OpenStaking::delegate(origin(dave), charlie.to_account_id(), 1_000 * OPEN));
		assert_ok!(crate::OpenStaking::delegate(origin(eve), charlie.to_account_id(), 500 * OPEN));
		assert_ok!(crate::OpenStaking::undelegate(origin(eve), charlie.to_account_id(), 500 * OPEN));
		assert_ok!(crate::OpenStaking::delegate(origin(bob), charlie.to_account_id(), 300 * OPEN));
		// Ferdie bonds (serving nothing) to be allowed to challenge.
		assert_ok!(crate::OpenStaking::bond_worker(origin(ferdie), 1_000 * OPEN, [0xfe; 32], Default::default(), Default::default(), Perbill::zero()));
		assert_ok!(crate::Attribution::deposit_escrow(origin(eve), 100 * OPEN));
		assert_ok!(invariants::check());

		// The output shares no bytes with the contributions, yet the claim says its first 40
		// bytes are contribution 0's.
		let output: &[u8] = b"An answer in the model's own words, sharing nothing with any record.";
		let fake = ev::SpanClaim { output_start: 0, len: 40, contribution: ContributionRef { datanet: 0, version: 1, index: 0 }, offset: 0 };
		let receipt = |nonce: u64| {
			let voucher = Voucher {
				payer: eve.to_account_id(),
				worker: charlie.to_account_id(),
				model: 1,
				model_version: 1,
				max_fee: 10 * OPEN,
				terms: {
					let m = pallet_models::Models::<Runtime>::get(1).unwrap();
					openledger_primitives::receipt::terms_hash(&m.split, m.pricing.per_request, m.pricing.per_1k_tokens)
				},
				nonce,
				expires_at: System::block_number() + 100,
				genesis: H256::from_slice(System::block_hash(0).as_ref()),
				request_hash: H256::repeat_byte(nonce as u8),
			};
			let payer_signature = eve.sign(&voucher.signing_payload()).into();
			let share = |index| Share { contribution: ContributionRef { datanet: 0, version: 1, index }, share: Perbill::from_percent(50) };
			let receipt = Receipt {
				voucher,
				payer_signature,
				prompt_tokens: 5,
				completion_tokens: 20,
				fee: OPEN,
				output_len: output.len() as u32,
				output_root: ev::content_root(output),
				claims_root: ev::claims_tree(&[fake]).root(),
				claims: 1,
				method: AttributionMethod::SpanMatch,
				attribution: vec![share(0), share(1)].try_into().unwrap(),
			};
			let worker_signature = key.sign(&receipt.signing_payload());
			SignedReceipt { receipt, worker_signature }
		};
		System::set_block_number(2);
		let (false_one, honest) = (receipt(1), receipt(2));
		let (false_id, honest_id) = (false_one.receipt.request_id(), honest.receipt.request_id());
		assert_ok!(crate::Attribution::submit_receipts(origin(charlie), vec![false_one, honest].try_into().unwrap()));
		assert_ok!(crate::OpenStaking::undelegate(origin(bob), charlie.to_account_id(), 300 * OPEN));
		assert!(pallet_attribution::Receipts::<Runtime>::contains_key(false_id) && pallet_attribution::Receipts::<Runtime>::contains_key(honest_id));
		assert_ok!(invariants::check());

		// The false receipt: Ferdie disputes contribution 0's share; judges are not asked.
		let disputed = ContributionRef { datanet: 0, version: 1, index: 0 };
		assert_noop!(crate::Attribution::challenge(origin(ferdie), false_id), pallet_attribution::Error::<Runtime>::SpanMatchIsProven);
		assert_ok!(crate::Attribution::challenge_share(origin(ferdie), false_id, disputed));
		// Until the verdict nobody backing Charlie can leave with their stake, nor join.
		assert_eq!(pallet_open_staking::OpenChallenges::<Runtime>::get(charlie.to_account_id()), Some((1, 2)), "frozen from the block the receipt settled");
		assert_noop!(
			crate::OpenStaking::delegate(origin(eve), charlie.to_account_id(), 100 * OPEN),
			pallet_open_staking::Error::<Runtime>::ChallengeOpen
		);
		let treasury0 = free(&TreasuryAccount::get());
		let eve0 = free(&eve.to_account_id());
		let held = |k: Sr25519Keyring| staking_held(&k.to_account_id());
		assert_eq!((held(charlie), held(dave), held(eve), held(bob)), (bond, 1_000 * OPEN, 500 * OPEN, 300 * OPEN));
		// The worker's only evidence is its claim, which the contribution's bytes refute.
		let (t0, to) = (ev::content_tree(texts[0]), ev::content_tree(output));
		let evidence = ev::SpanEvidence {
			index: 0,
			siblings: Default::default(),
			span: ev::SpanProof {
				claim: fake,
				output: ev::range_proof(&to, output, 0, 40).unwrap(),
				content: ev::range_proof(&t0, texts[0], 0, 40).unwrap(),
			},
		};
		assert_noop!(
			crate::Attribution::answer(origin(charlie), false_id, pallet_attribution::DisputeKind::Share(disputed), vec![evidence].try_into().unwrap())
				.map_err(|e| e.error),
			pallet_attribution::Error::<Runtime>::BytesDiffer
		);
		let deadline = pallet_attribution::Disputes::<Runtime>::get((charlie.to_account_id(), false_id, pallet_attribution::DisputeKind::Share(disputed)))
			.unwrap()
			.deadline;
		assert_eq!(deadline, 2 + crate::configs::attribution::ResponseWindow::get());
		System::set_block_number(deadline);
		crate::Attribution::on_idle(deadline, frame_support::weights::Weight::MAX);
		assert_eq!(pallet_open_staking::OpenChallenges::<Runtime>::get(charlie.to_account_id()), None);
		// 10 % of every stake that backed the receipt: Charlie's, Dave's, and Bob's though he
		// left after it settled; not Eve's, unbonding since before it.
		assert_eq!(held(charlie), bond - bond / 10);
		assert_eq!(held(dave), 900 * OPEN);
		assert_eq!(held(bob), 270 * OPEN, "left after the receipt: still slashed");
		assert_eq!(held(eve), 500 * OPEN, "left before the receipt: untouched");
		let slashed = bond / 10 + 100 * OPEN + 30 * OPEN;
		let reward = crate::configs::attribution::ChallengerReward::get();
		assert_eq!(free(&TreasuryAccount::get()), treasury0 + slashed - reward);
		assert_eq!(free(&eve.to_account_id()), eve0 + OPEN, "the payer gets exactly the fee back");
		assert_eq!(pallet_open_staking::Workers::<Runtime>::get(charlie.to_account_id()).unwrap().status, pallet_open_staking::WorkerStatus::Slashed);
		assert_ok!(invariants::check());

		// The honest receipt vests once the challenge window has passed (on_idle), and not before.
		let window = crate::configs::attribution::ChallengeWindow::get();
		let vest_at = pallet_attribution::UsedRequests::<Runtime>::get(honest_id).unwrap();
		assert_eq!(vest_at, 2 + window + 1);
		System::set_block_number(vest_at - 1);
		crate::Attribution::on_idle(vest_at - 1, frame_support::weights::Weight::MAX);
		assert_eq!(pallet_open_staking::PoolBalance::<Runtime>::get(charlie.to_account_id()), 0, "nothing vested yet");
		System::set_block_number(vest_at);
		crate::Attribution::on_idle(vest_at, frame_support::weights::Weight::MAX);
		assert!(!pallet_attribution::Receipts::<Runtime>::contains_key(honest_id));
		// Charlie's share entered its pool: 10 % commission, the rest by the stake bonded at
		// vesting (1800 : 900); Eve, no longer delegating, gets nothing.
		let accrued = System::events().iter().find_map(|e| match &e.event {
			RuntimeEvent::OpenStaking(pallet_open_staking::Event::RewardAccrued { total, commission, shared, .. }) => Some((*total, *commission, *shared)),
			_ => None,
		});
		let (worker_share, commission, shared) = accrued.expect("the worker share accrued to its pool");
		assert!(worker_share > 0 && commission == worker_share / 10 && shared == worker_share - commission);
		assert_ok!(invariants::check());
		let claim = |k: Sr25519Keyring| {
			let before = free(&k.to_account_id());
			let result = crate::OpenStaking::claim_staking_rewards(origin(k), charlie.to_account_id());
			(result, free(&k.to_account_id()) - before)
		};
		let (r, dave_part) = claim(dave);
		assert_ok!(r);
		assert!(dave_part.abs_diff(shared * 900 / 2_700) <= 2, "{dave_part}");
		let (r, charlie_part) = claim(charlie);
		assert_ok!(r);
		assert!(charlie_part.abs_diff(commission + shared * 1_800 / 2_700) <= 2, "{charlie_part}");
		assert!(claim(eve).0.is_err(), "nothing for a stake that left before");
		assert_ok!(invariants::check());
		let pot: AccountId = crate::configs::attribution::ATTRIBUTION_POT_ID.into_account_truncating();
		assert_eq!(free(&pot), EXISTENTIAL_DEPOSIT, "what is still owed is held, the rest of the pot is its deposit");
		assert_eq!(Balances::total_issuance(), TOTAL_SUPPLY);
		assert_ok!(invariants::check());
	});
}

/// The attribution pallet sees a model's earlier terms exactly while the registry keeps them
/// valid (`TermsGrace` blocks after each change), and not after.
#[test]
fn earlier_model_terms_count_only_within_their_grace() {
	use pallet_attribution::ModelTermsProvider;
	dev_ext().execute_with(|| {
		start_block(1);
		let alice = crate::RuntimeOrigin::signed(Sr25519Keyring::Alice.to_account_id());
		assert_ok!(crate::Models::register_base(alice.clone(), b"b".to_vec(), vec![], vec![], sp_core::H256::repeat_byte(1), vec![], Default::default(), sp_core::H256::zero()));
		let terms = || crate::configs::attribution::ModelsAdapter::terms(0, 1).expect("registered");
		assert!(terms().previous.is_empty());
		let first = terms();
		assert_ok!(crate::Models::set_pricing(alice, 0, pallet_models::Pricing { per_request: OPEN, per_1k_tokens: 0 }));
		assert_eq!(terms().per_request, OPEN);
		assert_eq!(terms().previous, vec![(first.split, first.per_request, first.per_1k_tokens)]);
		let grace: u32 = openledger_primitives::receipt::MAX_VOUCHER_LIFETIME_BLOCKS;
		System::set_block_number(1 + grace);
		assert_eq!(terms().previous.len(), 1, "still valid on the last block of its grace");
		System::set_block_number(2 + grace);
		assert!(terms().previous.is_empty(), "gone after it");
	});
}
