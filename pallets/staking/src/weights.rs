// Bootstrap: replaced by `scripts/benchmark.sh pallet_open_staking pallets/staking/src/weights.rs`.
#![allow(missing_docs)]
use frame_support::weights::Weight;
pub trait WeightInfo {
	fn bond_worker() -> Weight;
	fn update_worker() -> Weight;
	fn bond_extra() -> Weight;
	fn unbond() -> Weight;
	fn delegate() -> Weight;
	fn undelegate() -> Weight;
	fn rebond() -> Weight;
	fn withdraw_unbonded() -> Weight;
	fn slash(d: u32) -> Weight;
	fn set_unbonding_period() -> Weight;
}
impl WeightInfo for () {
	fn bond_worker() -> Weight { Weight::zero() }
	fn update_worker() -> Weight { Weight::zero() }
	fn bond_extra() -> Weight { Weight::zero() }
	fn unbond() -> Weight { Weight::zero() }
	fn delegate() -> Weight { Weight::zero() }
	fn undelegate() -> Weight { Weight::zero() }
	fn rebond() -> Weight { Weight::zero() }
	fn withdraw_unbonded() -> Weight { Weight::zero() }
	fn slash(_d: u32) -> Weight { Weight::zero() }
	fn set_unbonding_period() -> Weight { Weight::zero() }
}
pub struct SubstrateWeight<T>(core::marker::PhantomData<T>);
impl<T> WeightInfo for SubstrateWeight<T> {
	fn bond_worker() -> Weight { <()>::bond_worker() }
	fn update_worker() -> Weight { <()>::update_worker() }
	fn bond_extra() -> Weight { <()>::bond_extra() }
	fn unbond() -> Weight { <()>::unbond() }
	fn delegate() -> Weight { <()>::delegate() }
	fn undelegate() -> Weight { <()>::undelegate() }
	fn rebond() -> Weight { <()>::rebond() }
	fn withdraw_unbonded() -> Weight { <()>::withdraw_unbonded() }
	fn slash(d: u32) -> Weight { <()>::slash(d) }
	fn set_unbonding_period() -> Weight { <()>::set_unbonding_period() }
}
