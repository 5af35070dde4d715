//! What the attribution pallet needs from the rest of the runtime. The runtime implements these
//! over the Datanets, models and staking pallets; the mock implements them over plain maps.

use alloc::vec::Vec;
use openledger_primitives::{receipt::ContributionRef, DatanetId, ModelId, ModelVersion, RevenueSplit, SnapshotVersion};
use sp_runtime::{DispatchError, Perbill};

/// The economics of one model version.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelTerms<AccountId> {
	pub owner: AccountId,
	pub split: RevenueSplit,
	/// Price per request and per 1,000 tokens (prompt + completion).
	pub per_request: u128,
	pub per_1k_tokens: u128,
	/// Earlier splits and prices, `(split, per_request, per_1k_tokens)`, while vouchers signed
	/// under them may still settle.
	pub previous: Vec<(RevenueSplit, u128, u128)>,
	/// `(datanet, snapshot version, weight)`; weights sum to 100 % or the list is empty.
	pub lineage: Vec<(DatanetId, SnapshotVersion, Perbill)>,
	pub deprecated: bool,
}

/// Model registry access.
pub trait ModelTermsProvider<AccountId> {
	/// The terms of `model` at `version`, if both exist.
	fn terms(model: ModelId, version: ModelVersion) -> Option<ModelTerms<AccountId>>;
	/// The most lineage entries a model version can have.
	fn max_lineage() -> u32;
}

/// Datanet access.
pub trait ContributionResolver<AccountId> {
	/// The contributor of leaf `c.index` of snapshot `c.version` of `c.datanet`, if that
	/// snapshot exists and has such a leaf.
	fn contributor(c: &ContributionRef) -> Option<AccountId>;
	/// The owner of a Datanet.
	fn datanet_owner(datanet: DatanetId) -> Option<AccountId>;
	/// The content root (`openledger_primitives::evidence::content_root`) of leaf `c.index` of
	/// snapshot `c.version` of `c.datanet` — the leaf's content hash that the snapshot's Merkle
	/// root commits to — if that leaf exists.
	fn content_root(c: &ContributionRef) -> Option<sp_core::H256>;
}

/// Worker staking access.
pub trait WorkerRegistry<AccountId, Balance, BlockNumber> {
	/// The receipt signing key of an eligible worker that serves `model`.
	fn signing_key_if_serving(worker: &AccountId, model: ModelId) -> Option<[u8; 32]>;
	/// Whether `who` has stake bonded (may challenge).
	fn is_bonded(who: &AccountId) -> bool;
	/// Credits `amount` (a vested receipt's worker share) to the worker: its commission, and its
	/// reward pool shared by the stake bonded now. The OPEN stays held in this pallet's pot
	/// until the staking pallet pays a claim through [`crate::Pallet::pay_owed`].
	fn accrue_reward(worker: &AccountId, amount: Balance);
	/// Everything accrued that way and not yet paid out.
	fn rewards_owed() -> Balance;
	/// Slashes `fraction` of the stake that backed a receipt settled at block `settled_at`: the
	/// worker's, its delegators', and unbonding stake that started unbonding at or after that
	/// block. Returns how many delegations were visited and the amount slashed from the
	/// worker's own stake (everything slashed goes to the treasury).
	fn slash(worker: &AccountId, fraction: Perbill, settled_at: BlockNumber) -> Result<(u32, Balance), DispatchError>;
	/// A receipt of `worker` settled at `settled_at` was challenged: the stake that backed it
	/// stays until the verdict.
	fn challenge_opened(worker: &AccountId, settled_at: BlockNumber);
	/// The challenge was judged.
	fn challenge_closed(worker: &AccountId);
	/// How many challenges of `worker`'s receipts are open, as the staking side counts them.
	fn open_challenges(worker: &AccountId) -> u32;
	/// Every worker with stake frozen for open challenges, with their count (for `try_state`).
	fn frozen() -> Vec<(AccountId, u32)>;
	/// The most delegators a worker can have (the worst case the weights are charged for).
	fn max_delegators() -> u32;
}

/// Sets up state for the benchmarks: a model version whose lineage has as many Datanets as the
/// registry allows, each with its own owner, the first with a snapshot of at least `leaves`
/// leaves each contributed by a different account; served by `worker` with receipt signing key
/// `key`.
#[cfg(feature = "runtime-benchmarks")]
pub trait BenchmarkHelper<AccountId, Signature, Public> {
	/// Returns the model, its version, and the first snapshot `(datanet, version)` of its lineage.
	fn setup(worker: &AccountId, key: [u8; 32], leaves: u32) -> (ModelId, ModelVersion, DatanetId, SnapshotVersion);
	/// The configured public key type of an sr25519 key.
	fn public(key: sp_core::sr25519::Public) -> Public;
	/// The configured signature type of an sr25519 signature.
	fn signature(sig: sp_core::sr25519::Signature) -> Signature;
	/// Gives `worker` `n` delegators (for the per-delegator cost of claims and slashes).
	fn add_delegators(worker: &AccountId, n: u32);
	/// Makes `who` a bonded account (serving nothing), funded: a challenger.
	fn bond(who: &AccountId, key: [u8; 32]);
	/// Sets the content root of contribution `c` (a leaf of a benchmark snapshot), so that
	/// evidence built over synthetic content proves against it.
	fn set_content_root(c: &ContributionRef, root: sp_core::H256);
}
