// Bootstrap: replaced by `scripts/benchmark.sh pallet_datanets pallets/datanets/src/weights.rs`.
#![allow(missing_docs)]
use frame_support::weights::Weight;
pub trait WeightInfo {
	fn create_datanet() -> Weight;
	fn update_metadata() -> Weight;
	fn add_curator() -> Weight;
	fn remove_curator() -> Weight;
	fn archive() -> Weight;
	fn contribute() -> Weight;
	fn accept() -> Weight;
	fn reject() -> Weight;
	fn withdraw() -> Weight;
	fn snapshot(n: u32) -> Weight;
}
impl WeightInfo for () {
	fn create_datanet() -> Weight { Weight::zero() }
	fn update_metadata() -> Weight { Weight::zero() }
	fn add_curator() -> Weight { Weight::zero() }
	fn remove_curator() -> Weight { Weight::zero() }
	fn archive() -> Weight { Weight::zero() }
	fn contribute() -> Weight { Weight::zero() }
	fn accept() -> Weight { Weight::zero() }
	fn reject() -> Weight { Weight::zero() }
	fn withdraw() -> Weight { Weight::zero() }
	fn snapshot(_n: u32) -> Weight { Weight::zero() }
}
pub struct SubstrateWeight<T>(core::marker::PhantomData<T>);
impl<T> WeightInfo for SubstrateWeight<T> {
	fn create_datanet() -> Weight { <()>::create_datanet() }
	fn update_metadata() -> Weight { <()>::update_metadata() }
	fn add_curator() -> Weight { <()>::add_curator() }
	fn remove_curator() -> Weight { <()>::remove_curator() }
	fn archive() -> Weight { <()>::archive() }
	fn contribute() -> Weight { <()>::contribute() }
	fn accept() -> Weight { <()>::accept() }
	fn reject() -> Weight { <()>::reject() }
	fn withdraw() -> Weight { <()>::withdraw() }
	fn snapshot(n: u32) -> Weight { <()>::snapshot(n) }
}
