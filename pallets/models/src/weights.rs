// Bootstrap: replaced by `scripts/benchmark.sh pallet_models pallets/models/src/weights.rs`.
#![allow(missing_docs)]
use frame_support::weights::Weight;
pub trait WeightInfo {
	fn register_base(l: u32) -> Weight;
	fn register_adapter(l: u32) -> Weight;
	fn publish_version(l: u32) -> Weight;
	fn deprecate_version() -> Weight;
	fn set_pricing() -> Weight;
	fn set_revenue_split() -> Weight;
	fn transfer_ownership() -> Weight;
	fn set_min_split() -> Weight;
}
impl WeightInfo for () {
	fn register_base(_l: u32) -> Weight { Weight::zero() }
	fn register_adapter(_l: u32) -> Weight { Weight::zero() }
	fn publish_version(_l: u32) -> Weight { Weight::zero() }
	fn deprecate_version() -> Weight { Weight::zero() }
	fn set_pricing() -> Weight { Weight::zero() }
	fn set_revenue_split() -> Weight { Weight::zero() }
	fn transfer_ownership() -> Weight { Weight::zero() }
	fn set_min_split() -> Weight { Weight::zero() }
}
pub struct SubstrateWeight<T>(core::marker::PhantomData<T>);
impl<T> WeightInfo for SubstrateWeight<T> {
	fn register_base(l: u32) -> Weight { <()>::register_base(l) }
	fn register_adapter(l: u32) -> Weight { <()>::register_adapter(l) }
	fn publish_version(l: u32) -> Weight { <()>::publish_version(l) }
	fn deprecate_version() -> Weight { <()>::deprecate_version() }
	fn set_pricing() -> Weight { <()>::set_pricing() }
	fn set_revenue_split() -> Weight { <()>::set_revenue_split() }
	fn transfer_ownership() -> Weight { <()>::transfer_ownership() }
	fn set_min_split() -> Weight { <()>::set_min_split() }
}
