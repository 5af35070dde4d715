//! Validators: a set changed by governance (`pallet-validator-set`), sessions that hand it to Aura
//! and GRANDPA with each validator's registered session keys, and GRANDPA equivocation reports
//! (checked against the historical session record) that remove the offender.

use super::governance::ValidatorsOrigin;
use crate::{
	AccountId, Aura, BlockNumber, Historical, Runtime, RuntimeCall, RuntimeEvent,
	SessionKeys, ValidatorSet,
};
use frame_support::traits::{ConstU32, Get};
use pallet_session::historical as session_historical;
use sp_runtime::traits::ConvertInto;

crate::timed_period!(
	/// Sessions last an hour on public networks, 5 blocks on test chains. A validator set change
	/// (and new session keys) takes effect at the start of the session after the next one.
	SessionPeriod = real crate::HOURS, fast 5
);

/// The offset of the first session change: at block 0, so the periods above hold from genesis.
pub struct SessionOffset;
impl Get<BlockNumber> for SessionOffset {
	fn get() -> BlockNumber {
		0
	}
}

/// The past sessions whose validator sets are kept for equivocation proofs: a week of real
/// sessions. Older reports cannot be proven (and are too old to matter).
pub const KEPT_SESSIONS: u32 = 168;

/// Hands the validator set to the historical record, and prunes the record's older sessions.
pub struct SessionManager;
impl pallet_session::SessionManager<AccountId> for SessionManager {
	fn new_session(new_index: sp_staking::SessionIndex) -> Option<alloc::vec::Vec<AccountId>> {
		<session_historical::NoteHistoricalRoot<Runtime, ValidatorSet> as pallet_session::SessionManager<_>>::new_session(new_index)
	}
	fn new_session_genesis(new_index: sp_staking::SessionIndex) -> Option<alloc::vec::Vec<AccountId>> {
		<session_historical::NoteHistoricalRoot<Runtime, ValidatorSet> as pallet_session::SessionManager<_>>::new_session_genesis(new_index)
	}
	fn end_session(end_index: sp_staking::SessionIndex) {
		<session_historical::NoteHistoricalRoot<Runtime, ValidatorSet> as pallet_session::SessionManager<_>>::end_session(end_index)
	}
	fn start_session(start_index: sp_staking::SessionIndex) {
		<session_historical::NoteHistoricalRoot<Runtime, ValidatorSet> as pallet_session::SessionManager<_>>::start_session(start_index);
		if let Some(up_to) = start_index.checked_sub(KEPT_SESSIONS) {
			Historical::prune_up_to(up_to);
		}
	}
}

impl pallet_session::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type ValidatorId = AccountId;
	type ValidatorIdOf = ConvertInto;
	type ShouldEndSession = pallet_session::PeriodicSessions<SessionPeriod, SessionOffset>;
	type NextSessionRotation = pallet_session::PeriodicSessions<SessionPeriod, SessionOffset>;
	type SessionManager = SessionManager;
	type SessionHandler = <SessionKeys as sp_runtime::traits::OpaqueKeys>::KeyTypeIdProviders;
	type Keys = SessionKeys;
	type DisablingStrategy = ();
	type WeightInfo = pallet_session::weights::SubstrateWeight<Runtime>;
}

/// Validators are identified by their account alone: no stake backs them.
pub struct NoIdentification;
impl sp_runtime::traits::Convert<AccountId, Option<()>> for NoIdentification {
	fn convert(_: AccountId) -> Option<()> {
		Some(())
	}
}

impl session_historical::Config for Runtime {
	type FullIdentification = ();
	type FullIdentificationOf = NoIdentification;
}

impl pallet_authorship::Config for Runtime {
	type FindAuthor = pallet_session::FindAccountFromAuthorIndex<Self, Aura>;
	type EventHandler = ();
}

impl pallet_offences::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type IdentificationTuple = session_historical::IdentificationTuple<Self>;
	/// An offender leaves the validator set (down to its minimum).
	type OnOffenceHandler = ValidatorSet;
}

/// Accounts with registered session keys.
pub struct HasSessionKeys;
impl frame_support::traits::Contains<AccountId> for HasSessionKeys {
	fn contains(who: &AccountId) -> bool {
		pallet_session::NextKeys::<Runtime>::contains_key(who)
	}
}

#[cfg(feature = "runtime-benchmarks")]
pub struct ValidatorSetBenchmarkHelper;
#[cfg(feature = "runtime-benchmarks")]
impl pallet_validator_set::BenchmarkHelper<AccountId> for ValidatorSetBenchmarkHelper {
	fn register_keys(who: &AccountId) {
		// Distinct keys per account, written as `session.setKeys` would keep them.
		let raw: [u8; 32] = *who.as_ref();
		let keys = SessionKeys {
			aura: sp_consensus_aura::sr25519::AuthorityId::from(sp_core::sr25519::Public::from_raw(raw)),
			grandpa: sp_consensus_grandpa::AuthorityId::from(sp_core::ed25519::Public::from_raw(raw)),
		};
		pallet_session::NextKeys::<Runtime>::insert(who, keys);
	}
}

impl pallet_validator_set::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type ManagerOrigin = ValidatorsOrigin;
	type MaxValidators = ConstU32<{ super::MAX_AUTHORITIES }>;
	/// At least one validator with session keys stays.
	type MinValidators = ConstU32<1>;
	type HasKeys = HasSessionKeys;
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = ValidatorSetBenchmarkHelper;
	type WeightInfo = pallet_validator_set::weights::SubstrateWeight<Runtime>;
}

/// Unsigned equivocation reports are created by the node (GRANDPA) as bare extrinsics.
impl<C> frame_system::offchain::CreateTransactionBase<C> for Runtime
where
	RuntimeCall: From<C>,
{
	type RuntimeCall = RuntimeCall;
	type Extrinsic = crate::UncheckedExtrinsic;
}

impl<C> frame_system::offchain::CreateInherent<C> for Runtime
where
	RuntimeCall: From<C>,
{
	fn create_inherent(call: RuntimeCall) -> crate::UncheckedExtrinsic {
		crate::UncheckedExtrinsic::new_bare(call)
	}
}
