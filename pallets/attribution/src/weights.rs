// Bootstrap until the pallet's benchmarks exist: replaced by
// `scripts/benchmark.sh pallet_attribution pallets/attribution/src/weights.rs`.
#![allow(missing_docs)]
use frame_support::weights::Weight;
pub trait WeightInfo {
	fn deposit_escrow() -> Weight;
	fn request_escrow_withdrawal() -> Weight;
	fn withdraw_escrow() -> Weight;
	fn submit_receipts(n: u32, s: u32) -> Weight;
	fn claim_rewards() -> Weight;
	fn challenge() -> Weight;
	fn resolve_challenge() -> Weight;
	fn on_initialize(n: u32) -> Weight;
}
impl WeightInfo for () {
	fn deposit_escrow() -> Weight { Weight::zero() }
	fn request_escrow_withdrawal() -> Weight { Weight::zero() }
	fn withdraw_escrow() -> Weight { Weight::zero() }
	fn submit_receipts(_n: u32, _s: u32) -> Weight { Weight::zero() }
	fn claim_rewards() -> Weight { Weight::zero() }
	fn challenge() -> Weight { Weight::zero() }
	fn resolve_challenge() -> Weight { Weight::zero() }
	fn on_initialize(_n: u32) -> Weight { Weight::zero() }
}
