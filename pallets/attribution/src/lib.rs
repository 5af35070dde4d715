//! # Attribution pallet: paid inference, signed receipts, fee split, rewards, challenges
//!
//! Every paid inference leaves a receipt on chain saying which model, which worker and which
//! Datanet contributions shaped the answer, and the fee flows to all of them.
//!
//! ## Payment
//! - [`Pallet::deposit_escrow`]: a payer holds OPEN in escrow ([`HoldReason::Escrow`]).
//!   [`Pallet::request_escrow_withdrawal`] + [`Pallet::withdraw_escrow`] take the unspent part
//!   back after [`Config::EscrowWithdrawDelay`] (receipts can still be settled against it until
//!   then, so a worker that served a voucher gets paid).
//! - For each request the payer signs a [`Voucher`] off chain (worker, model + version, max fee,
//!   nonce, expiry). Its hash is the request id.
//!
//! ## Receipts
//! [`Pallet::submit_receipts`]: a worker submits a batch of [`SignedReceipt`]s (the one type in
//! `openledger_primitives::receipt`). Each is checked on its own — unused request id, the
//! submitting worker is the voucher's, not expired, fee ≤ max fee, payer signature, worker
//! eligible and serving the model with the receipt signed by its registered signing key, model
//! version exists and is not deprecated, the voucher's terms are the model's (or its previous
//! ones within the grace period after a change) and the fee is within their price, shares ≤ 100 %, every contribution is a leaf of a
//! snapshot in the model version's lineage, escrow covers the fee — and is settled, or rejected
//! with [`Event::ReceiptRejected`] naming the [`RejectReason`], changing nothing.
//!
//! Settlement moves the fee from the payer's escrow into the pallet's pot, where it stays held
//! ([`HoldReason::Owed`]) until it is paid out, and splits it with [`split::split_fee`] (owner,
//! worker, treasury, attributed contributors, the lineage's Datanet owners for the unattributed
//! data part, the treasury for any rest). The split is recorded with the receipt as its
//! **pending** payouts: nobody can claim them while the receipt can still be challenged.
//!
//! ## Vesting and pruning
//! A receipt's payouts **vest** when it is pruned: once its voucher has expired and its
//! challenge window has passed (in the runtime the voucher lifetime is at most the window, so
//! that is `ChallengeWindow + 1` blocks after settlement). Pruning runs in `on_idle` under a
//! [`frame_support::weights::WeightMeter`], block by block from [`PruneCursor`]: each receipt's
//! payouts accrue to [`Rewards`] (and the per-contribution and per-Datanet statistics; the
//! worker's share to its reward pool in the staking pallet, shared by the stake bonded at that
//! moment), then its record and used request id are removed. A receipt whose challenge is
//! still open is kept, unvested, until the challenge is judged.
//! [`Pallet::claim_rewards`] pays vested rewards out; a worker's share is claimed from the
//! staking pallet (commission, then pro rata to stake), paid from this pot via
//! [`Pallet::pay_owed`]. No OPEN is created or destroyed on
//! this path: `try_state` checks that the pot holds on hold exactly the pending payouts of every
//! receipt plus every vested, unclaimed reward.
//!
//! ## Span disputes: settled by proof, with no judge
//! A span-match receipt commits to its output (`output_len`, `output_root`: a content root, see
//! `openledger_primitives::evidence`) and to its span claims (`claims_root`, `claims`). Within
//! [`Config::ChallengeWindow`] blocks of settlement anyone but the receipt's worker may, holding
//! [`Config::DisputeBond`] (as it is when the dispute opens: the dispute records its bond, so a
//! governance change of the parameter never alters what an open dispute holds or pays):
//! - [`Pallet::challenge_share`]: dispute one credited contribution's share;
//! - [`Pallet::prove_omission`]: prove that output bytes (at least `MIN_SPAN_BYTES`) occur in a
//!   contribution of the model version's lineage that the receipt does not credit — checked at
//!   once against the output root and the contribution's content root.
//!
//! Each (receipt, contribution) pair can be disputed once at a time, by its own bond, so no
//! dispute (a colluder's, or a mistaken one) shields a receipt from another; omissions are
//! refused against a receipt that already credits `MAX_SHARES` contributions (it had no room),
//! and must be at least `MIN_OMISSION_BYTES` long.
//!
//! Anyone (the worker's own daemon does it automatically) may [`Pallet::answer`] within
//! [`Config::ResponseWindow`] blocks with committed claims proven byte for byte: for a share, the
//! contribution's spans must cover enough of the output to justify it (`share × output_len ≤
//! covered bytes × 10⁹`); for an omission, credited spans must leave no run of
//! `MIN_OMISSION_BYTES` of the proven bytes uncovered. A valid answer gives that dispute's bond
//! to the worker and closes only that dispute; evidence that does not hold is refused with a
//! typed error and changes nothing. With no valid answer by the deadline, `on_idle` upholds the
//! dispute: the worker (and pro rata its delegators) is slashed by [`Config::SlashFraction`],
//! that receipt's fee — and nothing else — goes back to the payer, and the challenger gets its
//! bond back and up to [`Config::ChallengerReward`], at most the worker's own slashed stake (so
//! a worker cannot profit from disputing itself with its delegators' stake). Once a receipt is
//! reversed, its other open disputes close at their deadlines with their bonds returned
//! (`DisputeMoot`): a receipt is slashed for once.
//!
//! ## Influence and retrieval disputes: judged by governance
//! Influence and retrieval attributions cannot be recomputed on chain. Such a receipt is
//! disputed with [`Pallet::challenge`] (by a bonded account) and judged once by
//! [`Config::ResolveOrigin`] ([`Verdict`]): false slashes as above, refunds the fee, returns the
//! bond and pays [`Config::ChallengerReward`] from the treasury; valid forfeits the bond to the
//! treasury. Unjudged after [`Config::ResolveTimeout`], anyone may close it as valid
//! ([`Pallet::expire_challenge`]). A judged receipt cannot be challenged again.
#![cfg_attr(not(feature = "std"), no_std)]

extern crate alloc;

pub use pallet::*;
pub use weights::WeightInfo;

pub mod migrations;
pub mod split;
pub mod traits;
pub mod weights;

#[cfg(feature = "runtime-benchmarks")]
mod benchmarking;
#[cfg(test)]
mod mock;
#[cfg(test)]
mod tests;

use alloc::vec::Vec;
use frame_support::traits::fungible::{Inspect, Mutate, MutateHold};
pub use openledger_primitives::evidence::{DisputeKind, EvidenceError, SpanEvidence, SpanProof, MAX_EVIDENCE_SPANS};
pub use openledger_primitives::receipt::{
	AttributionMethod, ContributionRef, Receipt, RequestId, Share, SignedReceipt, Voucher, MAX_SHARES,
};
pub use traits::*;

/// Balance type of the pallet's currency.
pub type BalanceOf<T> =
	<<T as Config>::Currency as Inspect<<T as frame_system::Config>::AccountId>>::Balance;

/// The signed receipt as this pallet's configuration types it.
pub type SignedReceiptOf<T> = SignedReceipt<
	<T as frame_system::Config>::AccountId,
	BalanceOf<T>,
	frame_system::pallet_prelude::BlockNumberFor<T>,
	<T as Config>::OffchainSignature,
>;

/// How many consecutive blocks a receipt's pruning may spill over to when its block's queue is
/// full: `MaxPrunePerBlock × PRUNE_SPILL` receipts can share an expiry block.
pub const PRUNE_SPILL: u32 = 8;

/// How many consecutive blocks a span dispute's deadline may move to when its block's queue is
/// full: `MaxDisputesPerBlock × DEADLINE_SPILL` disputes can fall due around one block.
pub const DEADLINE_SPILL: u32 = 64;

/// Most lineage entries of a model version the pallet records payouts for; `integrity_test`
/// checks that the model registry's bound is not above it.
pub const MAX_LINEAGE_PAYOUTS: u32 = 32;

/// Most payouts recorded per receipt: attributed contributions, lineage Datanets, owner, worker,
/// treasury.
pub type MaxPayouts = frame_support::traits::ConstU32<{ MAX_SHARES + MAX_LINEAGE_PAYOUTS + 3 }>;

/// The most payouts a receipt can have with the configured model registry (every share, every
/// lineage Datanet, owner, worker, treasury): what the weights are charged for.
pub fn max_payouts<T: Config>() -> u32 {
	MAX_SHARES + T::Models::max_lineage().min(MAX_LINEAGE_PAYOUTS) + 3
}

#[frame_support::pallet]
pub mod pallet {
	use super::*;
	use codec::{Decode, DecodeWithMemTracking, Encode, MaxEncodedLen};
	use frame_support::{
		dispatch::WithPostDispatchInfo,
		pallet_prelude::*,
		traits::{
			fungible::InspectHold,
			tokens::{Fortitude, Precision, Preservation, Restriction},
		},
		PalletId,
	};
	use frame_system::pallet_prelude::*;
	use openledger_primitives::{DatanetId, ModelId, ModelVersion};
	use sp_runtime::{
		traits::{AccountIdConversion, IdentifyAccount, One, SaturatedConversion, Saturating, Verify, Zero},
		Perbill,
	};

	/// 2: span disputes record their bond ([`migrations::v2`]).
	pub const STORAGE_VERSION: StorageVersion = StorageVersion::new(2);

	#[pallet::pallet]
	#[pallet::storage_version(STORAGE_VERSION)]
	pub struct Pallet<T>(_);

	#[pallet::config]
	pub trait Config: frame_system::Config {
		/// The overarching event type.
		type RuntimeEvent: From<Event<Self>> + IsType<<Self as frame_system::Config>::RuntimeEvent>;
		/// OPEN.
		type Currency: Mutate<Self::AccountId> + MutateHold<Self::AccountId, Reason = Self::RuntimeHoldReason>;
		/// The overarching hold reason.
		type RuntimeHoldReason: From<HoldReason>;
		/// Signature of payers over vouchers (the chain's account signature).
		type OffchainSignature: Verify<Signer = Self::SigningPublicKey> + Parameter + MaxEncodedLen;
		/// Public key of payers.
		type SigningPublicKey: IdentifyAccount<AccountId = Self::AccountId>;
		/// Model registry.
		type Models: ModelTermsProvider<Self::AccountId>;
		/// Datanet snapshots.
		type Contributions: ContributionResolver<Self::AccountId>;
		/// Worker staking.
		type Workers: WorkerRegistry<Self::AccountId, BalanceOf<Self>, BlockNumberFor<Self>>;
		/// Id of the pot that holds settled fees until they are claimed. The pot must exist
		/// (endowed with the existential deposit at genesis).
		#[pallet::constant]
		type PotId: Get<PalletId>;
		/// The treasury.
		type Treasury: Get<Self::AccountId>;
		/// Blocks between asking for escrow back and getting it.
		#[pallet::constant]
		type EscrowWithdrawDelay: Get<BlockNumberFor<Self>>;
		/// Blocks after settlement during which a receipt can be challenged.
		#[pallet::constant]
		type ChallengeWindow: Get<BlockNumberFor<Self>>;
		/// Held from the challenger of an influence or retrieval receipt ([`Pallet::challenge`]).
		#[pallet::constant]
		type ChallengeBond: Get<BalanceOf<Self>>;
		/// Held from the challenger of a span dispute ([`Pallet::challenge_share`],
		/// [`Pallet::prove_omission`]) when it opens, and recorded with it (a governable
		/// parameter in the runtime).
		#[pallet::constant]
		type DisputeBond: Get<BalanceOf<Self>>;
		/// Paid to a successful challenger from the treasury (best effort).
		#[pallet::constant]
		type ChallengerReward: Get<BalanceOf<Self>>;
		/// Share of a worker's (and its delegators') stake slashed for a false receipt.
		#[pallet::constant]
		type SlashFraction: Get<Perbill>;
		/// Resolves challenges.
		type ResolveOrigin: EnsureOrigin<Self::RuntimeOrigin>;
		/// Blocks after a receipt's challenge window within which [`Config::ResolveOrigin`] must
		/// judge its challenge; later, anyone may close it as valid
		/// ([`Pallet::expire_challenge`]). Bounds how long a challenge freezes stake.
		#[pallet::constant]
		type ResolveTimeout: Get<BlockNumberFor<Self>>;
		/// Blocks a worker has to answer a span dispute with evidence; unanswered, the challenge
		/// is upheld at the deadline.
		#[pallet::constant]
		type ResponseWindow: Get<BlockNumberFor<Self>>;
		/// Most span disputes due in one block (a dispute's deadline moves up to
		/// `DEADLINE_SPILL` blocks later when its block is full).
		#[pallet::constant]
		type MaxDisputesPerBlock: Get<u32>;
		/// Most receipts in one `submit_receipts`.
		#[pallet::constant]
		type MaxReceiptsPerBatch: Get<u32>;
		/// Most request ids pruned in one block (and so settled per expiry block).
		#[pallet::constant]
		type MaxPrunePerBlock: Get<u32>;
		/// A voucher may expire at most this many blocks after its receipt settles: its request
		/// id and record are kept until then, so this bounds how long they stay in storage.
		#[pallet::constant]
		type MaxVoucherLifetime: Get<BlockNumberFor<Self>>;
		/// The least fee a receipt may charge (each settled receipt takes storage until pruned).
		#[pallet::constant]
		type MinFee: Get<BalanceOf<Self>>;
		/// How many blocks pruning (in `on_idle`) may fall behind before new receipts are
		/// refused ([`RejectReason::PruningBehind`]): when blocks stay full, receipts wait
		/// instead of piling up unpruned.
		#[pallet::constant]
		type MaxPruneLag: Get<BlockNumberFor<Self>>;
		/// Weight information for extrinsics in this pallet.
		type WeightInfo: WeightInfo;
		/// Sets up models, snapshots and workers for the benchmarks.
		#[cfg(feature = "runtime-benchmarks")]
		type BenchmarkHelper: BenchmarkHelper<Self::AccountId, Self::OffchainSignature, Self::SigningPublicKey>;
	}

	/// Reasons for holding OPEN.
	#[pallet::composite_enum]
	pub enum HoldReason {
		/// Inference escrow of a payer.
		#[codec(index = 0)]
		Escrow,
		/// Bond of a challenger.
		#[codec(index = 1)]
		ChallengeBond,
		/// Held on the pot: settled fees not yet vested, and vested rewards not yet claimed.
		#[codec(index = 2)]
		Owed,
	}

	/// Why a receipt was not settled.
	#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
	pub enum RejectReason {
		/// The request id was already settled.
		AlreadyUsed,
		/// The submitter is not the voucher's worker.
		WrongWorker,
		/// The voucher has expired.
		Expired,
		/// The fee exceeds the voucher's maximum.
		FeeAboveVoucher,
		/// The payer did not sign the voucher.
		BadPayerSignature,
		/// The worker is not eligible or does not serve the model.
		NotServing,
		/// The receipt is not signed by the worker's registered signing key.
		BadWorkerSignature,
		/// No such model version.
		UnknownModel,
		/// The model version is deprecated.
		DeprecatedModel,
		/// Shares sum above 100 %.
		SharesExceed,
		/// A contribution is not a leaf of a snapshot in the model's lineage.
		BadAttribution,
		/// The payer's escrow does not cover the fee.
		InsufficientEscrow,
		/// Too many receipts expire around the same block; submit it later.
		PruneQueueFull,
		/// The voucher is for another chain (its genesis hash is not this chain's).
		WrongChain,
		/// The voucher expires further ahead than [`Config::MaxVoucherLifetime`].
		ExpiryTooFar,
		/// The fee is below [`Config::MinFee`].
		FeeTooLow,
		/// Pruning is more than [`Config::MaxPruneLag`] blocks behind (blocks have been full):
		/// submit it later.
		PruningBehind,
		/// The voucher names terms (price and split) the model does not have, nor had within
		/// the grace period.
		TermsChanged,
		/// The fee is above the model's price for the receipt's tokens (under the voucher's
		/// terms).
		FeeAbovePrice,
	}

	/// The judgement of a challenged receipt.
	#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
	pub enum Verdict {
		/// The receipt is right: the challenger's bond goes to the treasury.
		Valid,
		/// The receipt is false: the worker is slashed, the receipt's unclaimed payouts go back
		/// to the payer, the challenger gets the bond back and a reward.
		False,
	}

	/// A payer's pending escrow withdrawal.
	#[derive(Clone, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
	pub struct Withdrawal<Balance, BlockNumber> {
		pub amount: Balance,
		pub unlock_at: BlockNumber,
	}

	/// Why a payout of a receipt is owed.
	#[derive(Clone, Copy, Encode, Decode, DecodeWithMemTracking, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
	pub enum PayoutKind {
		/// The model owner's part.
		Owner,
		/// The worker's part (shared with its delegators when claimed).
		Worker,
		/// The treasury's part, with rounding and unattributed data without a lineage.
		Treasury,
		/// An attributed contribution's part of the data share.
		Contribution(ContributionRef),
		/// A lineage Datanet owner's part of the unattributed data share.
		Datanet(DatanetId),
	}

	/// One pending payout of a receipt.
	#[derive(Clone, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
	pub struct Payout<AccountId, Balance> {
		pub who: AccountId,
		pub amount: Balance,
		pub kind: PayoutKind,
	}

	/// A settled receipt, kept until it can no longer be challenged; its payouts vest when it is
	/// pruned.
	#[derive(CloneNoBound, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEqNoBound, EqNoBound, RuntimeDebugNoBound)]
	#[scale_info(skip_type_params(T))]
	#[codec(mel_bound())]
	pub struct ReceiptRecord<T: Config> {
		pub payer: T::AccountId,
		pub worker: T::AccountId,
		pub model: ModelId,
		pub model_version: ModelVersion,
		pub fee: BalanceOf<T>,
		pub prompt_tokens: u32,
		pub completion_tokens: u32,
		/// Bytes of the output.
		pub output_len: u32,
		/// Content root of the output.
		pub output_root: sp_core::H256,
		/// Root over the span claims, and their number.
		pub claims_root: sp_core::H256,
		pub claims: u32,
		pub method: AttributionMethod,
		pub attribution: BoundedVec<Share, ConstU32<MAX_SHARES>>,
		/// The fee's split, pending until the receipt vests (they sum to `fee`); emptied when a
		/// false receipt is reversed.
		pub payouts: BoundedVec<Payout<T::AccountId, BalanceOf<T>>, MaxPayouts>,
		pub settled_at: BlockNumberFor<T>,
		/// The open governance challenge (influence and retrieval receipts), if any.
		pub challenger: Option<T::AccountId>,
		/// Open span disputes (span-match receipts).
		pub disputes: u32,
		/// The verdict, once judged: a receipt is judged once.
		pub verdict: Option<Verdict>,
		/// Its pruning block passed while its challenge was open: it vests (or not) and is
		/// removed when the challenge is judged.
		pub overdue: bool,
	}

	/// An open span dispute: the worker must answer by `deadline` (inclusive).
	#[derive(Clone, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
	pub struct Dispute<AccountId, BlockNumber, Balance> {
		/// Who holds the bond.
		pub challenger: AccountId,
		pub deadline: BlockNumber,
		/// The bond held from the challenger for this dispute.
		pub bond: Balance,
	}

	/// How a governance challenge ends.
	#[derive(Clone, Copy, PartialEq, Eq, RuntimeDebug)]
	pub(crate) enum Outcome {
		/// [`Config::ResolveOrigin`]'s verdict.
		Judged(Verdict),
		/// Unjudged past the resolve timeout: stands as valid, bond returned.
		Expired,
	}

	/// Usage and revenue of a model.
	#[derive(Clone, Copy, Default, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
	pub struct Usage<Balance> {
		pub requests: u64,
		pub tokens: u64,
		pub revenue: Balance,
	}

	/// Earnings of an account.
	#[derive(Clone, Copy, Default, Encode, Decode, MaxEncodedLen, TypeInfo, PartialEq, Eq, RuntimeDebug)]
	pub struct Earnings<Balance> {
		/// Ever vested (claimable once vested).
		pub accrued: Balance,
		/// Ever claimed.
		pub claimed: Balance,
		/// Payouts of settled receipts that have not vested yet (their challenge window is open).
		pub pending: Balance,
	}

	/// Escrow withdrawals waiting for their delay.
	#[pallet::storage]
	pub type Withdrawals<T: Config> =
		StorageMap<_, Blake2_128Concat, T::AccountId, Withdrawal<BalanceOf<T>, BlockNumberFor<T>>>;

	/// Settled receipts (until pruned).
	#[pallet::storage]
	pub type Receipts<T: Config> = StorageMap<_, Identity, RequestId, ReceiptRecord<T>>;

	/// Request ids that may not be settled again, until they are pruned at the stored block.
	#[pallet::storage]
	pub type UsedRequests<T: Config> = StorageMap<_, Identity, RequestId, BlockNumberFor<T>>;

	/// Request ids to prune (and vest) at each block.
	#[pallet::storage]
	pub type PruneQueue<T: Config> =
		StorageMap<_, Twox64Concat, BlockNumberFor<T>, BoundedVec<RequestId, T::MaxPrunePerBlock>, ValueQuery>;

	/// The first block whose prune queue `on_idle` has not finished.
	#[pallet::storage]
	pub type PruneCursor<T: Config> = StorageValue<_, BlockNumberFor<T>, ValueQuery>;

	/// Open span disputes, by worker (so a worker finds those it must answer), request id and
	/// what is disputed (a contribution's share, or an omission of given bytes).
	#[pallet::storage]
	pub type Disputes<T: Config> = StorageNMap<
		_,
		(
			NMapKey<Blake2_128Concat, T::AccountId>,
			NMapKey<Identity, RequestId>,
			NMapKey<Blake2_128Concat, DisputeKind>,
		),
		Dispute<T::AccountId, BlockNumberFor<T>, BalanceOf<T>>,
	>;

	/// Span disputes whose answer deadline is each block (removed when answered).
	#[pallet::storage]
	pub type DisputeDeadlines<T: Config> = StorageMap<
		_,
		Twox64Concat,
		BlockNumberFor<T>,
		BoundedVec<(RequestId, DisputeKind), T::MaxDisputesPerBlock>,
		ValueQuery,
	>;

	/// The first block whose dispute deadlines `on_idle` has not enforced.
	#[pallet::storage]
	pub type DeadlineCursor<T: Config> = StorageValue<_, BlockNumberFor<T>, ValueQuery>;

	/// Accrued, unclaimed rewards (owners, contributors, Datanet owners, treasury).
	#[pallet::storage]
	pub type Rewards<T: Config> = StorageMap<_, Blake2_128Concat, T::AccountId, BalanceOf<T>, ValueQuery>;

	/// Earnings per account.
	#[pallet::storage]
	pub type AccountEarnings<T: Config> =
		StorageMap<_, Blake2_128Concat, T::AccountId, Earnings<BalanceOf<T>>, ValueQuery>;

	/// Earnings per contribution reference.
	#[pallet::storage]
	pub type ContributionEarnings<T: Config> =
		StorageMap<_, Blake2_128Concat, ContributionRef, BalanceOf<T>, ValueQuery>;

	/// Earnings of each Datanet (its contributors' and its owner's).
	#[pallet::storage]
	pub type DatanetEarnings<T: Config> = StorageMap<_, Twox64Concat, DatanetId, BalanceOf<T>, ValueQuery>;

	/// Usage and revenue of each model.
	#[pallet::storage]
	pub type ModelUsage<T: Config> = StorageMap<_, Twox64Concat, ModelId, Usage<BalanceOf<T>>, ValueQuery>;

	#[pallet::event]
	#[pallet::generate_deposit(pub(super) fn deposit_event)]
	pub enum Event<T: Config> {
		/// OPEN entered a payer's escrow.
		EscrowDeposited { payer: T::AccountId, amount: BalanceOf<T> },
		/// A payer asked for escrow back; it can be withdrawn at `unlock_at`.
		EscrowWithdrawalRequested { payer: T::AccountId, amount: BalanceOf<T>, unlock_at: BlockNumberFor<T> },
		/// Escrow was released to the payer.
		EscrowWithdrawn { payer: T::AccountId, amount: BalanceOf<T> },
		/// A receipt was settled and its fee split.
		ReceiptSettled { request_id: RequestId, worker: T::AccountId, payer: T::AccountId, model: ModelId, fee: BalanceOf<T> },
		/// A receipt was rejected; nothing changed for it.
		ReceiptRejected { request_id: RequestId, worker: T::AccountId, reason: RejectReason },
		/// A receipt's payouts vested (claimable from now on) and its record was pruned.
		ReceiptVested { request_id: RequestId },
		/// Rewards were paid out.
		RewardsClaimed { who: T::AccountId, amount: BalanceOf<T> },
		/// A receipt was challenged.
		Challenged { request_id: RequestId, challenger: T::AccountId },
		/// A credited contribution's share was disputed; the worker must answer by `deadline`.
		ShareChallenged { request_id: RequestId, challenger: T::AccountId, contribution: ContributionRef, deadline: BlockNumberFor<T> },
		/// Output bytes were proven to occur in an uncredited contribution; the worker must show
		/// by `deadline` that its credited spans cover them.
		OmissionProved {
			request_id: RequestId,
			challenger: T::AccountId,
			contribution: ContributionRef,
			output_start: u32,
			len: u32,
			deadline: BlockNumberFor<T>,
		},
		/// A span dispute was answered with valid evidence: the bond went to the worker.
		ChallengeAnswered { request_id: RequestId, dispute: DisputeKind, worker: T::AccountId, bond: BalanceOf<T> },
		/// A span dispute reached its deadline after another dispute had reversed the receipt:
		/// the bond went back, nobody was slashed again.
		DisputeMoot { request_id: RequestId, dispute: DisputeKind, challenger: T::AccountId },
		/// A challenge was upheld: the worker was slashed and `refunded` went back to the payer.
		ChallengeUpheld { request_id: RequestId, worker: T::AccountId, refunded: BalanceOf<T> },
		/// A challenge was rejected and the bond forfeited.
		ChallengeRejected { request_id: RequestId, challenger: T::AccountId },
		/// A challenge went unjudged past the resolve timeout: the receipt stands, the bond went
		/// back to the challenger.
		ChallengeExpired { request_id: RequestId, challenger: T::AccountId },
	}

	#[pallet::error]
	pub enum Error<T> {
		/// Nothing in escrow to withdraw, or less than asked.
		InsufficientEscrow,
		/// No withdrawal was requested.
		NoWithdrawal,
		/// The withdrawal delay (or a challenge's resolve timeout) has not passed.
		TooEarly,
		/// Nothing to claim.
		NothingToClaim,
		/// No such receipt (or already pruned).
		UnknownReceipt,
		/// The challenge window has closed.
		WindowClosed,
		/// The receipt is already challenged.
		AlreadyChallenged,
		/// The receipt is not challenged.
		NotChallenged,
		/// Only accounts with bonded stake may challenge.
		NotBonded,
		/// The receipt was judged already.
		AlreadyJudged,
		/// A worker cannot challenge its own receipt.
		OwnReceipt,
		/// Zero amount.
		ZeroAmount,
		/// A span-match receipt is disputed by proof (`challenge_share`, `prove_omission`), not
		/// by a judge.
		SpanMatchIsProven,
		/// Only span-match receipts can be disputed by proof.
		NotSpanMatch,
		/// The receipt does not credit that contribution.
		NotCredited,
		/// The receipt credits that contribution already (dispute its share instead).
		AlreadyCredited,
		/// The contribution is not in a snapshot of the model version's lineage.
		NotInLineage,
		/// No such contribution (leaf of a snapshot).
		UnknownContribution,
		/// No evidence given.
		NoEvidence,
		/// Evidence for another contribution than the disputed one.
		WrongContribution,
		/// A span is shorter than the minimum.
		SpanTooShort,
		/// A span is longer than one claim may be.
		SpanTooLong,
		/// An output proof is not under the receipt's output root.
		BadOutputProof,
		/// A contribution proof is not under the contribution's content root.
		BadContentProof,
		/// A range lies outside its content, or its proof's chunks are not the range's.
		OutOfRange,
		/// The output bytes differ from the contribution's.
		BytesDiffer,
		/// A claim is not among the receipt's committed claims.
		NotCommitted,
		/// The proven spans do not justify the disputed share.
		ShareNotJustified,
		/// The proven spans leave a run of the omitted bytes uncovered.
		OmissionNotCovered,
		/// The answer deadline has passed.
		DeadlinePassed,
		/// Too many disputes are due around the same block; try later.
		DisputeQueueFull,
		/// The receipt credits the most contributions a receipt can: an omission cannot be
		/// proven against it.
		ReceiptFull,
		/// An omission must span at least `MIN_OMISSION_BYTES` bytes.
		OmissionTooShort,
	}

	impl<T> From<EvidenceError> for Error<T> {
		fn from(e: EvidenceError) -> Self {
			match e {
				EvidenceError::SpanTooShort => Error::SpanTooShort,
				EvidenceError::SpanTooLong => Error::SpanTooLong,
				EvidenceError::BadOutputProof => Error::BadOutputProof,
				EvidenceError::BadContentProof => Error::BadContentProof,
				EvidenceError::OutOfRange => Error::OutOfRange,
				EvidenceError::BytesDiffer => Error::BytesDiffer,
				EvidenceError::NotCommitted => Error::NotCommitted,
			}
		}
	}

	#[pallet::hooks]
	impl<T: Config> Hooks<BlockNumberFor<T>> for Pallet<T> {
		/// Prunes (and vests) matured receipts with the block's leftover weight.
		fn on_idle(now: BlockNumberFor<T>, limit: Weight) -> Weight {
			let mut meter = frame_support::weights::WeightMeter::with_limit(limit);
			Self::enforce_deadlines(now, &mut meter);
			Self::prune(now, &mut meter);
			meter.consumed()
		}

		fn integrity_test() {
			assert!(T::MaxPrunePerBlock::get() > 0, "MaxPrunePerBlock must be positive");
			assert!(
				T::Models::max_lineage() <= MAX_LINEAGE_PAYOUTS,
				"the model registry allows more lineage entries than a receipt records payouts for"
			);
		}

		#[cfg(feature = "try-runtime")]
		fn try_state(_n: BlockNumberFor<T>) -> Result<(), sp_runtime::TryRuntimeError> {
			Self::do_try_state()
		}
	}

	#[pallet::call(weight(<T as Config>::WeightInfo))]
	impl<T: Config> Pallet<T> {
		/// Holds `amount` in the caller's inference escrow.
		#[pallet::call_index(0)]
		pub fn deposit_escrow(origin: OriginFor<T>, amount: BalanceOf<T>) -> DispatchResult {
			let payer = ensure_signed(origin)?;
			ensure!(!amount.is_zero(), Error::<T>::ZeroAmount);
			T::Currency::hold(&HoldReason::Escrow.into(), &payer, amount)?;
			Self::deposit_event(Event::EscrowDeposited { payer, amount });
			Ok(())
		}

		/// Asks for `amount` of escrow back after the delay (replaces an earlier request).
		#[pallet::call_index(1)]
		pub fn request_escrow_withdrawal(origin: OriginFor<T>, amount: BalanceOf<T>) -> DispatchResult {
			let payer = ensure_signed(origin)?;
			ensure!(!amount.is_zero(), Error::<T>::ZeroAmount);
			ensure!(amount <= Self::escrow_of(&payer), Error::<T>::InsufficientEscrow);
			let unlock_at = frame_system::Pallet::<T>::block_number().saturating_add(T::EscrowWithdrawDelay::get());
			Withdrawals::<T>::insert(&payer, Withdrawal { amount, unlock_at });
			Self::deposit_event(Event::EscrowWithdrawalRequested { payer, amount, unlock_at });
			Ok(())
		}

		/// Releases the requested escrow (what is left of it) once the delay has passed.
		#[pallet::call_index(2)]
		pub fn withdraw_escrow(origin: OriginFor<T>) -> DispatchResult {
			let payer = ensure_signed(origin)?;
			let w = Withdrawals::<T>::get(&payer).ok_or(Error::<T>::NoWithdrawal)?;
			ensure!(frame_system::Pallet::<T>::block_number() >= w.unlock_at, Error::<T>::TooEarly);
			let amount = w.amount.min(Self::escrow_of(&payer));
			T::Currency::release(&HoldReason::Escrow.into(), &payer, amount, Precision::Exact)?;
			Withdrawals::<T>::remove(&payer);
			Self::deposit_event(Event::EscrowWithdrawn { payer, amount });
			Ok(())
		}

		/// Settles a batch of receipts of the calling worker, each on its own.
		///
		/// ## Complexity
		/// O(n · s): `n` receipts with up to `s` attributed contributions each. Charged for
		/// `MAX_SHARES` before dispatch, refunded to the batch's largest share count.
		#[pallet::call_index(3)]
		#[pallet::weight(<T as Config>::WeightInfo::submit_receipts(receipts.len() as u32, MAX_SHARES))]
		pub fn submit_receipts(
			origin: OriginFor<T>,
			receipts: BoundedVec<SignedReceiptOf<T>, T::MaxReceiptsPerBatch>,
		) -> DispatchResultWithPostInfo {
			let worker = ensure_signed(origin)?;
			let n = receipts.len() as u32;
			let s = receipts.iter().map(|r| r.receipt.attribution.len() as u32).max().unwrap_or(0).max(1);
			for signed in receipts {
				let request_id = signed.receipt.request_id();
				if let Err(reason) = Self::settle(&worker, request_id, signed) {
					Self::deposit_event(Event::ReceiptRejected { request_id, worker: worker.clone(), reason });
				}
			}
			Ok(Some(<T as Config>::WeightInfo::submit_receipts(n, s)).into())
		}

		/// Pays out `who`'s vested rewards (anyone may trigger it; the OPEN goes to `who`), free of
		/// fees when it pays anything (charged when there is nothing to claim).
		/// Payouts of receipts still in their challenge window are not claimable yet. A worker's
		/// share is paid by the staking pallet (`claim_staking_rewards`), shared with its
		/// delegators.
		#[pallet::call_index(4)]
		pub fn claim_rewards(origin: OriginFor<T>, who: T::AccountId) -> DispatchResultWithPostInfo {
			ensure_signed(origin)?;
			let amount = Rewards::<T>::take(&who);
			ensure!(!amount.is_zero(), Error::<T>::NothingToClaim);
			Self::pay_owed(&who, amount)?;
			AccountEarnings::<T>::mutate(&who, |e| e.claimed = e.claimed.saturating_add(amount));
			Self::deposit_event(Event::RewardsClaimed { who, amount });
			// Free when it pays: rewards are micro-payments, and a fee could exceed them. Only a
			// vesting makes a claim pay, so free claims are bounded by paid settlements; one that
			// pays nothing is charged.
			Ok(Pays::No.into())
		}

		/// Challenges an influence or retrieval receipt within the window, holding the challenge
		/// bond; [`Config::ResolveOrigin`] judges it. Only bonded accounts may. Span-match
		/// receipts are disputed by proof instead ([`Pallet::challenge_share`],
		/// [`Pallet::prove_omission`]).
		#[pallet::call_index(5)]
		pub fn challenge(origin: OriginFor<T>, request_id: RequestId) -> DispatchResult {
			let challenger = ensure_signed(origin)?;
			ensure!(T::Workers::is_bonded(&challenger), Error::<T>::NotBonded);
			let mut r = Self::challengeable(request_id, &challenger)?;
			ensure!(r.method != AttributionMethod::SpanMatch, Error::<T>::SpanMatchIsProven);
			ensure!(r.challenger.is_none(), Error::<T>::AlreadyChallenged);
			T::Currency::hold(&HoldReason::ChallengeBond.into(), &challenger, T::ChallengeBond::get())?;
			// The stake that backed the receipt stays (slashable) until the verdict.
			T::Workers::challenge_opened(&r.worker, r.settled_at);
			r.challenger = Some(challenger.clone());
			Receipts::<T>::insert(request_id, r);
			Self::deposit_event(Event::Challenged { request_id, challenger });
			Ok(())
		}

		/// Judges a challenged receipt, once: [`Verdict::False`] upholds the challenge,
		/// [`Verdict::Valid`] rejects it. A receipt judged after its pruning block is pruned now
		/// (vesting its payouts if it was valid).
		///
		/// ## Complexity
		/// Upholding a challenge slashes every delegation of the worker: charged for
		/// `max_delegators` (or, for a late valid verdict, vesting every payout, whichever costs
		/// more), refunded down to what was done.
		#[pallet::call_index(6)]
		#[pallet::weight(
			<T as Config>::WeightInfo::resolve_challenge(T::Workers::max_delegators())
				.max(<T as Config>::WeightInfo::resolve_challenge_overdue(max_payouts::<T>()))
		)]
		pub fn resolve_challenge(origin: OriginFor<T>, request_id: RequestId, verdict: Verdict) -> DispatchResultWithPostInfo {
			T::ResolveOrigin::ensure_origin(origin)?;
			Self::judge(request_id, Outcome::Judged(verdict))
		}

		/// Closes a challenge nobody judged within [`Config::ResolveTimeout`] blocks after the
		/// receipt's challenge window: the receipt stands (it vests as valid) and the challenger
		/// gets its bond back without a reward, so a challenge cannot freeze a worker's stake for
		/// longer and an honest challenger is not punished for the resolver's silence. Anyone may
		/// call it.
		#[pallet::call_index(7)]
		#[pallet::weight(<T as Config>::WeightInfo::resolve_challenge_overdue(max_payouts::<T>()))]
		pub fn expire_challenge(origin: OriginFor<T>, request_id: RequestId) -> DispatchResultWithPostInfo {
			ensure_signed(origin)?;
			// Refused after reading the receipt: charged for that read, not for vesting it.
			let refused = |e: Error<T>| DispatchError::from(e).with_weight(T::DbWeight::get().reads(1));
			let r = Receipts::<T>::get(request_id).ok_or_else(|| refused(Error::<T>::UnknownReceipt))?;
			ensure!(r.challenger.is_some(), refused(Error::<T>::NotChallenged));
			let deadline = r.settled_at.saturating_add(T::ChallengeWindow::get()).saturating_add(T::ResolveTimeout::get());
			ensure!(frame_system::Pallet::<T>::block_number() > deadline, refused(Error::<T>::TooEarly));
			ensure!(r.method != AttributionMethod::SpanMatch, refused(Error::<T>::SpanMatchIsProven));
			Self::judge(request_id, Outcome::Expired)
		}

		/// Disputes the share of `contribution` in a span-match receipt, holding the dispute bond
		/// ([`Config::DisputeBond`], recorded with the dispute) from anyone but the receipt's
		/// worker, within the challenge window. The worker must
		/// [`Pallet::answer`] within [`Config::ResponseWindow`] blocks.
		#[pallet::call_index(8)]
		pub fn challenge_share(origin: OriginFor<T>, request_id: RequestId, contribution: ContributionRef) -> DispatchResult {
			let challenger = ensure_signed(origin)?;
			let mut r = Self::challengeable(request_id, &challenger)?;
			ensure!(r.method == AttributionMethod::SpanMatch, Error::<T>::NotSpanMatch);
			ensure!(!Self::share_of(&r, &contribution).is_zero(), Error::<T>::NotCredited);
			let deadline = Self::open_dispute(request_id, &mut r, &challenger, DisputeKind::Share(contribution))?;
			Self::deposit_event(Event::ShareChallenged { request_id, challenger, contribution, deadline });
			Ok(())
		}

		/// Proves that output bytes of a span-match receipt occur in a contribution of the model
		/// version's lineage that the receipt does not credit: `proof` shows the bytes
		/// `[output_start, output_start + len)` under the receipt's output root equal to the
		/// contribution's bytes from `offset` under its content root, `len` at least the minimum.
		/// Checked now (a proof that does not hold is refused with its error and changes
		/// nothing); then the dispute bond is held and the worker must [`Pallet::answer`] with credited
		/// spans covering those bytes within [`Config::ResponseWindow`] blocks.
		///
		/// ## Complexity
		/// Hashes two range proofs: at most `MAX_RANGE_CHUNKS` chunks of `CHUNK_BYTES` bytes and
		/// `MAX_PROOF_DEPTH` siblings each.
		#[pallet::call_index(9)]
		pub fn prove_omission(origin: OriginFor<T>, request_id: RequestId, proof: SpanProof) -> DispatchResult {
			let challenger = ensure_signed(origin)?;
			let mut r = Self::challengeable(request_id, &challenger)?;
			ensure!(r.method == AttributionMethod::SpanMatch, Error::<T>::NotSpanMatch);
			let c = proof.claim.contribution;
			ensure!(Self::share_of(&r, &c).is_zero(), Error::<T>::AlreadyCredited);
			ensure!((r.attribution.len() as u32) < MAX_SHARES, Error::<T>::ReceiptFull);
			ensure!(proof.claim.len >= openledger_primitives::evidence::MIN_OMISSION_BYTES, Error::<T>::OmissionTooShort);
			let terms = T::Models::terms(r.model, r.model_version).ok_or(Error::<T>::NotInLineage)?;
			ensure!(terms.lineage.iter().any(|(d, v, _)| *d == c.datanet && *v == c.version), Error::<T>::NotInLineage);
			let root = T::Contributions::content_root(&c).ok_or(Error::<T>::UnknownContribution)?;
			openledger_primitives::evidence::verify_span(&proof, &r.output_root, r.output_len, &root).map_err(Error::<T>::from)?;
			let (output_start, len) = (proof.claim.output_start, proof.claim.len);
			let kind = DisputeKind::Omission { contribution: c, output_start, len };
			let deadline = Self::open_dispute(request_id, &mut r, &challenger, kind)?;
			Self::deposit_event(Event::OmissionProved { request_id, challenger, contribution: c, output_start, len, deadline });
			Ok(())
		}

		/// Answers the span dispute `dispute` of a receipt with committed claims proven
		/// byte for byte (anyone may; the worker's daemon does). For a share dispute every claim
		/// must be of the disputed contribution and together they must cover enough of the
		/// output to justify its share; for an omission every claim must be of a credited
		/// contribution and together they must leave no run of `MIN_OMISSION_BYTES` of the
		/// omitted bytes uncovered. Valid: that dispute's bond goes to the worker and it closes
		/// (other disputes of the receipt stay open). Otherwise refused with the first failing
		/// rule, changing nothing (the worker may answer again until the deadline).
		///
		/// ## Complexity
		/// O(n) range proofs for `n` claims (each two ranges of at most `MAX_RANGE_CHUNKS` chunks
		/// and `MAX_PROOF_DEPTH` siblings, plus its claim's path), then closing the dispute (which
		/// vests the receipt when it was the last one keeping it past its pruning block): charged
		/// for both, refunded to the claims checked when one fails.
		#[pallet::call_index(10)]
		#[pallet::weight(
			<T as Config>::WeightInfo::answer(evidence.len() as u32)
				.saturating_add(<T as Config>::WeightInfo::resolve_challenge_overdue(max_payouts::<T>()))
		)]
		pub fn answer(
			origin: OriginFor<T>,
			request_id: RequestId,
			dispute: DisputeKind,
			evidence: BoundedVec<SpanEvidence, ConstU32<MAX_EVIDENCE_SPANS>>,
		) -> DispatchResultWithPostInfo {
			ensure_signed(origin)?;
			let r = Receipts::<T>::get(request_id).ok_or(Error::<T>::UnknownReceipt)?;
			let d = Disputes::<T>::get((&r.worker, request_id, dispute)).ok_or(Error::<T>::NotChallenged)?;
			ensure!(r.verdict.is_none(), Error::<T>::AlreadyJudged);
			ensure!(frame_system::Pallet::<T>::block_number() <= d.deadline, Error::<T>::DeadlinePassed);
			ensure!(!evidence.is_empty(), Error::<T>::NoEvidence);
			use openledger_primitives::evidence as ev;
			let mut ranges = Vec::with_capacity(evidence.len());
			for (i, e) in evidence.iter().enumerate() {
				let spent = Some(<T as Config>::WeightInfo::answer(i as u32 + 1));
				let fail = |err: Error<T>| sp_runtime::DispatchErrorWithPostInfo { post_info: spent.into(), error: err.into() };
				let c = e.span.claim.contribution;
				match dispute {
					DisputeKind::Share(x) => ensure!(c == x, fail(Error::<T>::WrongContribution)),
					DisputeKind::Omission { .. } => ensure!(!Self::share_of(&r, &c).is_zero(), fail(Error::<T>::NotCredited)),
				}
				ev::verify_committed(e, &r.claims_root, r.claims).map_err(|x| fail(x.into()))?;
				let root = T::Contributions::content_root(&c).ok_or(fail(Error::<T>::UnknownContribution))?;
				ev::verify_span(&e.span, &r.output_root, r.output_len, &root).map_err(|x| fail(x.into()))?;
				ranges.push(e.span.claim.output_range());
			}
			match dispute {
				DisputeKind::Share(c) => ensure!(
					ev::share_justified(Self::share_of(&r, &c), ev::covered_bytes(ranges), r.output_len),
					Error::<T>::ShareNotJustified
				),
				DisputeKind::Omission { output_start, len, .. } => {
					let (a, b) = (output_start as u64, output_start as u64 + len as u64);
					ensure!(ev::longest_uncovered(ranges, a, b) < ev::MIN_OMISSION_BYTES as u64, Error::<T>::OmissionNotCovered)
				},
			}
			let closing = Self::close_answered(request_id, dispute, r, d)?;
			Ok(Some(<T as Config>::WeightInfo::answer(evidence.len() as u32).saturating_add(closing)).into())
		}
	}

	impl<T: Config> Pallet<T> {
		/// The receipt `request_id` if `challenger` may challenge it now: not its worker, within
		/// the window, not reversed or judged.
		fn challengeable(request_id: RequestId, challenger: &T::AccountId) -> Result<ReceiptRecord<T>, DispatchError> {
			let r = Receipts::<T>::get(request_id).ok_or(Error::<T>::UnknownReceipt)?;
			ensure!(r.verdict.is_none(), Error::<T>::AlreadyJudged);
			ensure!(r.worker != *challenger, Error::<T>::OwnReceipt);
			let now = frame_system::Pallet::<T>::block_number();
			ensure!(now <= r.settled_at.saturating_add(T::ChallengeWindow::get()), Error::<T>::WindowClosed);
			Ok(r)
		}

		/// Opens span dispute `kind` of a receipt: its bond, its deadline (queued for `on_idle`),
		/// the record; the stake that backed the receipt stays until it closes. Returns the
		/// deadline.
		fn open_dispute(
			request_id: RequestId,
			r: &mut ReceiptRecord<T>,
			challenger: &T::AccountId,
			kind: DisputeKind,
		) -> Result<BlockNumberFor<T>, DispatchError> {
			ensure!(!Disputes::<T>::contains_key((&r.worker, request_id, kind)), Error::<T>::AlreadyChallenged);
			let earliest = frame_system::Pallet::<T>::block_number().saturating_add(T::ResponseWindow::get());
			let deadline = (0..DEADLINE_SPILL)
				.map(|i| earliest.saturating_add(i.into()))
				.find(|at| (DisputeDeadlines::<T>::decode_len(at).unwrap_or(0) as u32) < T::MaxDisputesPerBlock::get())
				.ok_or(Error::<T>::DisputeQueueFull)?;
			let bond = T::DisputeBond::get();
			T::Currency::hold(&HoldReason::ChallengeBond.into(), challenger, bond)?;
			T::Workers::challenge_opened(&r.worker, r.settled_at);
			DisputeDeadlines::<T>::try_append(deadline, (request_id, kind)).map_err(|_| Error::<T>::DisputeQueueFull)?;
			Disputes::<T>::insert((&r.worker, request_id, kind), Dispute { challenger: challenger.clone(), deadline, bond });
			r.disputes = r.disputes.saturating_add(1);
			Receipts::<T>::insert(request_id, r.clone());
			Ok(deadline)
		}

		/// The share a receipt credits `c` (zero if none).
		fn share_of(r: &ReceiptRecord<T>, c: &ContributionRef) -> Perbill {
			r.attribution.iter().filter(|s| s.contribution == *c).fold(Perbill::zero(), |a, s| a.saturating_add(s.share))
		}

		/// Upholds a challenge of `r`: slashes the worker (and its delegators), refunds the
		/// receipt's fee to the payer, returns `challenger`'s `bond` and pays it `reward` (capped
		/// by the worker's own slashed stake when `capped`) from the treasury, where the slash
		/// went. Returns the delegations visited.
		fn uphold(
			request_id: RequestId,
			r: &mut ReceiptRecord<T>,
			challenger: &T::AccountId,
			bond: BalanceOf<T>,
			capped: bool,
		) -> Result<u32, DispatchError> {
			// A worker that has already left (no stake record) cannot be slashed, but the payer
			// is still refunded: the slash is done on its own and rolled back alone if it fails.
			let (delegators, own) = frame_support::storage::with_transaction(|| {
				match T::Workers::slash(&r.worker, T::SlashFraction::get(), r.settled_at) {
					Ok(x) => sp_runtime::TransactionOutcome::Commit(Ok::<_, DispatchError>(x)),
					Err(_) => sp_runtime::TransactionOutcome::Rollback(Ok((0, Zero::zero()))),
				}
			})?;
			// The payouts never vested: exactly this receipt's fee goes back, nobody else's.
			let refunded = Self::reverse(r)?;
			T::Currency::release(&HoldReason::ChallengeBond.into(), challenger, bond, Precision::BestEffort)?;
			let reward = if capped { T::ChallengerReward::get().min(own) } else { T::ChallengerReward::get() };
			// Best effort: a poor treasury does not block justice.
			if !reward.is_zero() &&
				T::Currency::transfer(&T::Treasury::get(), challenger, reward, Preservation::Preserve).is_err()
			{
				log::warn!(target: "runtime::attribution", "the treasury could not pay a challenger's reward");
			}
			r.verdict = Some(Verdict::False);
			Self::deposit_event(Event::ChallengeUpheld { request_id, worker: r.worker.clone(), refunded });
			Ok(delegators)
		}

		/// Stores `r`, or — when its pruning block has passed and nothing keeps it any more —
		/// vests and removes it. Returns the payouts vested.
		fn store_or_vest(request_id: RequestId, r: ReceiptRecord<T>) -> Option<u32> {
			if r.overdue && r.challenger.is_none() && r.disputes == 0 {
				let payouts = r.payouts.len() as u32;
				Self::vest(request_id, r);
				return Some(payouts);
			}
			Receipts::<T>::insert(request_id, r);
			None
		}

		/// Ends a governance challenge (influence and retrieval receipts) with `outcome`:
		/// [`Verdict::False`] upholds it (the configured reward from the treasury);
		/// [`Verdict::Valid`] gives the bond to the treasury; expired unjudged, the bond goes back
		/// (the challenger is not punished for the resolver's silence).
		pub(crate) fn judge(request_id: RequestId, outcome: Outcome) -> DispatchResultWithPostInfo {
			let mut r = Receipts::<T>::get(request_id).ok_or(Error::<T>::UnknownReceipt)?;
			let challenger = r.challenger.take().ok_or(Error::<T>::NotChallenged)?;
			T::Workers::challenge_closed(&r.worker);
			let mut delegators = 0;
			match outcome {
				Outcome::Judged(Verdict::False) =>
					delegators = Self::uphold(request_id, &mut r, &challenger, T::ChallengeBond::get(), false)?,
				Outcome::Expired => {
					T::Currency::release(&HoldReason::ChallengeBond.into(), &challenger, T::ChallengeBond::get(), Precision::BestEffort)?;
					r.verdict = Some(Verdict::Valid);
					Self::deposit_event(Event::ChallengeExpired { request_id, challenger });
				},
				Outcome::Judged(Verdict::Valid) => {
					T::Currency::transfer_on_hold(
						&HoldReason::ChallengeBond.into(),
						&challenger,
						&T::Treasury::get(),
						T::ChallengeBond::get(),
						Precision::BestEffort,
						Restriction::Free,
						Fortitude::Force,
					)?;
					r.verdict = Some(Verdict::Valid);
					Self::deposit_event(Event::ChallengeRejected { request_id, challenger });
				},
			}
			let judged = <T as Config>::WeightInfo::resolve_challenge(delegators);
			Ok(Some(match Self::store_or_vest(request_id, r) {
				Some(payouts) => <T as Config>::WeightInfo::resolve_challenge_overdue(payouts).max(judged),
				None => judged,
			})
			.into())
		}

		/// Closes an answered span dispute: its bond to the worker, its queue entry removed.
		/// Returns the weight of closing (vesting the receipt if that was its last dispute past
		/// its pruning block).
		fn close_answered(
			request_id: RequestId,
			kind: DisputeKind,
			mut r: ReceiptRecord<T>,
			d: Dispute<T::AccountId, BlockNumberFor<T>, BalanceOf<T>>,
		) -> Result<Weight, DispatchError> {
			Disputes::<T>::remove((&r.worker, request_id, kind));
			DisputeDeadlines::<T>::mutate(d.deadline, |q| q.retain(|x| *x != (request_id, kind)));
			T::Workers::challenge_closed(&r.worker);
			let bond = T::Currency::transfer_on_hold(
				&HoldReason::ChallengeBond.into(),
				&d.challenger,
				&r.worker,
				d.bond,
				Precision::BestEffort,
				Restriction::Free,
				Fortitude::Force,
			)?;
			r.disputes = r.disputes.saturating_sub(1);
			Self::deposit_event(Event::ChallengeAnswered { request_id, dispute: kind, worker: r.worker.clone(), bond });
			Ok(match Self::store_or_vest(request_id, r) {
				Some(payouts) => <T as Config>::WeightInfo::resolve_challenge_overdue(payouts),
				None => Weight::zero(),
			})
		}

		/// Closes a span dispute nobody answered by its deadline: upheld (slash, refund, bond back
		/// with a reward out of the worker's slash), or moot if another dispute reversed the
		/// receipt already (bond back). Returns the weight used.
		fn close_unanswered(request_id: RequestId, kind: DisputeKind) -> Result<Weight, DispatchError> {
			let mut r = Receipts::<T>::get(request_id).ok_or(Error::<T>::UnknownReceipt)?;
			let d = Disputes::<T>::take((&r.worker, request_id, kind)).ok_or(Error::<T>::NotChallenged)?;
			T::Workers::challenge_closed(&r.worker);
			r.disputes = r.disputes.saturating_sub(1);
			let mut used = <T as Config>::WeightInfo::resolve_challenge(0);
			if r.verdict == Some(Verdict::False) {
				T::Currency::release(&HoldReason::ChallengeBond.into(), &d.challenger, d.bond, Precision::BestEffort)?;
				Self::deposit_event(Event::DisputeMoot { request_id, dispute: kind, challenger: d.challenger });
			} else {
				used = <T as Config>::WeightInfo::resolve_challenge(Self::uphold(request_id, &mut r, &d.challenger, d.bond, true)?);
			}
			if let Some(payouts) = Self::store_or_vest(request_id, r) {
				used = used.max(<T as Config>::WeightInfo::resolve_challenge_overdue(payouts));
			}
			Ok(used)
		}

		/// The pot that holds settled fees until they are claimed.
		pub fn pot() -> T::AccountId {
			T::PotId::get().into_account_truncating()
		}

		/// A payer's escrow.
		pub fn escrow_of(payer: &T::AccountId) -> BalanceOf<T> {
			T::Currency::balance_on_hold(&HoldReason::Escrow.into(), payer)
		}

		/// This chain's genesis block hash (what vouchers name).
		pub fn genesis_hash() -> T::Hash {
			frame_system::Pallet::<T>::block_hash(BlockNumberFor::<T>::zero())
		}

		/// Checks one receipt (whose request id is `request_id`) and, if it holds, settles it.
		/// Changes nothing on `Err`.
		fn settle(worker: &T::AccountId, request_id: RequestId, signed: SignedReceiptOf<T>) -> Result<(), RejectReason> {
			let r = &signed.receipt;
			let v = &r.voucher;
			let now = frame_system::Pallet::<T>::block_number();
			ensure!(!UsedRequests::<T>::contains_key(request_id), RejectReason::AlreadyUsed);
			ensure!(PruneCursor::<T>::get().saturating_add(T::MaxPruneLag::get()) >= now, RejectReason::PruningBehind);
			ensure!(v.genesis.as_ref() == Self::genesis_hash().as_ref(), RejectReason::WrongChain);
			ensure!(v.worker == *worker, RejectReason::WrongWorker);
			ensure!(now <= v.expires_at, RejectReason::Expired);
			ensure!(v.expires_at <= now.saturating_add(T::MaxVoucherLifetime::get()), RejectReason::ExpiryTooFar);
			ensure!(r.fee <= v.max_fee, RejectReason::FeeAboveVoucher);
			ensure!(r.fee >= T::MinFee::get(), RejectReason::FeeTooLow);
			ensure!(
				openledger_primitives::receipt::verify_payer(&r.payer_signature, &v.signing_payload(), &v.payer),
				RejectReason::BadPayerSignature
			);
			let key = T::Workers::signing_key_if_serving(worker, v.model).ok_or(RejectReason::NotServing)?;
			ensure!(
				sp_io::crypto::sr25519_verify(&signed.worker_signature, &r.signing_payload(), &sp_core::sr25519::Public::from_raw(key)),
				RejectReason::BadWorkerSignature
			);
			let terms = T::Models::terms(v.model, v.model_version).ok_or(RejectReason::UnknownModel)?;
			ensure!(!terms.deprecated, RejectReason::DeprecatedModel);
			// The terms the payer accepted: the model's current ones, or those it had before its
			// last change while vouchers signed under them can still settle.
			use openledger_primitives::receipt::{price_of, terms_hash};
			let (agreed_split, per_request, per_1k) = if v.terms == terms_hash(&terms.split, terms.per_request, terms.per_1k_tokens) {
				(terms.split, terms.per_request, terms.per_1k_tokens)
			} else {
				terms
					.previous
					.into_iter()
					.find(|(split, per_request, per_1k)| v.terms == terms_hash(split, *per_request, *per_1k))
					.ok_or(RejectReason::TermsChanged)?
			};
			let tokens = r.prompt_tokens as u64 + r.completion_tokens as u64;
			ensure!(
				r.fee.saturated_into::<u128>() <= price_of(per_request, per_1k, tokens),
				RejectReason::FeeAbovePrice
			);
			ensure!(r.shares_total().is_some(), RejectReason::SharesExceed);
			let mut attributed = Vec::with_capacity(r.attribution.len());
			for (i, s) in r.attribution.iter().enumerate() {
				let c = s.contribution;
				// Every share names a distinct contribution and is more than nothing (so a
				// receipt's share count is what it credits).
				ensure!(!s.share.is_zero(), RejectReason::BadAttribution);
				ensure!(r.attribution.iter().take(i).all(|x| x.contribution != c), RejectReason::BadAttribution);
				ensure!(
					terms.lineage.iter().any(|(d, ver, _)| *d == c.datanet && *ver == c.version),
					RejectReason::BadAttribution
				);
				let who = T::Contributions::contributor(&c).ok_or(RejectReason::BadAttribution)?;
				attributed.push((who, s.share));
			}
			ensure!(Self::escrow_of(&v.payer) >= r.fee, RejectReason::InsufficientEscrow);
			let lineage_owners: Vec<(T::AccountId, Perbill)> = terms
				.lineage
				.iter()
				.filter_map(|(d, _, w)| T::Contributions::datanet_owner(*d).map(|o| (o, *w)))
				.collect();
			// Pruned once the voucher has expired and the challenge window has passed: in the first
			// of `PRUNE_SPILL` blocks from then whose queue has room.
			let earliest = v.expires_at.max(now.saturating_add(T::ChallengeWindow::get())).saturating_add(1u32.into());
			let prune_at = (0..PRUNE_SPILL)
				.map(|i| earliest.saturating_add(i.into()))
				.find(|at| (PruneQueue::<T>::decode_len(at).unwrap_or(0) as u32) < T::MaxPrunePerBlock::get())
				.ok_or(RejectReason::PruneQueueFull)?;

			// All checks passed: from here on, writes. The fee stays on hold in the pot until it
			// is claimed (or refunded to the payer if the receipt is false).
			let pot = Self::pot();
			T::Currency::transfer_on_hold(
				&HoldReason::Escrow.into(),
				&v.payer,
				&pot,
				r.fee,
				Precision::Exact,
				Restriction::Free,
				Fortitude::Force,
			)
			.and_then(|_| T::Currency::hold(&HoldReason::Owed.into(), &pot, r.fee))
			.map_err(|_| RejectReason::InsufficientEscrow)?;
			let p = split::split_fee(r.fee, &agreed_split, &attributed, &lineage_owners);
			let mut payouts: Vec<Payout<T::AccountId, BalanceOf<T>>> = Vec::new();
			// Zero amounts write nothing (no storage entry for an earning of nothing).
			let mut owe = |who: &T::AccountId, amount: BalanceOf<T>, kind: PayoutKind| {
				if amount.is_zero() {
					return;
				}
				AccountEarnings::<T>::mutate(who, |e| e.pending = e.pending.saturating_add(amount));
				payouts.push(Payout { who: who.clone(), amount, kind });
			};
			owe(&terms.owner, p.owner, PayoutKind::Owner);
			owe(worker, p.worker, PayoutKind::Worker);
			owe(&T::Treasury::get(), p.treasury, PayoutKind::Treasury);
			for ((who, amount), s) in p.contributors.iter().zip(r.attribution.iter()) {
				owe(who, *amount, PayoutKind::Contribution(s.contribution));
			}
			let lineage_datanets = terms.lineage.iter().filter(|(d, _, _)| T::Contributions::datanet_owner(*d).is_some());
			for ((who, amount), (d, _, _)) in p.datanet_owners.iter().zip(lineage_datanets) {
				owe(who, *amount, PayoutKind::Datanet(*d));
			}
			ModelUsage::<T>::mutate(v.model, |u| {
				u.requests = u.requests.saturating_add(1);
				u.tokens = u.tokens.saturating_add(r.prompt_tokens as u64 + r.completion_tokens as u64);
				u.revenue = u.revenue.saturating_add(r.fee);
			});
			UsedRequests::<T>::insert(request_id, prune_at);
			// Appended without decoding the queue; its length was checked above.
			let queued = PruneQueue::<T>::try_append(prune_at, request_id);
			debug_assert!(queued.is_ok(), "room checked above");
			let payer = v.payer.clone();
			let (model, fee) = (v.model, r.fee);
			Receipts::<T>::insert(
				request_id,
				ReceiptRecord {
					payer: payer.clone(),
					worker: worker.clone(),
					model,
					model_version: v.model_version,
					fee,
					prompt_tokens: r.prompt_tokens,
					completion_tokens: r.completion_tokens,
					output_len: r.output_len,
					output_root: r.output_root,
					claims_root: r.claims_root,
					claims: r.claims,
					method: r.method,
					attribution: signed.receipt.attribution.clone(),
					payouts: BoundedVec::truncate_from(payouts),
					settled_at: now,
					challenger: None,
					disputes: 0,
					verdict: None,
					overdue: false,
				},
			);
			Self::deposit_event(Event::ReceiptSettled { request_id, worker: worker.clone(), payer, model, fee });
			Ok(())
		}

		/// Pays `amount` of what the pot holds owed ([`HoldReason::Owed`]) to `to`: claimed
		/// rewards, refunds, and worker shares claimed through the staking pallet (its
		/// `RewardPayer`, which has checked that `to` is owed them).
		pub fn pay_owed(to: &T::AccountId, amount: BalanceOf<T>) -> DispatchResult {
			T::Currency::transfer_on_hold(
				&HoldReason::Owed.into(),
				&Self::pot(),
				to,
				amount,
				Precision::Exact,
				Restriction::Free,
				Fortitude::Force,
			)?;
			Ok(())
		}

		/// Refunds a false receipt's pending payouts (its whole fee) to its payer; returns the
		/// amount refunded.
		fn reverse(r: &mut ReceiptRecord<T>) -> Result<BalanceOf<T>, DispatchError> {
			let mut refunded: BalanceOf<T> = Zero::zero();
			for p in r.payouts.iter() {
				AccountEarnings::<T>::mutate(&p.who, |e| e.pending = e.pending.saturating_sub(p.amount));
				refunded = refunded.saturating_add(p.amount);
			}
			r.payouts = Default::default();
			if !refunded.is_zero() {
				// A payer whose account is gone cannot take a refund below the existential
				// deposit: it goes to the treasury rather than blocking the verdict.
				let to_payer = frame_support::storage::with_transaction(|| match Self::pay_owed(&r.payer, refunded) {
					Ok(_) => sp_runtime::TransactionOutcome::Commit(Ok::<bool, DispatchError>(true)),
					Err(_) => sp_runtime::TransactionOutcome::Rollback(Ok(false)),
				})?;
				if !to_payer {
					Self::pay_owed(&T::Treasury::get(), refunded)?;
				}
			}
			Ok(refunded)
		}

		/// Vests a receipt's pending payouts (they become claimable) and removes its record and
		/// used request id. The OPEN stays on hold in the pot until claimed.
		fn vest(request_id: RequestId, r: ReceiptRecord<T>) {
			for p in r.payouts.iter() {
				if p.kind == PayoutKind::Worker {
					// The worker's share goes to its reward pool in the staking pallet (shared by
					// the stake bonded now); the OPEN stays held here until claimed there.
					T::Workers::accrue_reward(&p.who, p.amount);
					AccountEarnings::<T>::mutate(&p.who, |e| e.pending = e.pending.saturating_sub(p.amount));
				} else {
					Rewards::<T>::mutate(&p.who, |a| *a = a.saturating_add(p.amount));
					AccountEarnings::<T>::mutate(&p.who, |e| {
						e.pending = e.pending.saturating_sub(p.amount);
						e.accrued = e.accrued.saturating_add(p.amount);
					});
				}
				match p.kind {
					PayoutKind::Contribution(c) => {
						ContributionEarnings::<T>::mutate(c, |e| *e = e.saturating_add(p.amount));
						DatanetEarnings::<T>::mutate(c.datanet, |e| *e = e.saturating_add(p.amount));
					},
					PayoutKind::Datanet(d) => DatanetEarnings::<T>::mutate(d, |e| *e = e.saturating_add(p.amount)),
					_ => {},
				}
			}
			Receipts::<T>::remove(request_id);
			UsedRequests::<T>::remove(request_id);
			if r.verdict != Some(Verdict::False) {
				Self::deposit_event(Event::ReceiptVested { request_id });
			}
		}

		/// Upholds the span disputes whose deadline is a block up to `now` (answered ones left
		/// the queue), from [`DeadlineCursor`], while `meter` allows. Each is closed in its own
		/// storage transaction: one that fails is rolled back whole and retried at the next block.
		pub fn enforce_deadlines(now: BlockNumberFor<T>, meter: &mut frame_support::weights::WeightMeter) {
			let per_block = <T as Config>::WeightInfo::prune_block();
			let per_dispute = <T as Config>::WeightInfo::resolve_challenge(T::Workers::max_delegators())
				.max(<T as Config>::WeightInfo::resolve_challenge_overdue(max_payouts::<T>()));
			let mut at = DeadlineCursor::<T>::get();
			let start = at;
			while at <= now && meter.try_consume(per_block).is_ok() {
				let mut queue = DisputeDeadlines::<T>::get(at);
				let mut finished = true;
				while let Some((id, kind)) = queue.last().copied() {
					if !meter.can_consume(per_dispute) {
						finished = false;
						break;
					}
					let closed = frame_support::storage::with_transaction(|| match Self::close_unanswered(id, kind) {
						Ok(w) => sp_runtime::TransactionOutcome::Commit(Ok(w)),
						Err(e) => sp_runtime::TransactionOutcome::Rollback(Err(e)),
					});
					match closed {
						Ok(w) => {
							queue.pop();
							meter.consume(w.min(per_dispute));
						},
						Err(e) => {
							// Rolled back whole: it stays queued here, and the cursor waits for it.
							log::error!(target: "runtime::attribution", "an unanswered dispute could not be closed, retrying: {e:?}");
							meter.consume(per_dispute);
							finished = false;
							break;
						},
					}
				}
				if !finished {
					DisputeDeadlines::<T>::insert(at, queue);
					break;
				}
				DisputeDeadlines::<T>::remove(at);
				at = at.saturating_add(One::one());
			}
			if at != start {
				DeadlineCursor::<T>::put(at);
			}
		}

		/// Prunes the queues of blocks up to `now`, from [`PruneCursor`], while `meter` allows:
		/// each receipt vests and is removed, unless its challenge is open (then it is marked
		/// overdue and left to `resolve_challenge`).
		pub fn prune(now: BlockNumberFor<T>, meter: &mut frame_support::weights::WeightMeter) {
			let per_block = <T as Config>::WeightInfo::prune_block();
			let per_receipt = <T as Config>::WeightInfo::prune_receipt(max_payouts::<T>());
			let mut at = PruneCursor::<T>::get();
			let start = at;
			while at <= now && meter.try_consume(per_block).is_ok() {
				let mut queue = PruneQueue::<T>::get(at);
				let mut finished = true;
				while let Some(id) = queue.last().copied() {
					if !meter.can_consume(per_receipt) {
						finished = false;
						break;
					}
					queue.pop();
					let payouts = match Receipts::<T>::get(id) {
						Some(mut r) if r.challenger.is_some() || r.disputes > 0 => {
							r.overdue = true;
							Receipts::<T>::insert(id, r);
							0
						},
						Some(r) => {
							let n = r.payouts.len() as u32;
							Self::vest(id, r);
							n
						},
						None => {
							UsedRequests::<T>::remove(id);
							0
						},
					};
					meter.consume(<T as Config>::WeightInfo::prune_receipt(payouts));
				}
				if !finished {
					PruneQueue::<T>::insert(at, queue);
					break;
				}
				PruneQueue::<T>::remove(at);
				at = at.saturating_add(One::one());
			}
			if at != start {
				PruneCursor::<T>::put(at);
			}
		}

		/// Checks, with equalities:
		/// - the pot holds on hold ([`HoldReason::Owed`]) exactly the pending payouts of every
		///   receipt plus every vested, unclaimed reward (payees' here, workers' in the staking
		///   pallet), and keeps at least the existential deposit free;
		/// - each unreversed receipt's payouts sum to its fee; a reversed one has none;
		/// - per account: `pending` = its payouts in unvested receipts, and
		///   `accrued` = `claimed` + its unclaimed rewards;
		/// - every used request id is queued for pruning at its block at or after the cursor, or
		///   kept overdue because its challenge is open; every queued id is a used one; every
		///   receipt record belongs to a used request id;
		/// - each challenger holds on hold exactly the bonds of its open challenges (the constant
		///   [`Config::ChallengeBond`]) and span disputes (the bond each records); every open
		///   challenge and span dispute freezes its worker's stake once; a receipt's open-dispute count equals its dispute records, span
		///   receipts have no governance challenge; every dispute is queued at its deadline, not
		///   behind the deadline cursor, and every queued dispute is open at that block.
		pub fn do_try_state() -> Result<(), sp_runtime::TryRuntimeError> {
			use alloc::collections::BTreeMap;
			let pot = Self::pot();
			let mut pending: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
			let mut unvested = BalanceOf::<T>::zero();
			// What each challenger must have on hold: its open challenges' and disputes' bonds.
			let mut bonds: BTreeMap<T::AccountId, BalanceOf<T>> = BTreeMap::new();
			let mut per_worker: BTreeMap<T::AccountId, u32> = BTreeMap::new();
			for (id, r) in Receipts::<T>::iter() {
				let at = UsedRequests::<T>::get(id).ok_or("receipt record without its used request id")?;
				let sum = r.payouts.iter().fold(BalanceOf::<T>::zero(), |a, p| a.saturating_add(p.amount));
				if r.verdict == Some(Verdict::False) {
					ensure!(r.payouts.is_empty(), "a reversed receipt still owes payouts");
				} else {
					ensure!(sum == r.fee, "a receipt's payouts do not sum to its fee");
				}
				for p in r.payouts.iter() {
					let e = pending.entry(p.who.clone()).or_insert_with(Zero::zero);
					*e = e.saturating_add(p.amount);
				}
				unvested = unvested.saturating_add(sum);
				let open = Disputes::<T>::iter_prefix_values((&r.worker, id)).count() as u32;
				ensure!(open == r.disputes, "a receipt's open-dispute count differs from its dispute records");
				ensure!(r.method == AttributionMethod::SpanMatch || r.disputes == 0, "a span dispute of a receipt that is not span-match");
				ensure!(r.method != AttributionMethod::SpanMatch || r.challenger.is_none(), "a governance challenge of a span-match receipt");
				*per_worker.entry(r.worker.clone()).or_default() += r.disputes;
				if let Some(c) = r.challenger {
					let b = bonds.entry(c).or_default();
					*b = b.saturating_add(T::ChallengeBond::get());
					*per_worker.entry(r.worker).or_default() += 1;
				} else {
					ensure!(!r.overdue || r.disputes > 0, "an overdue receipt without an open challenge");
				}
				ensure!(r.overdue || PruneQueue::<T>::get(at).contains(&id), "receipt not queued for pruning");
			}
			let vested = Rewards::<T>::iter_values().fold(BalanceOf::<T>::zero(), |a, b| a.saturating_add(b));
			ensure!(
				T::Currency::balance_on_hold(&HoldReason::Owed.into(), &pot) ==
					unvested.saturating_add(vested).saturating_add(T::Workers::rewards_owed()),
				"the pot's hold differs from pending payouts plus unclaimed rewards (payees' and workers')"
			);
			ensure!(T::Currency::balance(&pot) >= T::Currency::minimum_balance(), "the pot keeps less than the existential deposit");
			for (who, e) in AccountEarnings::<T>::iter() {
				ensure!(e.accrued == e.claimed.saturating_add(Rewards::<T>::get(&who)), "accrued differs from claimed plus unclaimed");
				ensure!(e.pending == pending.remove(&who).unwrap_or_else(Zero::zero), "pending differs from the account's unvested payouts");
			}
			ensure!(pending.values().all(|v| v.is_zero()), "unvested payouts of an account without earnings");
			let cursor = PruneCursor::<T>::get();
			for (id, at) in UsedRequests::<T>::iter() {
				let overdue = Receipts::<T>::get(id).is_some_and(|r| r.overdue);
				ensure!(overdue || (at >= cursor && PruneQueue::<T>::get(at).contains(&id)), "used request id not queued for pruning");
			}
			for (at, queue) in PruneQueue::<T>::iter() {
				ensure!(at >= cursor, "a prune queue behind the cursor");
				for id in queue {
					ensure!(UsedRequests::<T>::get(id) == Some(at), "a queued id that is not used at that block");
				}
			}
			let deadline_cursor = DeadlineCursor::<T>::get();
			for ((worker, id, kind), d) in Disputes::<T>::iter() {
				let r = Receipts::<T>::get(id).ok_or("a dispute of a receipt that is gone")?;
				ensure!(r.worker == worker, "a dispute filed under another worker");
				ensure!(
					d.deadline >= deadline_cursor && DisputeDeadlines::<T>::get(d.deadline).contains(&(id, kind)),
					"a dispute not queued at its deadline"
				);
				ensure!(!d.bond.is_zero(), "a dispute without a bond");
				let b = bonds.entry(d.challenger).or_default();
				*b = b.saturating_add(d.bond);
			}
			for (at, queue) in DisputeDeadlines::<T>::iter() {
				ensure!(at >= deadline_cursor, "a dispute queue behind the cursor");
				for (id, kind) in queue {
					let open = Receipts::<T>::get(id).and_then(|r| Disputes::<T>::get((&r.worker, id, kind)));
					ensure!(open.is_some_and(|d| d.deadline == at), "a queued dispute that is not open at that block");
				}
			}
			for (worker, n) in per_worker.iter() {
				ensure!(T::Workers::open_challenges(worker) == *n, "the worker's frozen-stake count differs from its open challenges");
			}
			for (worker, n) in T::Workers::frozen() {
				ensure!(per_worker.get(&worker) == Some(&n), "stake frozen for a challenge that is not open");
			}
			for (challenger, owed) in bonds {
				let held = T::Currency::balance_on_hold(&HoldReason::ChallengeBond.into(), &challenger);
				ensure!(held == owed, "challenge bonds held differ from open challenges' and disputes' bonds");
			}
			Ok(())
		}
	}
}
