//! A mock runtime with AccountId32 accounts (so payer signatures are real sr25519), Balances,
//! and the attribution pallet over in-memory models, Datanets and workers.

use crate as pallet_attribution;
use crate::{split::RevenueSplit, ModelTerms};
use frame_support::{derive_impl, parameter_types, traits::ConstU32, PalletId};
use frame_system::EnsureRoot;
use openledger_primitives::{receipt::ContributionRef, DatanetId, ModelId, ModelVersion};
use sp_keyring::Sr25519Keyring;
use sp_runtime::{
	traits::{AccountIdConversion, IdentityLookup},
	AccountId32, BuildStorage, MultiSignature, MultiSigner, Perbill,
};
use std::{cell::RefCell, collections::BTreeMap};

type Block = frame_system::mocking::MockBlock<Test>;
pub type Balance = u64;
pub type AccountId = AccountId32;

frame_support::construct_runtime!(
	pub enum Test {
		System: frame_system,
		Balances: pallet_balances,
		Attribution: pallet_attribution,
	}
);

#[derive_impl(frame_system::config_preludes::TestDefaultConfig)]
impl frame_system::Config for Test {
	type Block = Block;
	type AccountId = AccountId;
	type Lookup = IdentityLookup<AccountId>;
	type AccountData = pallet_balances::AccountData<Balance>;
	type DbWeight = frame_support::weights::constants::RocksDbWeight;
}

#[derive_impl(pallet_balances::config_preludes::TestDefaultConfig)]
impl pallet_balances::Config for Test {
	type Balance = Balance;
	type AccountStore = System;
	type RuntimeHoldReason = RuntimeHoldReason;
	type ExistentialDeposit = frame_support::traits::ConstU64<1>;
}

pub fn acc(k: Sr25519Keyring) -> AccountId {
	k.to_account_id()
}
pub fn payer() -> AccountId {
	acc(Sr25519Keyring::Alice)
}
pub fn worker() -> AccountId {
	acc(Sr25519Keyring::Bob)
}
pub fn owner() -> AccountId {
	acc(Sr25519Keyring::Charlie)
}
/// The contributor of leaf `i` of every mock snapshot: a different account per leaf.
pub fn contributor(i: u32) -> AccountId {
	let mut raw = [100u8; 32];
	raw[..4].copy_from_slice(&i.to_le_bytes());
	AccountId32::new(raw)
}
pub fn datanet_owner(d: DatanetId) -> AccountId {
	AccountId32::new([200 + d as u8; 32])
}
pub fn challenger() -> AccountId {
	acc(Sr25519Keyring::Dave)
}
pub fn treasury() -> AccountId {
	AccountId32::new([9; 32])
}
/// The key the worker signs receipts with (not its stash, Bob).
pub fn signing_key() -> sp_core::sr25519::Pair {
	use sp_core::Pair;
	sp_core::sr25519::Pair::from_string("//Bob//receipts", None).unwrap()
}

thread_local! {
	pub static MODELS: RefCell<BTreeMap<(ModelId, ModelVersion), ModelTerms<AccountId>>> = RefCell::new(BTreeMap::new());
	/// Leaves per snapshot: (datanet, version) → leaf count; leaf i's contributor is `contributor(i)`.
	pub static SNAPSHOTS: RefCell<BTreeMap<(DatanetId, u32), u32>> = RefCell::new(BTreeMap::new());
	pub static SERVING: RefCell<bool> = RefCell::new(true);
	/// Receipt signing keys of workers other than `worker()`.
	pub static KEYS: RefCell<BTreeMap<AccountId, [u8; 32]>> = RefCell::new(BTreeMap::new());
	pub static SLASHES: RefCell<Vec<(AccountId, Perbill)>> = RefCell::new(Vec::new());
	/// Workers that have left the staking pallet (slashing them fails).
	pub static GONE: RefCell<Vec<AccountId>> = RefCell::new(Vec::new());
	/// Worker shares accrued to the (mock) staking pallet, in order.
	pub static REWARDS_PAID: RefCell<Vec<(AccountId, Balance)>> = RefCell::new(Vec::new());
	/// Open challenges per worker (the staking pallet freezes their stake).
	pub static FROZEN: RefCell<BTreeMap<AccountId, u32>> = RefCell::new(BTreeMap::new());
	/// Their total, not paid out (the mock never pays them; the pot keeps them held).
	pub static WORKER_OWED: RefCell<Balance> = RefCell::new(0);
	/// Content roots of contributions set by tests; others have `H256::repeat_byte(index)`.
	pub static CONTENT: RefCell<BTreeMap<ContributionRef, sp_core::H256>> = RefCell::new(BTreeMap::new());
	/// What a mock slash takes (it goes to the treasury).
	pub static SLASH_AMOUNT: RefCell<Balance> = RefCell::new(0);
}

pub struct MockModels;
impl crate::ModelTermsProvider<AccountId> for MockModels {
	fn terms(model: ModelId, version: ModelVersion) -> Option<ModelTerms<AccountId>> {
		MODELS.with(|m| m.borrow().get(&(model, version)).cloned())
	}
	fn max_lineage() -> u32 {
		MAX_LINEAGE
	}
}

/// The mock registry's lineage bound.
pub const MAX_LINEAGE: u32 = 16;

pub struct MockDatanets;
impl crate::ContributionResolver<AccountId> for MockDatanets {
	fn contributor(c: &ContributionRef) -> Option<AccountId> {
		SNAPSHOTS.with(|s| s.borrow().get(&(c.datanet, c.version)).copied())
			.filter(|leaves| c.index < *leaves)
			.map(|_| contributor(c.index))
	}
	fn datanet_owner(d: DatanetId) -> Option<AccountId> {
		SNAPSHOTS.with(|s| s.borrow().keys().any(|(x, _)| *x == d)).then(|| datanet_owner(d))
	}
	fn content_root(c: &ContributionRef) -> Option<sp_core::H256> {
		Self::contributor(c)?;
		Some(CONTENT.with(|m| m.borrow().get(c).copied()).unwrap_or(sp_core::H256::repeat_byte(c.index as u8)))
	}
}

pub struct MockWorkers;
impl crate::WorkerRegistry<AccountId, Balance, u64> for MockWorkers {
	fn signing_key_if_serving(w: &AccountId, model: ModelId) -> Option<[u8; 32]> {
		if !SERVING.with(|s| *s.borrow()) || model >= 10 {
			return None;
		}
		if *w == worker() {
			return Some(sp_core::Pair::public(&signing_key()).0);
		}
		KEYS.with(|k| k.borrow().get(w).copied())
	}
	fn is_bonded(who: &AccountId) -> bool {
		*who == challenger() || *who == worker() || KEYS.with(|k| k.borrow().contains_key(who))
	}
	fn accrue_reward(w: &AccountId, amount: Balance) {
		REWARDS_PAID.with(|r| r.borrow_mut().push((w.clone(), amount)));
		WORKER_OWED.with(|o| *o.borrow_mut() += amount);
	}
	fn rewards_owed() -> Balance {
		WORKER_OWED.with(|o| *o.borrow())
	}
	fn challenge_opened(w: &AccountId, _settled_at: u64) {
		FROZEN.with(|f| *f.borrow_mut().entry(w.clone()).or_default() += 1);
	}
	fn challenge_closed(w: &AccountId) {
		FROZEN.with(|f| *f.borrow_mut().get_mut(w).expect("opened before") -= 1);
	}
	fn open_challenges(w: &AccountId) -> u32 {
		FROZEN.with(|f| f.borrow().get(w).copied().unwrap_or(0))
	}
	fn frozen() -> Vec<(AccountId, u32)> {
		FROZEN.with(|f| f.borrow().iter().filter(|(_, n)| **n > 0).map(|(w, n)| (w.clone(), *n)).collect())
	}
	fn slash(w: &AccountId, fraction: Perbill, _settled_at: u64) -> Result<(u32, Balance), sp_runtime::DispatchError> {
		// A worker that has left the staking pallet cannot be slashed.
		if GONE.with(|g| g.borrow().contains(w)) {
			return Err(sp_runtime::DispatchError::Other("UnknownWorker"));
		}
		SLASHES.with(|s| s.borrow_mut().push((w.clone(), fraction)));
		Ok((0, SLASH_AMOUNT.with(|a| *a.borrow())))
	}
	fn max_delegators() -> u32 {
		4
	}
}

pub const POT_ID: PalletId = PalletId(*b"ol/infer");
pub const CHALLENGE_BOND: Balance = 500;
/// The span-dispute bond at genesis (tests change it with `DisputeBond::set`).
pub const INITIAL_DISPUTE_BOND: Balance = 300;
pub const CHALLENGER_REWARD: Balance = 100;
pub const WINDOW: u64 = 20;
pub const ESCROW_DELAY: u64 = 5;
pub const PRUNE_LAG: u64 = 40;
/// The mock model's price per request.
pub const PRICE: u128 = 2_000;

/// The terms hash of the mock model `(model, version)` as it is now.
pub fn terms_of(model: ModelId, version: ModelVersion) -> sp_core::H256 {
	MODELS.with(|m| {
		m.borrow()
			.get(&(model, version))
			.map(|t| openledger_primitives::receipt::terms_hash(&t.split, t.per_request, t.per_1k_tokens))
			.unwrap_or_default()
	})
}
pub const RESOLVE_TIMEOUT: u64 = 30;
pub const RESPONSE_WINDOW: u64 = 6;

parameter_types! {
	pub const PotId: PalletId = POT_ID;
	pub Treasury: AccountId = treasury();
	pub static DisputeBond: Balance = INITIAL_DISPUTE_BOND;
}

impl pallet_attribution::Config for Test {
	type RuntimeEvent = RuntimeEvent;
	type Currency = Balances;
	type RuntimeHoldReason = RuntimeHoldReason;
	type OffchainSignature = MultiSignature;
	type SigningPublicKey = MultiSigner;
	type Models = MockModels;
	type Contributions = MockDatanets;
	type Workers = MockWorkers;
	type PotId = PotId;
	type Treasury = Treasury;
	type EscrowWithdrawDelay = frame_support::traits::ConstU64<ESCROW_DELAY>;
	type ChallengeWindow = frame_support::traits::ConstU64<WINDOW>;
	type ChallengeBond = frame_support::traits::ConstU64<CHALLENGE_BOND>;
	type DisputeBond = DisputeBond;
	type ChallengerReward = frame_support::traits::ConstU64<CHALLENGER_REWARD>;
	type SlashFraction = SlashFraction;
	type ResolveOrigin = EnsureRoot<AccountId>;
	type ResolveTimeout = frame_support::traits::ConstU64<RESOLVE_TIMEOUT>;
	type ResponseWindow = frame_support::traits::ConstU64<RESPONSE_WINDOW>;
	type MaxDisputesPerBlock = ConstU32<4>;
	type MaxReceiptsPerBatch = ConstU32<16>;
	type MaxPrunePerBlock = ConstU32<4>;
	type MaxVoucherLifetime = frame_support::traits::ConstU64<1_000>;
	type MinFee = frame_support::traits::ConstU64<10>;
	type MaxPruneLag = frame_support::traits::ConstU64<PRUNE_LAG>;
	type WeightInfo = ();
	#[cfg(feature = "runtime-benchmarks")]
	type BenchmarkHelper = MockBenchmarkHelper;
}

#[cfg(feature = "runtime-benchmarks")]
pub struct MockBenchmarkHelper;
#[cfg(feature = "runtime-benchmarks")]
impl crate::BenchmarkHelper<AccountId, MultiSignature, MultiSigner> for MockBenchmarkHelper {
	fn setup(w: &AccountId, key: [u8; 32], leaves: u32) -> (ModelId, ModelVersion, DatanetId, u32) {
		KEYS.with(|k| k.borrow_mut().insert(w.clone(), key));
		// Datanets 5.. 5 + MAX_LINEAGE, each with its own owner; the first holds the leaves.
		SNAPSHOTS.with(|s| {
			let mut s = s.borrow_mut();
			s.insert((5, 1), leaves.max(1));
			for d in 6..5 + MAX_LINEAGE {
				s.insert((d, 1), 1);
			}
		});
		let weight = Perbill::from_rational(1, MAX_LINEAGE);
		MODELS.with(|m| {
			m.borrow_mut().insert((5, 1), ModelTerms {
				owner: owner(),
				split: split(40, 30, 20, 10),
				per_request: u64::MAX as u128,
				per_1k_tokens: 0,
				previous: vec![],
				lineage: (5..5 + MAX_LINEAGE).map(|d| (d, 1, weight)).collect(),
				deprecated: false,
			})
		});
		(5, 1, 5, 1)
	}
	fn public(key: sp_core::sr25519::Public) -> MultiSigner {
		key.into()
	}
	fn signature(sig: sp_core::sr25519::Signature) -> MultiSignature {
		sig.into()
	}
	fn bond(who: &AccountId, key: [u8; 32]) {
		KEYS.with(|k| k.borrow_mut().insert(who.clone(), key));
	}
	fn set_content_root(c: &ContributionRef, root: sp_core::H256) {
		CONTENT.with(|m| m.borrow_mut().insert(*c, root));
	}
	fn add_delegators(_worker: &AccountId, _n: u32) {
		// The mock's workers have no delegators; the runtime's helper creates real ones.
	}
}

parameter_types! {
	pub const SlashFraction: Perbill = Perbill::from_percent(10);
}

pub fn split(o: u32, d: u32, w: u32, t: u32) -> RevenueSplit {
	RevenueSplit {
		owner: Perbill::from_percent(o),
		data: Perbill::from_percent(d),
		worker: Perbill::from_percent(w),
		treasury: Perbill::from_percent(t),
	}
}

pub const START: Balance = 1_000_000;

pub fn new_test_ext() -> sp_io::TestExternalities {
	MODELS.with(|m| {
		let mut m = m.borrow_mut();
		m.clear();
		// Model 1 v1: trained half on datanet 0 snapshot 1, half on datanet 1 snapshot 1.
		// Priced at 2,000 per request: fees above it are refused.
		m.insert((1, 1), ModelTerms {
			owner: owner(),
			split: split(40, 30, 20, 10),
			per_request: PRICE,
			per_1k_tokens: 0,
			previous: vec![],
			lineage: vec![(0, 1, Perbill::from_percent(50)), (1, 1, Perbill::from_percent(50))],
			deprecated: false,
		});
		m.insert((1, 2), ModelTerms {
			owner: owner(),
			split: split(40, 30, 20, 10),
			per_request: PRICE,
			per_1k_tokens: 0,
			previous: vec![],
			lineage: vec![],
			deprecated: true,
		});
	});
	SNAPSHOTS.with(|s| {
		let mut s = s.borrow_mut();
		s.clear();
		s.insert((0, 1), 8);
		s.insert((1, 1), 3);
		s.insert((2, 1), 5); // not in model 1's lineage
	});
	SERVING.with(|s| *s.borrow_mut() = true);
	SLASHES.with(|s| s.borrow_mut().clear());
	REWARDS_PAID.with(|s| s.borrow_mut().clear());
	WORKER_OWED.with(|o| *o.borrow_mut() = 0);
	FROZEN.with(|f| f.borrow_mut().clear());
	CONTENT.with(|c| c.borrow_mut().clear());
	SLASH_AMOUNT.with(|a| *a.borrow_mut() = 0);

	let mut t = frame_system::GenesisConfig::<Test>::default().build_storage().unwrap();
	let pot: AccountId = POT_ID.into_account_truncating();
	let mut balances = vec![(payer(), START), (worker(), START), (owner(), 1), (challenger(), START), (treasury(), START), (pot, 1)];
	balances.extend((0..8).map(|i| (contributor(i), 1)));
	balances.extend((0..3).map(|d| (datanet_owner(d), 1)));
	pallet_balances::GenesisConfig::<Test> { balances, ..Default::default() }.assimilate_storage(&mut t).unwrap();
	let mut ext = sp_io::TestExternalities::new(t);
	ext.execute_with(|| System::set_block_number(1));
	ext
}

/// [`new_test_ext`] with a keystore, for the benchmarks' key generation and signing.
#[cfg(feature = "runtime-benchmarks")]
pub fn new_test_ext_with_keystore() -> sp_io::TestExternalities {
	let mut ext = new_test_ext();
	ext.register_extension(sp_keystore::KeystoreExt::new(sp_keystore::testing::MemoryKeystore::new()));
	ext
}
