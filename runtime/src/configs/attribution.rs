//! Attribution: paid inference, signed receipts, fee split, rewards and challenges, wired to the
//! Datanets, models and staking pallets through small adapters.

use super::TreasuryAccount;
use crate::{
	currency::OPEN,
	time::{DAYS, MINUTES},
	AccountId, Balance, Balances, BlockNumber, Datanets, OpenStaking, Runtime, RuntimeEvent,
	RuntimeHoldReason, Signature,
};
use frame_support::{parameter_types, traits::ConstU32, PalletId};
use openledger_primitives::{receipt::ContributionRef, DatanetId, ModelId, ModelVersion};
use pallet_attribution::{ContributionResolver, ModelTerms, ModelTermsProvider, WorkerRegistry};
use sp_runtime::{DispatchError, MultiSigner, Perbill};

/// Id of the pot holding settled fees until they are claimed.
pub const ATTRIBUTION_POT_ID: PalletId = PalletId(*b"ol/infer");

parameter_types! {
	pub const AttributionPotId: PalletId = ATTRIBUTION_POT_ID;
	/// Escrow comes back 10 minutes after asking (receipts can settle against it until then).
	pub const EscrowWithdrawDelay: BlockNumber = 10 * MINUTES;
	/// Receipts can be challenged for a day after settlement; their payouts vest after it.
	pub const ChallengeWindow: BlockNumber = DAYS;
	/// The bond of a governance challenge (span disputes hold the governable `DisputeBond`).
	pub const ChallengeBond: Balance = 100 * OPEN;
	/// What every span dispute held until spec 107 (storage version 1 of the pallet), recorded
	/// with the disputes open at the upgrade.
	pub const DisputeBondBeforeV2: Balance = 100 * OPEN;
	pub const ChallengerReward: Balance = 50 * OPEN;
	/// A false receipt costs the worker and its delegators 10 % of their stake.
	pub const ReceiptSlash: Perbill = Perbill::from_percent(10);
	/// Vouchers expire within a day of settlement (the bound workers check too, from the shared
	/// primitives): never later than the challenge window closes, so a receipt vests and is
	/// pruned `ChallengeWindow + 1` blocks after settlement.
	pub const MaxVoucherLifetime: BlockNumber = openledger_primitives::receipt::MAX_VOUCHER_LIFETIME_BLOCKS;
	pub const MaxPruneLag: BlockNumber = 60 * MINUTES;
	pub const ResolveTimeout: BlockNumber = 7 * DAYS;
	/// A worker has an hour to answer a span dispute with its evidence.
	pub const ResponseWindow: BlockNumber = 60 * MINUTES;
}

/// Model terms from the model registry.
pub struct ModelsAdapter;
impl ModelTermsProvider<AccountId> for ModelsAdapter {
	fn terms(model: ModelId, version: ModelVersion) -> Option<ModelTerms<AccountId>> {
		let m = pallet_models::Models::<Runtime>::get(model)?;
		let v = pallet_models::Versions::<Runtime>::get(model, version)?;
		let now = frame_system::Pallet::<Runtime>::block_number();
		let previous = pallet_models::PreviousTerms::<Runtime>::get(model)
			.into_iter()
			.filter(|(_, _, until)| *until >= now)
			.map(|(pricing, split, _)| (split, pricing.per_request, pricing.per_1k_tokens))
			.collect();
		Some(ModelTerms {
			owner: m.owner,
			split: m.split,
			per_request: m.pricing.per_request,
			per_1k_tokens: m.pricing.per_1k_tokens,
			previous,
			lineage: v.lineage.iter().map(|e| (e.datanet, e.version, e.weight)).collect(),
			deprecated: v.deprecated,
		})
	}
	fn max_lineage() -> u32 {
		<<Runtime as pallet_models::Config>::MaxLineage as frame_support::traits::Get<u32>>::get()
	}
}

/// Contributors and owners from the Datanets pallet.
pub struct DatanetsAdapter;
impl ContributionResolver<AccountId> for DatanetsAdapter {
	fn contributor(c: &ContributionRef) -> Option<AccountId> {
		Datanets::contribution_at(c.datanet, c.version, c.index).map(|(_, info)| info.contributor)
	}
	fn datanet_owner(datanet: DatanetId) -> Option<AccountId> {
		pallet_datanets::Datanets::<Runtime>::get(datanet).map(|d| d.owner)
	}
	fn content_root(c: &ContributionRef) -> Option<sp_core::H256> {
		// The leaf's content hash: what the snapshot's Merkle root commits to at that index
		// (leaves of a snapshot never move).
		Datanets::contribution_at(c.datanet, c.version, c.index).map(|(_, info)| info.content_hash)
	}
}

/// Workers from OPEN staking.
pub struct StakingAdapter;
impl WorkerRegistry<AccountId, Balance, BlockNumber> for StakingAdapter {
	fn signing_key_if_serving(worker: &AccountId, model: ModelId) -> Option<[u8; 32]> {
		if !OpenStaking::serves(worker, model) {
			return None;
		}
		pallet_open_staking::Workers::<Runtime>::get(worker).map(|w| w.signing_key)
	}
	fn is_bonded(who: &AccountId) -> bool {
		use frame_support::traits::fungible::InspectHold;
		let reason = RuntimeHoldReason::OpenStaking(pallet_open_staking::HoldReason::Staking);
		Balances::balance_on_hold(&reason, who) > 0
	}
	fn accrue_reward(worker: &AccountId, amount: Balance) {
		OpenStaking::accrue_reward(worker, amount)
	}
	fn rewards_owed() -> Balance {
		OpenStaking::rewards_owed()
	}
	fn slash(worker: &AccountId, fraction: Perbill, settled_at: BlockNumber) -> Result<(u32, Balance), DispatchError> {
		OpenStaking::do_slash(worker, fraction, Some(settled_at)).map(|(n, own, _)| (n, own))
	}
	fn challenge_opened(worker: &AccountId, settled_at: BlockNumber) {
		OpenStaking::challenge_opened(worker, settled_at)
	}
	fn challenge_closed(worker: &AccountId) {
		OpenStaking::challenge_closed(worker)
	}
	fn open_challenges(worker: &AccountId) -> u32 {
		pallet_open_staking::OpenChallenges::<Runtime>::get(worker).map_or(0, |(n, _)| n)
	}
	fn frozen() -> alloc::vec::Vec<(AccountId, u32)> {
		pallet_open_staking::OpenChallenges::<Runtime>::iter().map(|(w, (n, _))| (w, n)).collect()
	}
	fn max_delegators() -> u32 {
		<<Runtime as pallet_open_staking::Config>::MaxDelegators as frame_support::traits::Get<u32>>::get()
	}
}

// A voucher never outlives the challenge window (vesting waits for both).
const _: () = assert!(openledger_primitives::receipt::MAX_VOUCHER_LIFETIME_BLOCKS <= DAYS);

/// Pays claimed staking rewards out of the attribution pot, where the worker shares stay held
/// from settlement until claimed.
pub struct PotPaysStakingRewards;
impl pallet_open_staking::RewardPayer<AccountId, Balance> for PotPaysStakingRewards {
	fn pay(to: &AccountId, amount: Balance) -> sp_runtime::DispatchResult {
		crate::Attribution::pay_owed(to, amount)
	}
}

impl pallet_attribution::Config for Runtime {
	type RuntimeEvent = RuntimeEvent;
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type OffchainSignature = Signature;
	type SigningPublicKey = MultiSigner;
	type Models = ModelsAdapter;
	type Contributions = DatanetsAdapter;
	type Workers = StakingAdapter;
	type PotId = AttributionPotId;
	type Treasury = TreasuryAccount;
	type EscrowWithdrawDelay = EscrowWithdrawDelay;
	type ChallengeWindow = ChallengeWindow;
	type ChallengeBond = ChallengeBond;
	/// Governable, between 1 and 100,000 OPEN.
	type DisputeBond = super::governance::Clamp<
		super::governance::dynamic_params::attribution::DisputeBond,
		frame_support::traits::ConstU128<OPEN>,
		frame_support::traits::ConstU128<{ 100_000 * OPEN }>,
	>;
	type ChallengerReward = ChallengerReward;
	type SlashFraction = ReceiptSlash;
	/// Root or a referendum on the disputes track.
	type ResolveOrigin = super::governance::DisputesOrigin;
	/// A challenge not judged within a week after the window can be closed by anyone (valid).
	type ResolveTimeout = ResolveTimeout;
	type ResponseWindow = ResponseWindow;
	/// 64 disputes may fall due per block, spilling over up to 64 blocks.
	type MaxDisputesPerBlock = ConstU32<64>;
	type MaxReceiptsPerBatch = ConstU32<256>;
	type MaxPrunePerBlock = ConstU32<2048>;
	type MaxVoucherLifetime = MaxVoucherLifetime;
	/// 0.00001 OPEN unless governance changes it, within [10^-18, 1] OPEN.
	type MinFee = super::governance::Clamp<super::governance::dynamic_params::attribution::MinReceiptFee, frame_support::traits::ConstU128<1>, frame_support::traits::ConstU128<OPEN>>;
	/// Receipts wait once pruning is an hour behind (full blocks leave no idle weight).
	type MaxPruneLag = MaxPruneLag;
	type WeightInfo = pallet_attribution::weights::SubstrateWeight<Runtime>;
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = BenchmarkHelper;
}

/// Creates a real Datanet snapshot, base model, adapter and bonded worker for the benchmarks.
#[cfg(feature = "runtime-benchmarks")]
pub struct BenchmarkHelper;
#[cfg(feature = "runtime-benchmarks")]
impl pallet_attribution::BenchmarkHelper<AccountId, Signature, MultiSigner> for BenchmarkHelper {
	fn setup(worker: &AccountId, key: [u8; 32], leaves: u32) -> (ModelId, ModelVersion, DatanetId, u32) {
		use crate::RuntimeOrigin;
		use alloc::{vec, vec::Vec};
		use frame_support::traits::{fungible::Mutate, Get};
		let _ = Balances::set_balance(worker, 1_000_000 * OPEN);
		let policy = pallet_datanets::DepositPolicy {
			base: super::MIN_CONTRIBUTION_DEPOSIT_BASE,
			per_byte: super::MIN_CONTRIBUTION_DEPOSIT_PER_BYTE,
		};
		// As many lineage Datanets as a model may have, each with its own owner (distinct payout
		// accounts); the first has `leaves` leaves, each from a different contributor.
		let lineage_len = <Runtime as pallet_models::Config>::MaxLineage::get();
		let account = |tag: u8, i: u32| {
			let mut raw = [tag; 32];
			raw[..4].copy_from_slice(&i.to_le_bytes());
			let who = AccountId::new(raw);
			let _ = Balances::set_balance(&who, 1_000_000 * OPEN);
			who
		};
		let first = pallet_datanets::NextDatanetId::<Runtime>::get();
		let mut lineage = Vec::new();
		for l in 0..lineage_len {
			let owner = account(0xe0, l);
			let datanet = pallet_datanets::NextDatanetId::<Runtime>::get();
			Datanets::create_datanet(RuntimeOrigin::signed(owner.clone()), b"bench".to_vec(), vec![], vec![], pallet_datanets::CurationMode::Open, policy.clone())
				.expect("datanet");
			let n = if l == 0 { leaves.max(1) } else { 1 };
			for i in 0..n {
				let mut hash = [0u8; 32];
				hash[..4].copy_from_slice(&i.to_le_bytes());
				let contributor = if l == 0 { account(0xc0, i) } else { owner.clone() };
				Datanets::contribute(RuntimeOrigin::signed(contributor), datanet, hash.into(), 1, 1, b"u".to_vec(), None, None)
					.expect("contribution");
			}
			Datanets::snapshot(RuntimeOrigin::signed(owner), datanet).expect("snapshot");
			lineage.push(pallet_models::LineageEntry { datanet, version: 1, weight: Perbill::from_rational(1, lineage_len) });
		}
		let owner = account(0xee, 0);
		let origin = || RuntimeOrigin::signed(owner.clone());
		let base = pallet_models::NextModelId::<Runtime>::get();
		crate::Models::register_base(origin(), b"b".to_vec(), vec![], vec![], [0xb0; 32].into(), vec![], Default::default(), [0; 32].into())
			.expect("base");
		let modules = vec![b"q".to_vec().try_into().expect("short")].try_into().expect("one module");
		crate::Models::register_adapter(origin(), base, b"a".to_vec(), vec![], 8, 16, modules, [0xad; 32].into(), vec![], lineage.try_into().expect("MaxLineage entries"), [0; 32].into())
			.expect("adapter");
		// Priced high enough for any benchmark fee (a receipt may not charge above the price).
		crate::Models::set_pricing(origin(), base + 1, pallet_models::Pricing { per_request: 1_000_000 * OPEN, per_1k_tokens: 0 })
			.expect("pricing");
		OpenStaking::bond_worker(RuntimeOrigin::signed(worker.clone()), 1_000 * OPEN, key, Default::default(), vec![base + 1].try_into().expect("one model"), Perbill::zero())
			.expect("worker");
		(base + 1, 1, first, 1)
	}
	fn public(key: sp_core::sr25519::Public) -> MultiSigner {
		key.into()
	}
	fn signature(sig: sp_core::sr25519::Signature) -> Signature {
		sig.into()
	}
	fn bond(who: &AccountId, key: [u8; 32]) {
		use crate::RuntimeOrigin;
		use frame_support::traits::fungible::Mutate;
		let _ = Balances::set_balance(who, 1_000_000 * OPEN);
		OpenStaking::bond_worker(RuntimeOrigin::signed(who.clone()), 1_000 * OPEN, key, Default::default(), Default::default(), Perbill::zero())
			.expect("bonded");
	}
	fn set_content_root(c: &ContributionRef, root: sp_core::H256) {
		let (id, _) = Datanets::contribution_at(c.datanet, c.version, c.index).expect("a benchmark snapshot's leaf");
		pallet_datanets::Contributions::<Runtime>::mutate(id, |x| x.as_mut().expect("exists").content_hash = root);
	}
	fn add_delegators(worker: &AccountId, n: u32) {
		use crate::RuntimeOrigin;
		use frame_support::traits::fungible::Mutate;
		for i in 0..n {
			let mut raw = [0xde; 32];
			raw[..4].copy_from_slice(&i.to_le_bytes());
			let who = AccountId::new(raw);
			let _ = Balances::set_balance(&who, 1_000 * OPEN);
			OpenStaking::delegate(RuntimeOrigin::signed(who), worker.clone(), 100 * OPEN).expect("delegation");
		}
	}
}
