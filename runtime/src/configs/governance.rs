//! OpenGov as polkadot's runtimes have it: preimages, the scheduler, referenda on tracks voted with
//! conviction-locked OPEN, the treasury, and governable parameters. Tracks and origins live in
//! [`crate::governance`].

use super::{RuntimeBlockWeights, TreasuryAccount, TREASURY_PALLET_ID};
use crate::{
	currency::{MILLI_OPEN, OPEN},
	governance::{self, pallet_origins},
	AccountId, Balance, Balances, OriginCaller, Preimage, Referenda, Runtime, RuntimeCall,
	RuntimeEvent, RuntimeHoldReason, RuntimeOrigin, Scheduler, System, Treasury,
};
use frame_support::{
	dynamic_params::{dynamic_pallet_params, dynamic_params},
	parameter_types,
	traits::{
		fungible::HoldConsideration, tokens::UnityAssetBalanceConversion, ConstU32, EitherOf, EitherOfDiverse,
		EnsureOriginWithArg, EqualPrivilegeOnly, Get, LinearStoragePrice,
	},
	weights::Weight,
	PalletId,
};
use frame_system::{EnsureRoot, EnsureRootWithSuccess};
use sp_runtime::{traits::IdentityLookup, Perbill, Permill};

parameter_types! {
	pub MaximumSchedulerWeight: Weight = Perbill::from_percent(80) * RuntimeBlockWeights::get().max_block;
}

impl pallet_scheduler::Config for Runtime {
	type RuntimeOrigin = RuntimeOrigin;
	type RuntimeEvent = RuntimeEvent;
	type PalletsOrigin = OriginCaller;
	type RuntimeCall = RuntimeCall;
	type MaximumWeight = MaximumSchedulerWeight;
	/// Only root schedules named or anonymous calls directly; referenda schedule through the
	/// pallet's trait, not this origin.
	type ScheduleOrigin = EnsureRoot<AccountId>;
	type MaxScheduledPerBlock = ConstU32<50>;
	type WeightInfo = pallet_scheduler::weights::SubstrateWeight<Runtime>;
	type OriginPrivilegeCmp = EqualPrivilegeOnly;
	type Preimages = Preimage;
	type BlockNumberProvider = System;
}

parameter_types! {
	/// A preimage holds 1 OPEN plus 0.001 OPEN per byte from whoever notes it (a runtime of
	/// 1.5 MB: about 1,500 OPEN), given back when it is unnoted.
	pub const PreimageBaseDeposit: Balance = OPEN;
	pub const PreimageByteDeposit: Balance = MILLI_OPEN;
	pub const PreimageHoldReason: RuntimeHoldReason = RuntimeHoldReason::Preimage(pallet_preimage::HoldReason::Preimage);
}

impl pallet_preimage::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type WeightInfo = pallet_preimage::weights::SubstrateWeight<Runtime>;
	type Currency = Balances;
	type ManagerOrigin = EnsureRoot<AccountId>;
	type Consideration = HoldConsideration<
		AccountId,
		Balances,
		PreimageHoldReason,
		LinearStoragePrice<PreimageBaseDeposit, PreimageByteDeposit, Balance>,
	>;
}

// Referenda and vote locks: real periods on public networks, blocks on test chains.
crate::timed_period!(
	/// An undecided referendum times out after this.
	UndecidingTimeout = real 14 * crate::DAYS, fast 20
);
crate::timed_period!(
	/// Each conviction step locks a vote this long.
	VoteLockingPeriod = real 7 * crate::DAYS, fast 10
);

parameter_types! {
	/// Opening a referendum reserves 100 OPEN: refundable once it is approved or cancelled; kept
	/// reserved for good when it is rejected or times out, slashed when it is killed.
	pub const SubmissionDeposit: Balance = 100 * OPEN;
}

impl pallet_referenda::Config for Runtime {
	type WeightInfo = pallet_referenda::weights::SubstrateWeight<Runtime>;
	type RuntimeCall = RuntimeCall;
	type RuntimeEvent = RuntimeEvent;
	type Scheduler = Scheduler;
	type Currency = Balances;
	type SubmitOrigin = frame_system::EnsureSigned<AccountId>;
	/// Root or a referendum on the canceller track (deposits refunded).
	type CancelOrigin = EitherOfDiverse<EnsureRoot<AccountId>, pallet_origins::ReferendumCanceller>;
	/// Root or a referendum on the killer track (deposits slashed to the treasury).
	type KillOrigin = EitherOfDiverse<EnsureRoot<AccountId>, pallet_origins::ReferendumKiller>;
	/// Deposits of killed referenda go to the treasury.
	type Slash = Treasury;
	type Votes = Balance;
	type Tally = pallet_conviction_voting::TallyOf<Runtime>;
	type SubmissionDeposit = SubmissionDeposit;
	type MaxQueued = ConstU32<100>;
	type UndecidingTimeout = UndecidingTimeout;
	type AlarmInterval = ConstU32<1>;
	type Tracks = governance::TracksInfo;
	type Preimages = Preimage;
	type BlockNumberProvider = System;
}

impl pallet_conviction_voting::Config for Runtime {
	type WeightInfo = pallet_conviction_voting::weights::SubstrateWeight<Runtime>;
	type RuntimeEvent = RuntimeEvent;
	type Currency = Balances;
	type Polls = Referenda;
	/// Support is measured against the OPEN in circulation (the treasury's is not).
	type MaxTurnout = frame_support::traits::tokens::currency::ActiveIssuanceOf<Balances, AccountId>;
	type MaxVotes = ConstU32<512>;
	type VoteLockingPeriod = VoteLockingPeriod;
	type BlockNumberProvider = System;
	type VotingHooks = ();
}

impl pallet_origins::Config for Runtime {}

/// Spends up to this much per `treasury.spend` call dispatched by the treasurer track (a batch of
/// spends in one referendum is as many calls).
pub const MAX_TREASURER_SPEND: Balance = 1_000_000 * OPEN;

parameter_types! {
	pub const TreasuryPalletId: PalletId = TREASURY_PALLET_ID;
	pub const MaxBalance: Balance = Balance::MAX;
	/// Nothing of the treasury is ever burned: OPEN's supply only changes by explicit mint or burn.
	pub const NoBurn: Permill = Permill::zero();
}

crate::timed_period!(
	/// Approved spends become payable at the treasury's period boundaries.
	SpendPeriod = real crate::DAYS, fast 5
);
crate::timed_period!(
	/// A payable spend must be paid out within this.
	PayoutPeriod = real 30 * crate::DAYS, fast 50
);

/// Spend origins: root without limit, the treasurer track up to [`MAX_TREASURER_SPEND`].
pub struct TreasurerSpend;
impl<O: Into<Result<pallet_origins::Origin, O>> + From<pallet_origins::Origin> + Clone>
	frame_support::traits::EnsureOrigin<O> for TreasurerSpend
{
	type Success = Balance;
	fn try_origin(o: O) -> Result<Balance, O> {
		match o.clone().into() {
			Ok(pallet_origins::Origin::Treasurer) => Ok(MAX_TREASURER_SPEND),
			_ => Err(o),
		}
	}
	#[cfg(feature = "runtime-benchmarks")]
	fn try_successful_origin() -> Result<O, ()> {
		Ok(O::from(pallet_origins::Origin::Treasurer))
	}
}

impl pallet_treasury::Config for Runtime {
	type Currency = Balances;
	type RejectOrigin = EnsureRoot<AccountId>;
	type RuntimeEvent = RuntimeEvent;
	type SpendPeriod = SpendPeriod;
	type Burn = NoBurn;
	/// The treasury's account is the one that fees, forfeits and slashes already go to.
	type PalletId = TreasuryPalletId;
	type BurnDestination = ();
	type WeightInfo = pallet_treasury::weights::SubstrateWeight<Runtime>;
	type SpendFunds = ();
	type MaxApprovals = ConstU32<100>;
	type SpendOrigin = EitherOf<EnsureRootWithSuccess<AccountId, MaxBalance>, TreasurerSpend>;
	type AssetKind = ();
	type Beneficiary = AccountId;
	type BeneficiaryLookup = IdentityLookup<AccountId>;
	type Paymaster = PayFromTreasury;
	type BalanceConverter = UnityAssetBalanceConversion;
	type PayoutPeriod = PayoutPeriod;
	type BlockNumberProvider = System;
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = TreasuryBenchmarkHelper;
}

/// Pays treasury spends, never below the treasury's existential deposit: fees, forfeits and slashes
/// of any size must always be able to reach it.
pub struct PayFromTreasury;
impl frame_support::traits::tokens::Pay for PayFromTreasury {
	type Balance = Balance;
	type Beneficiary = AccountId;
	type AssetKind = ();
	type Id = ();
	type Error = sp_runtime::DispatchError;
	fn pay(who: &AccountId, _: (), amount: Balance) -> Result<(), Self::Error> {
		use frame_support::traits::{fungible::Mutate, tokens::Preservation};
		<Balances as Mutate<AccountId>>::transfer(&TreasuryAccount::get(), who, amount, Preservation::Preserve)?;
		Ok(())
	}
	fn check_payment(_: ()) -> frame_support::traits::tokens::PaymentStatus {
		frame_support::traits::tokens::PaymentStatus::Success
	}
	#[cfg(feature = "runtime-benchmarks")]
	fn ensure_successful(_: &AccountId, _: (), amount: Balance) {
		use frame_support::traits::fungible::Mutate;
		<Balances as Mutate<AccountId>>::mint_into(&TreasuryAccount::get(), amount).expect("benchmark mint");
	}
	#[cfg(feature = "runtime-benchmarks")]
	fn ensure_concluded(_: ()) {}
}

#[cfg(feature = "runtime-benchmarks")]
pub struct TreasuryBenchmarkHelper;
#[cfg(feature = "runtime-benchmarks")]
impl pallet_treasury::ArgumentsFactory<(), AccountId> for TreasuryBenchmarkHelper {
	fn create_asset_kind(_seed: u32) {}
	fn create_beneficiary(seed: [u8; 32]) -> AccountId {
		AccountId::new(seed)
	}
}

/// Knobs that were constants, governable on the parameters track. Each is read through a clamp
/// (see the models, datanets, staking and attribution configs), so that no referendum can set a
/// value that breaks the chain's rules (a zero bond, say).
#[dynamic_params(RuntimeParameters, pallet_parameters::Parameters::<Runtime>)]
pub mod dynamic_params {
	use super::*;

	#[dynamic_pallet_params]
	#[codec(index = 0)]
	pub mod models {
		/// Fee to register a model, to the treasury.
		#[codec(index = 0)]
		pub static RegistrationFee: Balance = 5 * OPEN;
		/// Fee to publish a model version, to the treasury.
		#[codec(index = 1)]
		pub static VersionFee: Balance = OPEN;
	}

	#[dynamic_pallet_params]
	#[codec(index = 1)]
	pub mod datanets {
		/// Held from a Datanet's owner for its record (the amount held is stored per Datanet).
		#[codec(index = 0)]
		pub static DatanetDeposit: Balance = 10 * OPEN;
	}

	#[dynamic_pallet_params]
	#[codec(index = 2)]
	pub mod staking {
		/// Least self-bond of an eligible worker.
		#[codec(index = 0)]
		pub static MinWorkerBond: Balance = 1_000 * OPEN;
		/// Least delegation.
		#[codec(index = 1)]
		pub static MinDelegation: Balance = 10 * OPEN;
	}

	#[dynamic_pallet_params]
	#[codec(index = 3)]
	pub mod attribution {
		/// The least fee of a receipt.
		#[codec(index = 0)]
		pub static MinReceiptFee: Balance = OPEN / 100_000;
		/// The bond of a span dispute (`attribution.challengeShare`, `attribution.proveOmission`),
		/// recorded with each dispute when it opens.
		#[codec(index = 1)]
		pub static DisputeBond: Balance = 100 * OPEN;
	}
}

#[cfg(feature = "runtime-benchmarks")]
impl Default for RuntimeParameters {
	fn default() -> Self {
		RuntimeParameters::Models(dynamic_params::models::Parameters::RegistrationFee(
			dynamic_params::models::RegistrationFee,
			Some(5 * OPEN),
		))
	}
}

/// `P`, kept within `[Min, Max]` whatever governance stored.
pub struct Clamp<P, Min, Max>(core::marker::PhantomData<(P, Min, Max)>);
impl<P: Get<Balance>, Min: Get<Balance>, Max: Get<Balance>> Get<Balance> for Clamp<P, Min, Max> {
	fn get() -> Balance {
		P::get().clamp(Min::get(), Max::get())
	}
}

/// Parameters are set by root or by a referendum on the parameters track.
pub type ParametersOrigin = EitherOfDiverse<EnsureRoot<AccountId>, pallet_origins::ParametersAdmin>;

/// Every parameter key takes [`ParametersOrigin`].
pub struct DynamicParameterOrigin;
impl EnsureOriginWithArg<RuntimeOrigin, RuntimeParametersKey> for DynamicParameterOrigin {
	type Success = ();
	fn try_origin(origin: RuntimeOrigin, _key: &RuntimeParametersKey) -> Result<(), RuntimeOrigin> {
		<ParametersOrigin as frame_support::traits::EnsureOrigin<RuntimeOrigin>>::try_origin(origin).map(|_| ())
	}
	#[cfg(feature = "runtime-benchmarks")]
	fn try_successful_origin(_key: &RuntimeParametersKey) -> Result<RuntimeOrigin, ()> {
		Ok(RuntimeOrigin::root())
	}
}

impl pallet_parameters::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type RuntimeParameters = RuntimeParameters;
	type AdminOrigin = DynamicParameterOrigin;
	/// The release's benchmarked weight (its `SubstrateWeight` is private; `()` is the same
	/// measurement priced with RocksDB's slower reads and writes).
	type WeightInfo = ();
}

/// Verdicts on influence and retrieval receipts, and slashes: root or the disputes track.
pub type DisputesOrigin = EitherOfDiverse<EnsureRoot<AccountId>, pallet_origins::DisputeResolver>;
/// The validator set: root or the validators track.
pub type ValidatorsOrigin = EitherOfDiverse<EnsureRoot<AccountId>, pallet_origins::ValidatorAdmin>;
